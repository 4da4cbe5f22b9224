"""Great Expectations' part of the audit: one ``UnexpectedRowsExpectation`` per rule, pushed down.

Each expectation reads its rule's unheld findings from the run's scratch schema; the overdue count
is GX's ``observed_value`` (its ``COUNT(*)``), and up to 200 returned rows are checked for their
columns and rule. GX runs in an ephemeral context on its own connection; the database URL (with
its password) is a runtime variable, never part of a configuration GX may print.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg2 import sql
from psycopg2.extensions import cursor, parse_dsn

from governance.audit.predicates import AUDIT_COLUMNS
from governance.audit.redaction import safe_error
from governance.audit.rights import RIGHTS_COLUMNS
from governance.errors import AuditError, InfrastructureError
from governance.settings import UNREACHABLE_SECTION, redact

if TYPE_CHECKING:
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )


@dataclass(frozen=True)
class GxOutcome:
    """GX's answer for one rule: its success, its count and the oldest of the rows it returned."""

    success: bool
    count: int
    oldest: int | None


def gx_query(cur: cursor, findings: sql.Composable, rule_id: str) -> str:
    """The UnexpectedRowsExpectation query of one rule: its overdue (unheld) records, read from the
    run's findings table (the predicate evaluated once).

    ``{batch}`` is the run's one-row batch (the audited instant); it is cross-joined so that GX's
    batch substitution is the same whatever the query contains (GX renders it differently for
    queries with and without a JOIN). No ORDER BY: GX runs the query twice (its COUNT(*) and a
    fetch of at most 200 rows), and a sort of millions of findings would cost more than both.
    """
    query = sql.SQL(
        "SELECT overdue.rule_id, overdue.record_id, overdue.overdue_seconds\n"
        "FROM {findings} AS overdue\n"
        "CROSS JOIN {{batch}} AS audit_run\n"
        "WHERE overdue.rule_id = {rule} AND NOT overdue.held"
    ).format(findings=findings, rule=sql.Literal(rule_id))
    return query.as_string(cur)


def sqlalchemy_url(db_url: str) -> str:
    """A SQLAlchemy URL from a libpq URL or key=value DSN; a unix-socket host goes in the query."""
    from sqlalchemy.engine import URL

    params = parse_dsn(db_url)
    host = params.pop("host", None)
    port = params.pop("port", None)
    query: dict[str, str] = {}
    if host and (host.startswith("/") or "," in host):
        query["host"] = host
        if port:
            query["port"] = port
        host, port = None, None
    query.update({k: v for k, v in params.items() if k not in ("user", "password", "dbname")})
    query.setdefault("options", "-c TimeZone=UTC")  # RET-10: the same session time zone as ours
    url = URL.create(
        "postgresql+psycopg2",
        username=params.get("user"),
        password=params.get("password"),
        host=host,
        port=int(port) if port else None,
        database=params.get("dbname"),
        query=query,
    )
    return url.render_as_string(hide_password=False)


