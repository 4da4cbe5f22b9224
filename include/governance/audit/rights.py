"""The audit's rights checks: every SQL file under ``include/sql/audit/rights/``, evaluated once each.

A rights check proves that a right a person exercised holds everywhere, afterwards and
independently of the code that enforced it (ERA-1, RET-7, TP-5, OBJ-1, ...): a plain ``SELECT``
returning the offending rows as ``(check_id text, record_id text)``, ids only. The file's name is
the check's id (``erased_persons_left.sql`` -> ``erased-persons-left``); its header may cite
``-- requirements: ERA-1, RET-8`` and ``-- on failure: ...`` (on-call's next step). Parameters:
``%(now)s`` and every rule's window (as the rules' predicates); policy-derived SQL is rendered in
place of ``{{ name }}`` markers (``governance.audit.rendering``). A check that must read something
first (the audience files from the drop) names a ``Preparer`` in ``PREPARERS`` (keyed by its
file): run on the audit's connection, in its transaction, before any check is evaluated; a check
without one needs nothing. Each file is evaluated once into the run's scratch schema and counted
there; GX and the cross-check read that table. The contract: ``include/sql/audit/README.md``,
"Rights checks".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psycopg2 import sql
from psycopg2.extensions import cursor

from governance.audit import audience_check
from governance.audit.redaction import safe_error
from governance.audit.rendering import render_markers
from governance.audit.scratch import Scratch
from governance.errors import AuditError
from governance.policy import SQL_DIR, Policy

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

RIGHTS_DIR = SQL_DIR / "audit" / "rights"
RIGHTS_COLUMNS = ("check_id", "record_id")  # what every rights check returns (include/sql/audit/README.md)
_REQUIREMENTS = re.compile(r"^--\s*requirements:\s*(.+)$", re.MULTILINE | re.IGNORECASE)
_ON_FAILURE = re.compile(r"^--\s*on failure:\s*(.+)$", re.MULTILINE | re.IGNORECASE)
_REQUIREMENT_ID = re.compile(r"^[A-Z]+-[0-9]+[a-z]?$")


@dataclass(frozen=True)
class Preparer:
    """What a check reads before it runs, on the audit's connection: ``declare`` makes its temporary
    tables, empty (what the auditor role's plan needs to see the check's reads, SEC-4); ``load``
    fills them (the audit only)."""

    declare: Callable[[cursor], None]
    load: Callable[[cursor, S3Client], None]


# Check file -> its preparer (include/sql/audit/README.md, "Rights checks").
PREPARERS: dict[str, Preparer] = {
    "objectors_excluded.sql": Preparer(audience_check.declare, audience_check.load),  # TP-1, OBJ-1
}


def declare_temporaries(cur: cursor, checks: list[RightsCheck]) -> None:
    """The temporary tables of every check that has a preparer, empty."""
    for check in checks:
        if check.file in PREPARERS:
            PREPARERS[check.file].declare(cur)


@dataclass(frozen=True)
class RightsCheck:
    """One file of the rights directory: its id, requirements, on-call's next step, and its text."""

    id: str
    file: str  # the file's name, for messages
    requirements: list[str]
    on_failure: str
    text: str


def check_id_of(path: Path) -> str:
    return path.stem.replace("_", "-")


def load_checks(directory: Path | None = None) -> list[RightsCheck]:
    """Every ``*.sql`` file of ``directory`` (default ``RIGHTS_DIR``), in name order; none if it is absent."""
    directory = RIGHTS_DIR if directory is None else directory
    checks = []
    for path in sorted(directory.glob("*.sql")) if directory.is_dir() else []:
        text = path.read_text()
        found = _REQUIREMENTS.search(text)
        requirements = [r.strip() for r in found.group(1).split(",")] if found else []
        bad = [r for r in requirements if not _REQUIREMENT_ID.match(r)]
        if bad:
            raise AuditError(
                f"rights check {path.name}: '-- requirements:' names {bad}, not requirement ids such as ERA-1"
            )
        on_failure = _ON_FAILURE.search(text)
        checks.append(
            RightsCheck(
                id=check_id_of(path),
                file=path.name,
                requirements=requirements,
                on_failure=on_failure.group(1).strip() if on_failure else "",
                text=text.strip().rstrip(";").strip(),
            )
        )
    return checks


def evaluate_checks(
    cur: cursor, scratch: Scratch, s3: S3Client, policy: Policy, checks: list[RightsCheck], params: dict[str, Any]
) -> tuple[dict[str, sql.Identifier], dict[str, int]]:
    """The preparers, then each check once, into its own findings table, in the caller's
    transaction: (check id -> table, check id -> the number of offending rows, counted on this
    connection)."""
    tables: dict[str, sql.Identifier] = {}
    counts: dict[str, int] = {}
    declare_temporaries(cur, checks)
    for check in checks:
        if check.file in PREPARERS:
            PREPARERS[check.file].load(cur, s3)
    # A check over every store is one large plan: JIT would compile it for seconds before reading a
    # row (bench/README.md, "Erasure"); the rest of this transaction only reads the findings.
    cur.execute("SET LOCAL jit = off")
    for i, check in enumerate(checks):
        tables[check.id] = scratch.table(f"rights_{i}")
        rendered = cur.mogrify(render_markers(cur, policy, check.file, check.text), params).decode()
        counts[check.id] = _evaluate(cur, tables[check.id], check, rendered)
    return tables, counts


def _evaluate(cur: cursor, findings: sql.Identifier, check: RightsCheck, rendered: str) -> int:
    cur.execute("SAVEPOINT audit_rights")
    try:
        cur.execute(
            sql.SQL(
                "CREATE UNLOGGED TABLE {findings} AS SELECT DISTINCT p.check_id::text AS check_id, "
                "p.record_id::text AS record_id FROM ({check}\n) AS p"
            ).format(findings=findings, check=sql.SQL(rendered))
        )
    except Exception as exc:
        cur.execute("ROLLBACK TO SAVEPOINT audit_rights")
        raise AuditError(
            f"rights check {check.file} could not be evaluated: {safe_error(getattr(exc, 'pgerror', None) or str(exc))}. "
            f"It must return the columns {', '.join(RIGHTS_COLUMNS)} (include/sql/audit/README.md)"
        ) from None
    cur.execute("RELEASE SAVEPOINT audit_rights")
    cur.execute(sql.SQL("SELECT check_id, count(*) FROM {} GROUP BY 1").format(findings))
    counted = {str(c): int(n) for c, n in cur.fetchall()}
    other = sorted(set(counted) - {check.id})
    if other:
        raise AuditError(
            f"rights check {check.file} returns rows for check id(s) {other}; its rows must all carry "
            f"check_id '{check.id}' (its file name, include/sql/audit/README.md)"
        )
    return counted.get(check.id, 0)


def rights_gx_query(cur: cursor, findings: sql.Composable, check_id: str) -> str:
    """The UnexpectedRowsExpectation query of one check: its findings, with the run's batch (as
    ``governance.audit.gx.gx_query``)."""
    return (
        sql.SQL(
            "SELECT found.check_id, found.record_id\nFROM {findings} AS found\n"
            "CROSS JOIN {{batch}} AS audit_run\nWHERE found.check_id = {check}"
        )
        .format(findings=findings, check=sql.Literal(check_id))
        .as_string(cur)
    )
