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

- Every parameter (``now``, each rule's window) is inlined by ``cursor.mogrify`` (psycopg2's own
  quoting). Each predicate file returns every record past its window with a ``held`` flag (see
  its README) and is evaluated **once**, into an unlogged scratch table of the run (schema
  ``governance_audit_<run key>``, owned through a session advisory lock and dropped at the end;
  a crashed audit's scratch schema is dropped by the next audit). Only
  ``rule_id, record_id, overdue_seconds, held`` are copied: no personal column reaches it.
- GX's ``UnexpectedRowsExpectation`` per rule reads the rule's unheld rows there: the overdue
  count is GX's ``observed_value`` (its ``COUNT(*)``); GX also returns up to 200 of the rows
  (``result_format="COMPLETE"``), whose columns are checked.
- An aggregate over the same table on the caller's connection gives the oldest overdue age and the
  ``held`` count (past the window but kept by a hold) and cross-checks GX: the same count, and no
  row GX returned older than the oldest. A disagreement raises ``AuditInconsistent`` and nothing
  is recorded.
- The object store is listed by a second connection, concurrently with the predicates, into a
  scratch table; it is joined to the rows only once the listing is complete.

The module does not import Airflow: the DAG ``retention_audit``, the CLI ``governance audit``
and the tests run the same code.
"""

from __future__ import annotations

import csv
import io
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg2 import sql

from governance.db import advisory_key
from governance.errors import GovernanceError
from governance.policy import SQL_DIR, Policy, Rule
from governance.windows import as_utc

OBJECT_STORE_RULE = "uploads-object-store"
OBJECT_STORE_REQUIREMENTS = ["CAT-5", "RET-5a", "RET-5b", "RET-5c", "RET-5d", "RET-9"]
GX_CHECK = "gx_unexpected_rows"
OBJECT_STORE_CHECK = "object_store"
AUDIT_COLUMNS = ("rule_id", "record_id", "overdue_seconds")
PREDICATE_COLUMNS = (*AUDIT_COLUMNS, "held")  # what every audit predicate returns (include/sql/audit/README.md)
RUNBOOK = "docs/runbook.md"

# Scratch schemas of running audits: governance_audit_<key>, owned by a session advisory lock
# (namespace, key) so that the next audit can tell a crashed audit's leftovers from a running one's.
SCRATCH_PREFIX = "governance_audit_"
SCRATCH_LOCK_NAMESPACE = 0x60FE_00A1

_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")


class AuditError(GovernanceError):
    """The audit could not be carried out (a query failed); nothing was recorded."""


class AuditInconsistent(AuditError):
    """GX and the cross-check disagree: the data changed during the audit. Run it again."""


class AuditFailed(GovernanceError):
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
        return (
            f"{self.rule} ({', '.join(self.requirements)}): {self.overdue} {noun}{plural} overdue, oldest by {oldest}"
        )


@dataclass
class AuditReport:
    run_id: str
    now: datetime
    policy_version: str
    rules: list[RuleAudit]
    seconds: dict[str, float] = field(default_factory=dict)  # time per phase (setup, predicates, gx, ...)

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
            RuleAudit(
                rule=r["rule"],
                requirements=list(r["requirements"]),
                overdue=int(r["overdue"]),
                oldest_overdue_seconds=r.get("oldest_overdue_seconds"),
                held=r.get("held"),
                check=OBJECT_STORE_CHECK if r["rule"] == OBJECT_STORE_RULE else GX_CHECK,
            )
            for r in data["rules"]
        ]
        return cls(
            run_id=data.get("run_id", ""), now=parse_instant(data["now"]), policy_version=policy_version, rules=rules
        )

    def format_table(self) -> str:
        """A table for people: rule, requirements, overdue, oldest overdue (human), held."""
        header = ("rule", "requirements", "overdue", "oldest overdue", "held")
        rows = [
            (
                r.rule,
                ", ".join(r.requirements),
                str(r.overdue),
                human_duration(r.oldest_overdue_seconds) if r.oldest_overdue_seconds is not None else "-",
                "-" if r.held is None else str(r.held),
            )
            for r in self.rules
        ]
        widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
        right = {2, 4}

        def line(cells: tuple[str, ...]) -> str:
            return "  ".join(
                c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)
            ).rstrip()

        out = [
            f"retention audit {self.run_id} as of {_iso(self.now)}",
            line(header),
            line(tuple("-" * w for w in widths)),
        ]
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
        lines = [
            f"retention audit {self.run_id} as of {_iso(self.now)}: {self.overdue_total} overdue "
            f"in {len(over)} rule(s):"
        ]
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
    return " ".join(f"{value}{name}" for value, name in values[first : first + 2] if value) or "0s"


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


def render(cur: Any, text: str, params: dict[str, Any]) -> str:
    """The predicate with every value inlined by psycopg2's quoting (cursor.mogrify)."""
    return cur.mogrify(text, params).decode()


def gx_query(cur: Any, findings: sql.Composable, rule_id: str) -> str:
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
        suite.add_expectation(
            gx.expectations.UnexpectedRowsExpectation(
                unexpected_rows_query=query,
                description=f"no record of rule {rule_id} is past its window",
                meta={"rule_id": rule_id},
            )
        )
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name="retention_audit", data=batch, suite=suite)
    )
    result = validation.run(result_format="COMPLETE")

    outcomes: dict[str, _GxOutcome] = {}
    for item in result.results:
        rule_id = item.expectation_config.meta["rule_id"]
        info = item.exception_info or {}
        if info.get("raised_exception"):
            raise AuditError(
                f"GX could not evaluate the audit of rule {rule_id}: {_safe_error(info.get('exception_message'))}"
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
        outcomes[rule_id] = _GxOutcome(success=bool(item.success), count=count, oldest=oldest)
    missing = set(queries) - set(outcomes)
    if missing:
        raise AuditError(f"GX returned no result for rule(s) {sorted(missing)}")
    return outcomes


# --- the run's scratch schema: every predicate evaluated once --------------------------------------


def drop_stale_scratch(cur: Any) -> list[str]:
    """Drop the scratch schemas of audits that are no longer running (their session, and so their
    advisory lock, is gone: a killed worker). A running audit's schema is left alone."""
    cur.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s) ORDER BY 1", (SCRATCH_PREFIX,))
    dropped = []
    for (name,) in cur.fetchall():
        key = advisory_key(name[len(SCRATCH_PREFIX) :])
        cur.execute("SELECT pg_try_advisory_lock(%s, %s)", (SCRATCH_LOCK_NAMESPACE, key))
        if cur.fetchone()[0]:
            cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
            cur.execute("SELECT pg_advisory_unlock(%s, %s)", (SCRATCH_LOCK_NAMESPACE, key))
            dropped.append(name)
    return dropped