def run_gx(
    db_url: str, batch_query: str, queries: dict[str, str], checks: dict[str, str] | None = None
) -> dict[str, GxOutcome]:
    """Evaluate one UnexpectedRowsExpectation per rule, and per rights check, in one validation run
    (ephemeral context).

    ``batch_query`` defines the run's one batch (a row holding the audited instant); each query
    in ``queries`` (rule id -> SQL using ``{batch}``) returns that rule's overdue records; each in
    ``checks`` (rights check id -> SQL) that check's findings, whose outcome is keyed
    ``check_key(check id)``.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.core.unexpected_rows_expectation import UnexpectedRowsExpectation

    # The URL (with its password) is given as a runtime config variable, never stored in the
    # datasource config that GX may print; it also lets unix-socket URLs through GX's DSN check.
    context = gx.get_context(mode="ephemeral", runtime_environment={"governance_audit_db_url": sqlalchemy_url(db_url)})
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    try:  # GX tests the connection here; its error may quote the URL
        source = context.data_sources.add_postgres(name="governance_db", connection_string="${governance_audit_db_url}")
    except Exception as exc:
        raise InfrastructureError(
            f"database: the audit's GX data source cannot connect ({redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)}); nothing was "
            f"recorded. Check the database URL (or the connection governance_db) and rerun; see {UNREACHABLE_SECTION}"
        ) from None
    asset = source.add_query_asset(name="audit_run", query=batch_query)
    batch = asset.add_batch_definition_whole_table("audit_run")
    suite = context.suites.add(gx.ExpectationSuite(name="retention_audit"))
    for rule_id, query in queries.items():
        suite.add_expectation(
            UnexpectedRowsExpectation(
                unexpected_rows_query=query,
                description=f"no record of rule {rule_id} is past its window",
                meta={"rule_id": rule_id},
            )
        )
    for check_id, query in (checks or {}).items():
        suite.add_expectation(
            UnexpectedRowsExpectation(
                unexpected_rows_query=query,
                description=f"rights check {check_id} finds nothing",
                meta={"check_id": check_id},
            )
        )
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name="retention_audit", data=batch, suite=suite)
    )
    outcomes = _outcomes(validation.run(result_format="COMPLETE"))
    missing = (set(queries) | {check_key(c) for c in checks or {}}) - set(outcomes)
    if missing:
        raise AuditError(f"GX returned no result for rule(s) or check(s) {sorted(missing)}")
    return outcomes


def _outcomes(result: ExpectationSuiteValidationResult) -> dict[str, GxOutcome]:
    """Each rule's outcome from a validation result, its rows checked (columns and rule)."""
    outcomes: dict[str, GxOutcome] = {}
    for item in result.results:
        if item.expectation_config is None:
            raise AuditError("GX returned a result without its expectation")
        meta = item.expectation_config.meta
        if "check_id" in meta:
            outcomes[check_key(meta["check_id"])] = _check_outcome(item, meta["check_id"])
            continue
        rule_id = meta["rule_id"]
        info: dict[str, Any] = item.exception_info or {}
        if info.get("raised_exception"):
            raise AuditError(
                f"GX could not evaluate the audit of rule {rule_id}: {safe_error(info.get('exception_message'))}"
            )
        count = item.result.get("observed_value")
        rows = (item.result.get("details") or {}).get("unexpected_rows") or []
        if not isinstance(count, int):
            raise AuditError(f"GX returned no row count for rule {rule_id}")
        if rows and set(rows[0]) != set(AUDIT_COLUMNS):
            raise AuditError(
                f"audit rows of rule {rule_id} carry columns {sorted(rows[0])}, expected only {list(AUDIT_COLUMNS)}"
            )
        if any(row["rule_id"] != rule_id for row in rows):
            raise AuditError(f"GX returned rows of another rule for rule {rule_id}")
        # the oldest of the (at most 200) rows GX returns: a lower bound of the rule's oldest
        oldest = max((int(row["overdue_seconds"]) for row in rows), default=None)
        outcomes[rule_id] = GxOutcome(success=bool(item.success), count=count, oldest=oldest)
    return outcomes


def check_key(check_id: str) -> str:
    """The key of a rights check's outcome in ``run_gx``'s answer (apart from the rules' ids)."""
    return f"rights:{check_id}"


def _check_outcome(item: ExpectationValidationResult, check_id: str) -> GxOutcome:
    """A rights check's outcome: its success and count, its returned rows checked (columns, id)."""
    info: dict[str, Any] = item.exception_info or {}
    if info.get("raised_exception"):
        raise AuditError(f"GX could not evaluate rights check {check_id}: {safe_error(info.get('exception_message'))}")
    count = item.result.get("observed_value")
    rows = (item.result.get("details") or {}).get("unexpected_rows") or []
    if not isinstance(count, int):
        raise AuditError(f"GX returned no row count for rights check {check_id}")
    if rows and set(rows[0]) != set(RIGHTS_COLUMNS):
        raise AuditError(
            f"rows of rights check {check_id} carry columns {sorted(rows[0])}, expected only {list(RIGHTS_COLUMNS)}"
        )
    if any(row["check_id"] != check_id for row in rows):
        raise AuditError(f"GX returned rows of another check for rights check {check_id}")
    return GxOutcome(success=bool(item.success), count=count, oldest=None)
