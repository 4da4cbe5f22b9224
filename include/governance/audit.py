"""The retention audit: a check, independent of the sweeps, that nothing outlives its window.

For every rule of the policy the audit evaluates that rule's own predicate (``include/sql/audit/``,
written apart from the sweeps' clock views, see its README) as a Great Expectations
``UnexpectedRowsExpectation`` pushed down to PostgreSQL: a record returned is past its window and
not under a legal hold (RET-8: held records count as compliant). It then checks the object store
(CAT-5, RET-9): every photo or text object must belong to an upload row that is not overdue; an
object with no row at all is overdue too. The per-rule counts, never the personal data, are
recorded as hash-chained evidence in one transaction (kind ``audit_rule`` per rule, ``audit`` for
the run), which ``governance.audit_history`` shows to reviewers.

How the numbers are obtained, and why they can be trusted:

- Every parameter (``now``, each rule's window, the rule id) is inlined by ``cursor.mogrify`` —
  psycopg2's own quoting — so GX receives plain SQL, wrapped to select only
  ``rule_id, record_id, overdue_seconds`` (no personal column can reach a GX result) and ordered
  oldest first.
- The overdue count is GX's ``observed_value`` (a ``COUNT(*)`` GX runs over the query). The oldest
  overdue age is the first of the rows GX returns with ``result_format="COMPLETE"`` (GX fetches at
  most 200 rows, so this relies on the ``ORDER BY`` of the wrapped query).
- Both are cross-checked with an aggregate over the same rendered SQL on the caller's connection;
  a disagreement (data changed under the audit, e.g. a sweep running) raises ``AuditInconsistent``,
  which a retry can fix.
- ``held`` is the number of records past their window that a hold keeps: the same predicate is
  rendered once more with the holds taken at ``-infinity`` (none in force), and the difference is
  the held count.

The module does not import Airflow: the DAG ``retention_audit``, the CLI ``governance audit``
and the tests run the same code.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg2 import sql

from governance.policy import SQL_DIR, Policy, Rule
from governance.windows import as_utc

OBJECT_STORE_RULE = "uploads-object-store"
OBJECT_STORE_REQUIREMENTS = ["CAT-5", "RET-5a", "RET-5b", "RET-5c", "RET-5d", "RET-9"]
GX_CHECK = "gx_unexpected_rows"
OBJECT_STORE_CHECK = "object_store"
AUDIT_COLUMNS = ("rule_id", "record_id", "overdue_seconds")
RUNBOOK = "docs/runbook.md"

# The audit predicates ask for the holds in force at "now"; rendering them at -infinity (no hold
# set yet) gives every record past its window, held or not.
_HOLDS_AT_NOW = "governance.holds_at(%(now)s::timestamptz)"
_HOLDS_AT_PARAM = "governance.holds_at(%(holds_as_of)s::timestamptz)"
_NO_HOLDS = "-infinity"

# SQLAlchemy's text() reads ``:name`` as a bind parameter (its own regex, SQLAlchemy 2.x); GX runs
# our query through text(), so such sequences (in comments, say) are escaped as ``\:name``.
_SQLALCHEMY_BIND = re.compile(r"(?<![:\w\\]):(\w+)(?![:\w])", re.UNICODE)
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")


class AuditError(RuntimeError):
    """The audit could not be carried out (a query failed); nothing was recorded."""


class AuditInconsistent(AuditError):
    """GX and the cross-check disagree: the data changed during the audit. Run it again."""


class AuditFailed(Exception):
    """Records or objects are past their window. The message names rules and counts only."""

    def __init__(self, report: AuditReport):
        self.report = report
        super().__init__(report.failure_message())


@dataclass(frozen=True)
class RuleAudit:
    """One rule's result: counts only, never a record's content."""

    rule: str
    requirements: list[str]
    overdue: int
    oldest_overdue_seconds: int | None  # None when nothing is overdue
    held: int | None = None  # past the window but kept by a legal hold (RET-8); None if unknown
    check: str = GX_CHECK
    gx_success: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)  # extra counts, e.g. objects listed

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "requirements": list(self.requirements),
            "overdue": self.overdue,
            "oldest_overdue_seconds": self.oldest_overdue_seconds,
            "held": self.held,
        }

    def headline(self) -> str:
        noun = "object" if self.check == OBJECT_STORE_CHECK else "record"
        plural = "" if self.overdue == 1 else "s"
        oldest = human_duration(self.oldest_overdue_seconds or 0)
        return (f"{self.rule} ({', '.join(self.requirements)}): {self.overdue} {noun}{plural} overdue, "
                f"oldest by {oldest}")


@dataclass
class AuditReport:
    run_id: str
    now: datetime
    policy_version: str
    rules: list[RuleAudit]

    @property
    def overdue_total(self) -> int:
        return sum(r.overdue for r in self.rules)

    @property
    def rules_over(self) -> list[RuleAudit]:
        return [r for r in self.rules if r.overdue > 0]

    def rule(self, rule_id: str) -> RuleAudit:
        for result in self.rules:
            if result.rule == rule_id:
                return result
        raise KeyError(rule_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "overdue_total": self.overdue_total,
            "rules": [r.to_json() for r in self.rules],
            "run_id": self.run_id,
            "now": self.now.isoformat().replace("+00:00", "Z"),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, policy_version: str = "") -> AuditReport:
        """Rebuild a report from ``to_json`` (e.g. an XCom), enough to format and enforce it."""
        from governance.windows import parse_instant

        rules = [
            RuleAudit(rule=r["rule"], requirements=list(r["requirements"]), overdue=int(r["overdue"]),
                      oldest_overdue_seconds=r.get("oldest_overdue_seconds"), held=r.get("held"),
                      check=OBJECT_STORE_CHECK if r["rule"] == OBJECT_STORE_RULE else GX_CHECK)
            for r in data["rules"]
        ]
        return cls(run_id=data.get("run_id", ""), now=parse_instant(data["now"]), policy_version=policy_version,
                   rules=rules)

    def format_table(self) -> str:
        """A table for people: rule, requirements, overdue, oldest overdue (human), held."""
        header = ("rule", "requirements", "overdue", "oldest overdue", "held")
        rows = [
            (r.rule, ", ".join(r.requirements), str(r.overdue),
             human_duration(r.oldest_overdue_seconds) if r.oldest_overdue_seconds is not None else "-",
             "-" if r.held is None else str(r.held))
            for r in self.rules
        ]
        widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
        right = {2, 4}

        def line(cells: tuple[str, ...]) -> str:
            return "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                             for i, c in enumerate(cells)).rstrip()

        out = [f"retention audit {self.run_id} as of {_iso(self.now)}", line(header),
               line(tuple("-" * w for w in widths))]
        out += [line(row) for row in rows]
        over = self.rules_over
        if over:
            out.append(f"OVERDUE: {self.overdue_total} in {len(over)} rule(s)")
        else:
            out.append("nothing is past its window")
        return "\n".join(out)

    def failure_message(self) -> str:
        over = self.rules_over
        if not over:
            return f"retention audit {self.run_id} as of {_iso(self.now)}: nothing is past its window"
        lines = [f"retention audit {self.run_id} as of {_iso(self.now)}: {self.overdue_total} overdue "
                 f"in {len(over)} rule(s):"]
        lines += [f"  - {r.headline()}" for r in over]
        lines.append(
            "What to do: run the retention sweep for these rules (DAG retention_sweep, or "
            f"'governance sweep --rule RULE --now {_iso(self.now)}'), then audit again; objects without a "
            f"record are removed by the sweep's object purge. If the sweep ran and they remain, see {RUNBOOK}."
        )
        return "\n".join(lines)

    def raise_if_overdue(self) -> None:
        if self.overdue_total > 0:
            raise AuditFailed(self)


def human_duration(seconds: int | float) -> str:
    """'1d 23h', '5h 3m', '42s': the two largest units, for on-call reading (rounded down)."""
    seconds = int(seconds)
    if seconds < 0:
        return "-" + human_duration(-seconds)
    units = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))
    values = []
    for name, size in units:
        value, seconds = divmod(seconds, size)
        values.append((value, name))
    first = next((i for i, (value, _) in enumerate(values) if value), len(values) - 1)
    return " ".join(f"{value}{name}" for value, name in values[first:first + 2] if value) or "0s"


def _iso(moment: datetime) -> str:
    return as_utc(moment).isoformat().replace("+00:00", "Z")


# --- rendering the audit predicates ------------------------------------------------------------

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


def render(cur: Any, text: str, params: dict[str, Any], *, holds: bool = True) -> str:
    """The predicate with every value inlined by psycopg2's quoting (cursor.mogrify)."""
    if not holds:
        if _HOLDS_AT_NOW not in text:
            raise AuditError("audit SQL does not call governance.holds_at(now); cannot count held records")
        text = text.replace(_HOLDS_AT_NOW, _HOLDS_AT_PARAM)
        params = {**params, "holds_as_of": _NO_HOLDS}
    return cur.mogrify(text, params).decode()


