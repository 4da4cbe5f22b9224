"""The audit predicates of ``include/sql/audit/``: rendered, evaluated once each, counted.

Every parameter (``now``, each rule's window) is inlined by psycopg2's own quoting; each file is
evaluated once into a findings table of the run's scratch schema, keeping only the contract's
columns (no personal column reaches it), and counted per rule: overdue (unheld), the oldest
overdue age, and held (RET-8). A file that breaks its contract is refused with its name.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

from psycopg2 import sql
from psycopg2.extensions import cursor

from governance.audit.redaction import safe_error
from governance.audit.scratch import Scratch
from governance.errors import AuditError
from governance.policy import SQL_DIR, Policy, Rule
from governance.windows import as_utc

AUDIT_COLUMNS = ("rule_id", "record_id", "overdue_seconds")
PREDICATE_COLUMNS = (*AUDIT_COLUMNS, "held")  # what every audit predicate returns (include/sql/audit/README.md)


class Counted(NamedTuple):
    """One rule's findings, counted on the caller's connection (the cross-check of GX)."""

    overdue: int
    oldest: int | None  # seconds past the window of the oldest unheld record; None when none
    held: int


NOTHING_FOUND = Counted(0, None, 0)


def parameter_name(rule_id: str) -> str:
    return "window__" + rule_id.replace("-", "_")


def audit_parameters(policy: Policy, now: datetime) -> dict[str, Any]:
    """The parameters every audit predicate may use (README of include/sql/audit)."""
    params: dict[str, Any] = {"now": as_utc(now)}
    for rule in policy.rules:
        params[parameter_name(rule.id)] = policy.window(rule).iso
    return params


def audit_sql_text(rule: Rule) -> str:
    return (SQL_DIR / rule.audit).read_text().strip().rstrip(";").strip()


def render(cur: cursor, text: str, params: dict[str, Any]) -> str:
    """The predicate with every value inlined by psycopg2's quoting (cursor.mogrify)."""
    return cur.mogrify(text, params).decode()


def evaluate_all(
    cur: cursor, scratch: Scratch, rules: Iterable[Rule], params: dict[str, Any]
) -> tuple[dict[str, sql.Identifier], dict[str, Counted]]:
    """Each predicate file once (uploads.sql serves four rules), in the caller's transaction.

    Returns the findings table of each file (audit file -> table) and each rule's counts."""
    rules = list(rules)
    findings: dict[str, sql.Identifier] = {}
    counted: dict[str, Counted] = {}
    for rule in rules:
        if rule.audit in findings:
            continue
        findings[rule.audit] = scratch.table(f"findings_{len(findings)}")
        names = {r.id for r in rules if r.audit == rule.audit}
        rendered = render(cur, audit_sql_text(rule), params)
        counted.update(evaluate(cur, findings[rule.audit], rule.audit, rendered, names))
    return findings, counted


def evaluate(
    cur: cursor, findings: sql.Identifier, audit_file: str, rendered: str, rule_ids: set[str]
) -> dict[str, Counted]:
    """Evaluate one predicate file once into ``findings``; rule_id -> its counts."""
    cur.execute("SAVEPOINT audit_predicate")
    try:
        cur.execute(
            sql.SQL(
                "CREATE UNLOGGED TABLE {findings} AS SELECT p.rule_id::text AS rule_id, p.record_id::bigint AS record_id, "
                "p.overdue_seconds::bigint AS overdue_seconds, p.held::boolean AS held FROM ({predicate}\n) AS p"
            ).format(findings=findings, predicate=sql.SQL(rendered))
        )
    except Exception as exc:
        cur.execute("ROLLBACK TO SAVEPOINT audit_predicate")
        raise AuditError(
            f"audit SQL {audit_file} could not be evaluated: {safe_error(getattr(exc, 'pgerror', None) or str(exc))}. "
            f"It must return the columns {', '.join(PREDICATE_COLUMNS)} (include/sql/audit/README.md)"
        ) from None
    cur.execute("RELEASE SAVEPOINT audit_predicate")
    cur.execute(
        sql.SQL(
            "SELECT rule_id, count(*) FILTER (WHERE NOT held), max(overdue_seconds) FILTER (WHERE NOT held), "
            "count(*) FILTER (WHERE held) FROM {} GROUP BY rule_id"
        ).format(findings)
    )
    counts = {
        rule_id: Counted(int(n), None if oldest is None else int(oldest), int(held))
        for rule_id, n, oldest, held in cur.fetchall()
    }
    unknown = sorted(set(counts) - rule_ids)
    if unknown:
        raise AuditError(
            f"audit SQL {audit_file} returns rows for rule(s) {unknown}; only "
            f"{sorted(rule_ids)} name it as their audit (include/sql/audit/README.md)"
        )
    return counts