class _Scratch:
    """``governance_audit_<key>``: the findings of each predicate file and the object listings of
    one audit run. Unlogged (nothing to recover after a crash), readable by GX's own connection
    once committed, dropped at the end whatever happens."""

    def __init__(self, conn: Any):
        self.conn = conn
        self.key = uuid.uuid4().hex[:16]
        self.schema = SCRATCH_PREFIX + self.key
        self.lock_key = advisory_key(self.key)
        self.created = False

    def table(self, name: str) -> sql.Identifier:
        return sql.Identifier(self.schema, name)

    def create(self, object_tables: list[str]) -> None:
        with self.conn.cursor() as cur:
            drop_stale_scratch(cur)
            # The lock first, then the schema: another audit's clean-up never sees it unowned.
            cur.execute("SELECT pg_advisory_lock(%s, %s)", (SCRATCH_LOCK_NAMESPACE, self.lock_key))
            self.created = True
            cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
            for name in object_tables:
                cur.execute(
                    sql.SQL(
                        "CREATE UNLOGGED TABLE {} (bucket text NOT NULL, object_key text NOT NULL, "
                        "last_modified timestamptz NOT NULL)"
                    ).format(self.table(name))
                )
        self.conn.commit()

    def drop(self) -> None:
        if not self.created:
            return
        try:
            self.conn.rollback()
            with self.conn.cursor() as cur:
                cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema)))
                cur.execute("SELECT pg_advisory_unlock(%s, %s)", (SCRATCH_LOCK_NAMESPACE, self.lock_key))
            self.conn.commit()
        except Exception:  # a broken connection: its lock is gone, the next audit drops the schema
            pass


def _evaluate(
    cur: Any, findings: sql.Identifier, audit_file: str, rendered: str, rule_ids: set[str]
) -> dict[str, tuple[int, int | None, int]]:
    """Evaluate one predicate file once into ``findings``; rule_id -> (overdue, oldest, held)."""
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
            f"audit SQL {audit_file} could not be evaluated: {_safe_error(getattr(exc, 'pgerror', None) or str(exc))}. "
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
        rule_id: (int(n), None if oldest is None else int(oldest), int(held))
        for rule_id, n, oldest, held in cur.fetchall()
    }
    unknown = sorted(set(counts) - rule_ids)
    if unknown:
        raise AuditError(
            f"audit SQL {audit_file} returns rows for rule(s) {unknown}; only "
            f"{sorted(rule_ids)} name it as their audit (include/sql/audit/README.md)"
        )
    return counts