def _gx_escape(rendered: str) -> str:
    """Make rendered SQL survive GX's str.format ({batch}) and SQLAlchemy's text() (:binds)."""
    escaped = rendered.replace("{", "{{").replace("}", "}}")
    return _SQLALCHEMY_BIND.sub(lambda m: "\\" + m.group(0), escaped)


def gx_query(cur: Any, rendered: str, rule_id: str) -> str:
    """The UnexpectedRowsExpectation query of one rule: its overdue records, oldest first.

    ``{batch}`` is the run's one-row batch (the audited instant); it is cross-joined so that GX's
    batch substitution is the same whatever the predicate contains (GX renders it differently
    for queries with and without a JOIN).
    """
    rule_literal = cur.mogrify("%s", (rule_id,)).decode()
    return (
        "SELECT overdue.rule_id, overdue.record_id, overdue.overdue_seconds\n"
        "FROM (\n" + _gx_escape(rendered) + "\n) AS overdue\n"
        "CROSS JOIN {batch} AS audit_run\n"
        "WHERE overdue.rule_id = " + rule_literal + "\n"
        "ORDER BY overdue.overdue_seconds DESC, overdue.record_id"
    )


# --- GX ----------------------------------------------------------------------------------------

def sqlalchemy_url(db_url: str) -> str:
    """A SQLAlchemy URL from a libpq URL or key=value DSN; a unix-socket host goes in the query."""
    from psycopg2.extensions import parse_dsn
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


@dataclass(frozen=True)
class _GxOutcome:
    success: bool
    count: int
    oldest: int | None


def _safe_error(message: str | None) -> str:
    """The first line of an error, with quoted values blanked (they could be personal data)."""
    first = (message or "").strip().splitlines()[0] if (message or "").strip() else "unknown error"
    return _QUOTED.sub("'…'", first)[:300]


def run_gx(db_url: str, batch_query: str, queries: dict[str, str]) -> dict[str, _GxOutcome]:
    """Evaluate one UnexpectedRowsExpectation per rule in one validation run (ephemeral context).

    ``batch_query`` defines the run's one batch (a row holding the audited instant); each query
    in ``queries`` (rule id -> SQL using ``{batch}``) returns that rule's overdue records.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # The URL (with its password) is given as a runtime config variable, never stored in the
    # datasource config that GX may print; it also lets unix-socket URLs through GX's DSN check.
    context = gx.get_context(mode="ephemeral", runtime_environment={"governance_audit_db_url": sqlalchemy_url(db_url)})
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_postgres(name="governance_db", connection_string="${governance_audit_db_url}")
    asset = source.add_query_asset(name="audit_run", query=batch_query)
    batch = asset.add_batch_definition_whole_table("audit_run")
    suite = context.suites.add(gx.ExpectationSuite(name="retention_audit"))
    for rule_id, query in queries.items():
        suite.add_expectation(gx.expectations.UnexpectedRowsExpectation(
            unexpected_rows_query=query,
            description=f"no record of rule {rule_id} is past its window",
            meta={"rule_id": rule_id},
        ))
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name="retention_audit", data=batch, suite=suite))
    result = validation.run(result_format="COMPLETE")

    outcomes: dict[str, _GxOutcome] = {}
    for item in result.results:
        rule_id = item.expectation_config.meta["rule_id"]
        info = item.exception_info or {}
        if info.get("raised_exception"):
            raise AuditError(f"GX could not evaluate the audit of rule {rule_id}: "
                             f"{_safe_error(info.get('exception_message'))}")
        count = item.result.get("observed_value")
        rows = (item.result.get("details") or {}).get("unexpected_rows") or []
        if not isinstance(count, int):
            raise AuditError(f"GX returned no row count for rule {rule_id}")
        if rows and set(rows[0]) != set(AUDIT_COLUMNS):
            raise AuditError(f"audit rows of rule {rule_id} carry columns {sorted(rows[0])}, "
                             f"expected only {list(AUDIT_COLUMNS)}")
        oldest = int(rows[0]["overdue_seconds"]) if rows else None
        outcomes[rule_id] = _GxOutcome(success=bool(item.success), count=count, oldest=oldest)
    missing = set(queries) - set(outcomes)
    if missing:
        raise AuditError(f"GX returned no result for rule(s) {sorted(missing)}")
    return outcomes


# --- cross-check and held counts ---------------------------------------------------------------

def _aggregate(cur: Any, rendered: str) -> dict[str, tuple[int, int | None]]:
    """rule_id -> (count, max overdue_seconds) over one rendered predicate."""
    cur.execute(sql.SQL(
        "SELECT overdue.rule_id, count(*), max(overdue.overdue_seconds) FROM ({}) AS overdue GROUP BY 1"
    ).format(sql.SQL(rendered)))
    return {rule_id: (int(n), None if oldest is None else int(oldest)) for rule_id, n, oldest in cur.fetchall()}


# --- the object store (CAT-5, RET-9) -----------------------------------------------------------

def _iter_objects(s3: Any, bucket: str, prefix: str) -> Iterator[tuple[str, str, datetime]]:
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield bucket, item["Key"], item["LastModified"]


def _copy_objects(cur: Any, objects: Iterator[tuple[str, str, datetime]], batch: int = 10_000) -> int:
    """COPY (bucket, key, last_modified) into the session's temp table; keys never leave the DB."""
    listed = 0
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    pending = 0

    def flush() -> None:
        buffer.seek(0)
        cur.copy_expert("COPY pg_temp.audit_objects (bucket, object_key, last_modified) FROM STDIN WITH (FORMAT csv)",
                        buffer)
        buffer.seek(0)
        buffer.truncate()

    for bucket, key, modified in objects:
        writer.writerow((bucket, key, as_utc(modified).isoformat()))
        listed += 1
        pending += 1
        if pending >= batch:
            flush()
            pending = 0
    if pending:
        flush()
    return listed