# --- the object store (CAT-5, RET-9) -----------------------------------------------------------


def _iter_objects(s3: Any, bucket: str, prefix: str) -> Iterator[tuple[str, str, datetime]]:
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield bucket, item["Key"], item["LastModified"]


def _copy_objects(
    cur: Any,
    table: sql.Composable,
    objects: Iterator[tuple[str, str, datetime]],
    batch: int = 10_000,
    stop: threading.Event | None = None,
) -> int:
    """COPY (bucket, key, last_modified) into a scratch table, 10,000 at a time (memory stays flat);
    keys never leave the database."""
    listed = 0
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    pending = 0
    copy = sql.SQL("COPY {} (bucket, object_key, last_modified) FROM STDIN WITH (FORMAT csv)").format(table)

    def flush() -> None:
        buffer.seek(0)
        cur.copy_expert(copy, buffer)
        buffer.seek(0)
        buffer.truncate()

    for bucket, key, modified in objects:
        writer.writerow((bucket, key, as_utc(modified).isoformat()))
        listed += 1
        pending += 1
        if pending >= batch:
            flush()
            pending = 0
        if stop is not None and listed % 1_000 == 0 and stop.is_set():
            return listed
    if pending:
        flush()
    return listed


@dataclass
class _ObjectStore:
    """One store of the data map with objects: where they are listed and which rules govern it."""

    store: Any
    rules: list[Rule]
    table_name: str  # scratch table of the listing
    listed: int = 0


class _Listing(threading.Thread):
    """Lists every object store on its own connection while the predicates run on the caller's
    (on S3 the listing is bound by round trips, the predicates by PostgreSQL: they overlap)."""

    def __init__(self, db_url: str, s3: Any, scratch: _Scratch, stores: list[_ObjectStore]):
        super().__init__(name="governance-audit-listing", daemon=True)
        self.db_url, self.s3, self.scratch, self.stores = db_url, s3, scratch, stores
        self.error: BaseException | None = None
        self.seconds = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        from governance.db import connect

        start = time.perf_counter()
        conn = None
        try:
            conn = connect(self.db_url, application_name="governance-audit-listing")
            with conn.cursor() as cur:
                for item in self.stores:
                    for bucket in item.store.objects.buckets:
                        item.listed += _copy_objects(
                            cur,
                            self.scratch.table(item.table_name),
                            _iter_objects(self.s3, bucket, item.store.objects.prefix),
                            stop=self.stop,
                        )
                        if self.stop.is_set():
                            return
            conn.commit()
        except BaseException as exc:  # re-raised by the audit's thread
            self.error = exc
        finally:
            if conn is not None:
                conn.close()
            self.seconds = time.perf_counter() - start

    def result(self) -> None:
        self.join()
        if self.error is not None:
            error = self.error
            if isinstance(error, Exception) and not isinstance(error, (AuditError, RuntimeError)):
                raise AuditError(
                    f"listing the object store failed: {type(error).__name__}: {_safe_error(str(error))}"
                ) from None
            raise error


def _object_stores(policy: Policy) -> list[_ObjectStore]:
    stores = []
    for category in policy.categories:
        for store in category.stores:
            if store.objects is not None:
                stores.append(
                    _ObjectStore(store, list(policy.rules_by_table.get(store.table, [])), f"objects_{len(stores)}")
                )
    return stores