def check_object_store(cur: Any, s3: Any, policy: Policy, now: datetime, params: dict[str, Any]) -> list[RuleAudit]:
    """Objects with no row (orphans) or whose row is overdue per the audit predicates.

    ``oldest_overdue_seconds`` is the larger of the oldest overdue row's age past its window and,
    for orphans, the time since the object was last modified (as of ``now``, never negative): an
    orphan has no clock of its own, and that is how long it has been stored without one.
    """
    from governance.objectstore import check_reachable

    results: list[RuleAudit] = []
    for category in policy.categories:
        for store in category.stores:
            if store.objects is None:
                continue
            rules = policy.rules_by_table.get(store.table, [])
            link = store.objects
            # List first, read the rows after: an upload being written (object, then row) is seen whole.
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS audit_objects "
                        "(bucket text NOT NULL, object_key text NOT NULL, last_modified timestamptz NOT NULL) "
                        "ON COMMIT DROP")
            cur.execute("TRUNCATE pg_temp.audit_objects")
            listed = 0
            for bucket in link.buckets:
                check_reachable(s3, bucket)
                listed += _copy_objects(cur, _iter_objects(s3, bucket, link.prefix))
            cur.execute("ANALYZE pg_temp.audit_objects")

            # Rendered predicates are plain SQL; '%' is doubled as the statement below takes parameters.
            texts = list(dict.fromkeys(audit_sql_text(rule) for rule in rules))
            overdue_sql = sql.SQL(" UNION ALL ").join(
                sql.SQL(render(cur, t, params).replace("%", "%%")) for t in texts)
            past_sql = sql.SQL(" UNION ALL ").join(
                sql.SQL(render(cur, t, params, holds=False).replace("%", "%%")) for t in texts)
            rule_ids = [rule.id for rule in rules]
            schema, table = store.table.split(".", 1)
            cur.execute(sql.SQL("""
                WITH overdue AS (
                    SELECT a.record_id, max(a.overdue_seconds) AS overdue_seconds
                    FROM ({overdue}) AS a WHERE a.rule_id = ANY(%(rules)s) GROUP BY a.record_id
                ), past AS (
                    SELECT DISTINCT p.record_id FROM ({past}) AS p WHERE p.rule_id = ANY(%(rules)s)
                ), linked AS (
                    SELECT o.last_modified, r.{key} AS record_id
                    FROM pg_temp.audit_objects o
                    LEFT JOIN {table} r ON r.{bucket_col} = o.bucket AND r.{key_col} = o.object_key
                )
                SELECT count(*) FILTER (WHERE l.record_id IS NULL),
                       max(greatest(0, floor(extract(epoch FROM %(now)s::timestamptz - l.last_modified))))
                           FILTER (WHERE l.record_id IS NULL),
                       count(ov.record_id),
                       max(ov.overdue_seconds),
                       count(*) FILTER (WHERE ov.record_id IS NULL AND pa.record_id IS NOT NULL)
                FROM linked l
                LEFT JOIN overdue ov ON ov.record_id = l.record_id
                LEFT JOIN past pa ON pa.record_id = l.record_id
            """).format(
                overdue=overdue_sql, past=past_sql, key=sql.Identifier(store.key),
                table=sql.Identifier(schema, table), bucket_col=sql.Identifier(link.bucket_column),
                key_col=sql.Identifier(link.key_column),
            ), {"rules": rule_ids, "now": as_utc(now)})
            orphans, oldest_orphan, overdue_objects, oldest_row, held = cur.fetchone()
            ages = [int(a) for a in (oldest_orphan, oldest_row) if a is not None]
            total = int(orphans) + int(overdue_objects)
            results.append(RuleAudit(
                rule=object_store_rule_id(store.table),
                requirements=list(OBJECT_STORE_REQUIREMENTS),
                overdue=total,
                oldest_overdue_seconds=max(ages) if total and ages else None,
                held=int(held),
                check=OBJECT_STORE_CHECK,
                gx_success=None,
                details={"objects_listed": listed, "orphans": int(orphans),
                         "objects_of_overdue_records": int(overdue_objects),
                         "buckets": list(link.buckets), "prefix": link.prefix, "table": store.table},
            ))
    return results