def check_object_store(
    cur: Any, scratch: _Scratch, item: _ObjectStore, findings: dict[str, sql.Identifier], now: datetime
) -> RuleAudit:
    """Objects with no row (orphans) or whose row is overdue per the audit predicates' findings.

    ``oldest_overdue_seconds`` is the larger of the oldest overdue row's age past its window and,
    for orphans, the time since the object was last modified (as of ``now``, never negative): an
    orphan has no clock of its own, and that is how long it has been stored without one.
    """
    store, link = item.store, item.store.objects
    objects = scratch.table(item.table_name)
    cur.execute(sql.SQL("ANALYZE {}").format(objects))
    rule_ids = [rule.id for rule in item.rules]
    tables = [findings[name] for name in dict.fromkeys(rule.audit for rule in item.rules)]
    past = (
        sql.SQL(" UNION ALL ").join(
            sql.SQL("SELECT record_id, overdue_seconds, held FROM {} WHERE rule_id = ANY(%(rules)s)").format(t)
            for t in tables
        )
        if tables
        else sql.SQL(
            "SELECT NULL::bigint AS record_id, NULL::bigint AS overdue_seconds, NULL::boolean AS held WHERE false"
        )
    )
    schema, table = store.table.split(".", 1)
    # A record is overdue when any of its findings is unheld, held when all of them are held.
    cur.execute(
        sql.SQL("""
        WITH finding AS (
            SELECT f.record_id, bool_and(f.held) AS held, max(f.overdue_seconds) FILTER (WHERE NOT f.held) AS overdue_seconds
            FROM ({past}) AS f GROUP BY f.record_id
        ), linked AS (
            SELECT o.last_modified, r.{key} AS record_id
            FROM {objects} o
            LEFT JOIN {table} r ON r.{bucket_col} = o.bucket AND r.{key_col} = o.object_key
        )
        SELECT count(*) FILTER (WHERE l.record_id IS NULL),
               max(greatest(0, floor(extract(epoch FROM %(now)s::timestamptz - l.last_modified))))
                   FILTER (WHERE l.record_id IS NULL),
               count(*) FILTER (WHERE f.record_id IS NOT NULL AND NOT f.held),
               max(f.overdue_seconds) FILTER (WHERE NOT f.held),
               count(*) FILTER (WHERE f.held)
        FROM linked l
        LEFT JOIN finding f ON f.record_id = l.record_id
    """).format(
            past=past,
            key=sql.Identifier(store.key),
            objects=objects,
            table=sql.Identifier(schema, table),
            bucket_col=sql.Identifier(link.bucket_column),
            key_col=sql.Identifier(link.key_column),
        ),
        {"rules": rule_ids, "now": as_utc(now)},
    )
    orphans, oldest_orphan, overdue_objects, oldest_row, held = cur.fetchone()
    ages = [int(a) for a in (oldest_orphan, oldest_row) if a is not None]
    total = int(orphans) + int(overdue_objects)
    return RuleAudit(
        rule=object_store_rule_id(store.table),
        requirements=list(OBJECT_STORE_REQUIREMENTS),
        overdue=total,
        oldest_overdue_seconds=max(ages) if total and ages else None,
        held=int(held),
        check=OBJECT_STORE_CHECK,
        gx_success=None,
        details={
            "objects_listed": item.listed,
            "orphans": int(orphans),
            "objects_of_overdue_records": int(overdue_objects),
            "buckets": list(link.buckets),
            "prefix": link.prefix,
            "table": store.table,
        },
    )


def object_store_rule_id(table: str) -> str:
    """'shop.uploads' -> 'uploads-object-store' (OBJECT_STORE_RULE for the photo shop)."""
    return table.split(".", 1)[1].replace("_", "-") + "-object-store"


# --- the audit ----------------------------------------------------------------------------------