def object_store_rule_id(table: str) -> str:
    """'shop.uploads' -> 'uploads-object-store' (OBJECT_STORE_RULE for the photo shop)."""
    return table.split(".", 1)[1].replace("_", "-") + "-object-store"


# --- the audit ----------------------------------------------------------------------------------

def new_run_id(prefix: str = "audit") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def run_audit(conn: Any, s3: Any, policy: Policy, now: datetime, run_id: str, *, db_url: str,
              record: bool = True) -> AuditReport:
    """Audit every rule as of ``now`` and (``record``) append the evidence; returns the report.

    ``db_url`` (libpq URL or DSN) is what GX connects with; ``conn`` is used for rendering, the
    cross-check, the object-store check and the evidence. GX reads through its own connection, so
    commit the data to be audited first. The function ends its own transaction on ``conn``
    (commits the evidence when ``record``, rolls back otherwise). It does not raise on overdue
    data: call ``report.raise_if_overdue()``.
    """
    if s3 is None:
        from governance.settings import S3_ENDPOINT_ENV, SettingsError

        raise SettingsError("the audit also checks the object store (CAT-5, RET-9): give it an S3 client "
                            f"(--s3-endpoint-url or {S3_ENDPOINT_ENV}; in Airflow the connection governance_s3)")
    now = as_utc(now)
    params = audit_parameters(policy, now)
    rules = list(policy.rules)
    try:
        with conn.cursor() as cur:
            rendered = {rule.id: render(cur, audit_sql_text(rule), params) for rule in rules}
            queries = {rule.id: gx_query(cur, rendered[rule.id], rule.id) for rule in rules}
            batch_query = cur.mogrify("SELECT %s::timestamptz AS audited_at", (now,)).decode()
        outcomes = run_gx(db_url, batch_query, queries)

        with conn.cursor() as cur:
            checked: dict[str, dict[str, tuple[int, int | None]]] = {}
            past: dict[str, dict[str, tuple[int, int | None]]] = {}
            for rule in rules:
                if rule.audit not in checked:  # uploads.sql serves four rules: aggregate it once
                    text = audit_sql_text(rule)
                    checked[rule.audit] = _aggregate(cur, rendered[rule.id])
                    past[rule.audit] = (_aggregate(cur, render(cur, text, params, holds=False))
                                        if _HOLDS_AT_NOW in text else {})
            results: list[RuleAudit] = []
            for rule in rules:
                gx_outcome = outcomes[rule.id]
                count, oldest = checked[rule.audit].get(rule.id, (0, None))
                if (count, oldest) != (gx_outcome.count, gx_outcome.oldest):
                    raise AuditInconsistent(
                        f"rule {rule.id}: GX counted {gx_outcome.count} overdue (oldest {gx_outcome.oldest}s), the "
                        f"cross-check {count} (oldest {oldest}s); the data changed during the audit, run it again"
                    )
                if gx_outcome.success != (count == 0):
                    raise AuditInconsistent(f"rule {rule.id}: GX success={gx_outcome.success} with {count} overdue")
                held = None
                if _HOLDS_AT_NOW in audit_sql_text(rule):
                    held = max(0, past[rule.audit].get(rule.id, (0, None))[0] - count)
                results.append(RuleAudit(rule=rule.id, requirements=list(rule.requirements), overdue=count,
                                         oldest_overdue_seconds=oldest, held=held, check=GX_CHECK,
                                         gx_success=gx_outcome.success))
            results += check_object_store(cur, s3, policy, now, params)
            report = AuditReport(run_id=run_id, now=now, policy_version=policy.version, rules=results)
            if record:
                _record(cur, report)
        if record:
            conn.commit()
        else:
            conn.rollback()
    except BaseException:
        try:
            conn.rollback()
        except Exception:  # a broken connection: the original error is the one to see
            pass
        raise
    return report


def _record(cur: Any, report: AuditReport) -> None:
    """Append the per-rule and the summary evidence (idempotent per run, rule and kind)."""
    import json

    requirements: dict[str, None] = {}
    for result in report.rules:
        counts = {"overdue": result.overdue, "oldest_overdue_seconds": result.oldest_overdue_seconds,
                  "held": result.held}
        details: dict[str, Any] = {"check": result.check}
        if result.check == GX_CHECK:
            details["gx_success"] = result.gx_success
        details.update(result.details)
        cur.execute("SELECT governance.append_evidence(%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb)",
                    ("audit_rule", report.run_id, result.rule, "", list(result.requirements), report.now,
                     report.policy_version, json.dumps(counts), json.dumps(details)))
        requirements.update(dict.fromkeys(result.requirements))
    over = report.rules_over
    cur.execute("SELECT governance.append_evidence(%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb)",
                ("audit", report.run_id, "", "", list(requirements), report.now, report.policy_version,
                 json.dumps({"overdue_total": report.overdue_total, "rules_over": len(over)}),
                 json.dumps({"rules_over": [r.rule for r in over], "rules_checked": len(report.rules)})))