def new_run_id(prefix: str = "audit") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def run_audit(
    conn: Any, s3: Any, policy: Policy, now: datetime, run_id: str, *, db_url: str, record: bool = True
) -> AuditReport:
    """Audit every rule as of ``now`` and (``record``) append the evidence; returns the report.

    ``db_url`` (libpq URL or DSN) is what GX and the object listing connect with; ``conn`` is used
    for the predicates, the cross-check, the object-store check and the evidence. Other connections
    read what ``conn`` wrote, so commit the data to be audited first. The function ends its own
    transaction on ``conn`` (commits the evidence when ``record``, rolls back otherwise) and leaves
    nothing else behind (its scratch schema is dropped). It does not raise on overdue data: call
    ``report.raise_if_overdue()``. ``report.seconds`` has the time of each phase.
    """
    if s3 is None:
        from governance.settings import S3_ENDPOINT_ENV, SettingsError

        raise SettingsError(
            "the audit also checks the object store (CAT-5, RET-9): give it an S3 client "
            f"(--s3-endpoint-url or {S3_ENDPOINT_ENV}; in Airflow the connection governance_s3)"
        )
    from governance.objectstore import check_reachable

    started = time.perf_counter()
    seconds: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        moment = time.perf_counter()
        seconds[name] = round(moment - since, 4)
        return moment

    now = as_utc(now)
    params = audit_parameters(policy, now)
    rules = list(policy.rules)
    stores = _object_stores(policy)
    scratch = _Scratch(conn)
    listing: _Listing | None = None
    try:
        # Reachability first: a wrong endpoint or bucket fails before any work.
        for item in stores:
            for bucket in item.store.objects.buckets:
                check_reachable(s3, bucket)
        conn.rollback()
        scratch.create([item.table_name for item in stores])
        listing = _Listing(db_url, s3, scratch, stores)
        listing.start()
        mark = lap("setup", started)

        # 1. Each predicate file once, into the scratch schema (one transaction, committed for GX).
        findings: dict[str, sql.Identifier] = {}
        checked: dict[str, tuple[int, int | None, int]] = {}
        with conn.cursor() as cur:
            for rule in rules:
                if rule.audit in findings:  # uploads.sql serves four rules
                    continue
                findings[rule.audit] = scratch.table(f"findings_{len(findings)}")
                names = {r.id for r in rules if r.audit == rule.audit}
                checked.update(
                    _evaluate(cur, findings[rule.audit], rule.audit, render(cur, audit_sql_text(rule), params), names)
                )
            queries = {rule.id: gx_query(cur, findings[rule.audit], rule.id) for rule in rules}
            batch_query = cur.mogrify("SELECT %s::timestamptz AS audited_at", (now,)).decode()
        conn.commit()
        mark = lap("predicates", mark)

        # 2. GX: one UnexpectedRowsExpectation per rule over its findings, cross-checked.
        outcomes = run_gx(db_url, batch_query, queries)
        mark = lap("gx", mark)
        results: list[RuleAudit] = []
        for rule in rules:
            gx_outcome = outcomes[rule.id]
            count, oldest, held = checked.get(rule.id, (0, None, 0))
            sample_older = gx_outcome.oldest is not None and (oldest is None or gx_outcome.oldest > oldest)
            if count != gx_outcome.count or sample_older or (count > 0) != (gx_outcome.oldest is not None):
                raise AuditInconsistent(
                    f"rule {rule.id}: GX counted {gx_outcome.count} overdue (oldest {gx_outcome.oldest}s), the "
                    f"cross-check {count} (oldest {oldest}s) over the same findings; nothing was recorded, run it again"
                )
            if gx_outcome.success != (count == 0):
                raise AuditInconsistent(f"rule {rule.id}: GX success={gx_outcome.success} with {count} overdue")
            results.append(
                RuleAudit(
                    rule=rule.id,
                    requirements=list(rule.requirements),
                    overdue=count,
                    oldest_overdue_seconds=oldest,
                    held=held,
                    check=GX_CHECK,
                    gx_success=gx_outcome.success,
                )
            )

        # 3. The object store, once its listing is complete (list first, read the rows after).
        listing.result()
        seconds["listing"] = round(listing.seconds, 4)
        mark = lap("listing_wait", mark)
        with conn.cursor() as cur:
            for item in stores:
                results.append(check_object_store(cur, scratch, item, findings, now))
            mark = lap("object_store", mark)
            report = AuditReport(run_id=run_id, now=now, policy_version=policy.version, rules=results, seconds=seconds)
            if record:
                seconds["total"] = round(time.perf_counter() - started, 4)
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
    finally:
        if listing is not None and listing.is_alive():
            listing.stop.set()
            listing.join()
        scratch.drop()
    seconds["total"] = round(time.perf_counter() - started, 4)
    return report


def _record(cur: Any, report: AuditReport) -> None:
    """Append the per-rule and the summary evidence (idempotent per run, rule and kind)."""
    import json

    requirements: dict[str, None] = {}
    for result in report.rules:
        counts = {
            "overdue": result.overdue,
            "oldest_overdue_seconds": result.oldest_overdue_seconds,
            "held": result.held,
        }
        details: dict[str, Any] = {"check": result.check}
        if result.check == GX_CHECK:
            details["gx_success"] = result.gx_success
        details.update(result.details)
        cur.execute(
            "SELECT governance.append_evidence(%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb)",
            (
                "audit_rule",
                report.run_id,
                result.rule,
                "",
                list(result.requirements),
                report.now,
                report.policy_version,
                json.dumps(counts),
                json.dumps(details),
            ),
        )
        requirements.update(dict.fromkeys(result.requirements))
    over = report.rules_over
    cur.execute(
        "SELECT governance.append_evidence(%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb)",
        (
            "audit",
            report.run_id,
            "",
            "",
            list(requirements),
            report.now,
            report.policy_version,
            json.dumps({"overdue_total": report.overdue_total, "rules_over": len(over)}),
            json.dumps(
                {"rules_over": [r.rule for r in over], "rules_checked": len(report.rules), "seconds": report.seconds}
            ),
        ),
    )
