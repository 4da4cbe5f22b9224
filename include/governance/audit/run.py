"""``run_audit``: one audit run, phase by phase, and the cross-check of GX's counts.

The phases: set-up (the object store reachable, the scratch schema, the listing started), the
predicates and the rights checks (each file once, committed for GX), GX with its cross-check, the object-store check once
the listing is complete, and the evidence; each phase timed in ``report.seconds``. A failure in any
phase records nothing and leaves nothing behind.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psycopg2 import sql
from psycopg2.extensions import connection

from governance.audit.gx import GxOutcome, check_key, gx_query, run_gx
from governance.audit.listing import ListedStore, Listing, listed_stores
from governance.audit.location import check_locations
from governance.audit.objects import check_object_store
from governance.audit.predicates import NOTHING_FOUND, Counted, audit_parameters, evaluate_all
from governance.audit.record import record_evidence
from governance.audit.report import GX_CHECK, AuditReport, RightsAudit, RuleAudit
from governance.audit.reports import check_reports
from governance.audit.rights import RightsCheck, evaluate_checks, load_checks, rights_gx_query
from governance.audit.scratch import Scratch
from governance.db import transaction
from governance.errors import AuditInconsistent, SettingsError
from governance.objectstore import check_reachable
from governance.policy import Policy, Rule
from governance.settings import S3_ENDPOINT_ENV
from governance.windows import as_utc

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def new_run_id(prefix: str = "audit") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def run_audit(
    conn: connection,
    s3: S3Client | None,
    policy: Policy,
    now: datetime,
    run_id: str,
    *,
    db_url: str,
    record: bool = True,
    rights_dir: Path | None = None,
) -> AuditReport:
    """Audit every rule as of ``now`` and (``record``) append the evidence; returns the report.

    ``db_url`` (libpq URL or DSN) is what GX and the object listing connect with; ``conn`` is used
    for the predicates, the cross-check, the object-store check and the evidence. Other connections
    read what ``conn`` wrote, so commit the data to be audited first. The function ends its own
    transaction on ``conn`` (commits the evidence when ``record``, rolls back otherwise) and leaves
    nothing else behind (its scratch schema is dropped). It does not raise on overdue data: call
    ``report.raise_if_overdue()``. ``report.seconds`` has the time of each phase. The rights
    checks are the files of ``rights_dir`` (default ``include/sql/audit/rights/``).
    """
    if s3 is None:
        raise SettingsError(
            "the audit also checks the object store (CAT-5, RET-9): give it an S3 client "
            f"(--s3-endpoint-url or {S3_ENDPOINT_ENV}; in Airflow the connection governance_s3)"
        )
    run = _Run(conn, s3, policy, as_utc(now), run_id, db_url, load_checks(rights_dir))
    try:
        run.start()
        evaluated = run.evaluate_predicates()
        results = run.gx_cross_checked(evaluated)
        report = run.check_objects_and_record(evaluated.findings, results, record=record)
    except BaseException:
        try:
            conn.rollback()
        except Exception:  # a broken connection: the original error is the one to see
            pass
        raise
    finally:
        run.listing.cancel()
        run.scratch.drop()
    run.laps.total()
    return report


class _Laps:
    """The time of each phase, in seconds, each since the end of the one before."""

    def __init__(self) -> None:
        self.started = self.mark = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def lap(self, name: str) -> None:
        moment = time.perf_counter()
        self.seconds[name] = round(moment - self.mark, 4)
        self.mark = moment

    def total(self) -> None:
        self.seconds["total"] = round(time.perf_counter() - self.started, 4)


@dataclass(frozen=True)
class _Evaluated:
    """The predicates evaluated: each file's findings table, each rule's counts and GX query."""

    findings: dict[str, sql.Identifier]
    counted: dict[str, Counted]
    queries: dict[str, str]
    batch_query: str  # GX's one batch: a row holding the audited instant
    rights_counted: dict[str, int]  # rights check id -> its findings, counted on the audit's connection
    rights_queries: dict[str, str]


@dataclass
class _Run:
    """One audit run's state: the scratch schema, the listing and the phase times."""

    conn: connection
    s3: S3Client
    policy: Policy
    now: datetime
    run_id: str
    db_url: str
    checks: list[RightsCheck]
    laps: _Laps = field(default_factory=_Laps)
    rights: list[RightsAudit] = field(default_factory=list)
    params: dict[str, Any] = field(init=False)
    stores: list[ListedStore] = field(init=False)
    scratch: Scratch = field(init=False)
    listing: Listing = field(init=False)

    def __post_init__(self) -> None:
        self.params = audit_parameters(self.policy, self.now)
        self.stores = listed_stores(self.policy)
        self.scratch = Scratch(self.conn)
        self.listing = Listing(self.db_url, self.s3, self.scratch, self.stores)

    def start(self) -> None:
        """Reachability first (a wrong endpoint or bucket fails before any work), then the scratch
        schema, then the listing, which runs while the predicates do."""
        for item in self.stores:
            for bucket in item.link.buckets:
                check_reachable(self.s3, bucket)
        self.conn.rollback()
        self.scratch.create([item.table_name for item in self.stores])
        self.listing.start()
        self.laps.lap("setup")

    def evaluate_predicates(self) -> _Evaluated:
        """Each predicate file and each rights check once, into the scratch schema (one transaction,
        committed for GX)."""
        with transaction(self.conn) as cur:
            findings, counted = evaluate_all(cur, self.scratch, self.policy.rules, self.params)
            queries = {rule.id: gx_query(cur, findings[rule.audit], rule.id) for rule in self.policy.rules}
            batch_query = cur.mogrify("SELECT %s::timestamptz AS audited_at", (self.now,)).decode()
            self.laps.lap("predicates")
            tables, rights_counted = evaluate_checks(cur, self.scratch, self.s3, self.policy, self.checks, self.params)
            rights_queries = {c: rights_gx_query(cur, table, c) for c, table in tables.items()}
        self.laps.lap("rights")
        return _Evaluated(findings, counted, queries, batch_query, rights_counted, rights_queries)

    def gx_cross_checked(self, evaluated: _Evaluated) -> list[RuleAudit]:
        """GX: one UnexpectedRowsExpectation per rule over its findings, each cross-checked."""
        outcomes = run_gx(self.db_url, evaluated.batch_query, evaluated.queries, evaluated.rights_queries)
        self.laps.lap("gx")
        self.rights = [
            rights_cross_checked(check, outcomes[check_key(check.id)], evaluated.rights_counted[check.id])
            for check in self.checks
        ]
        return [
            cross_checked(rule, outcomes[rule.id], evaluated.counted.get(rule.id, NOTHING_FOUND))
            for rule in self.policy.rules
        ]

    def check_objects_and_record(
        self, findings: dict[str, sql.Identifier], results: list[RuleAudit], *, record: bool
    ) -> AuditReport:
        """The object store once its listing is complete (list first, read the rows after), then
        the evidence, committed; without ``record`` the transaction is read-only and rolled back."""
        self.listing.result()
        self.laps.seconds["listing"] = round(self.listing.seconds, 4)
        self.laps.lap("listing_wait")
        results.append(check_locations(self.s3, self.policy))  # SEC-3
        reports = check_reports(self.s3, self.policy, self.now)  # RET-9: the compliance reports (#13)
        if reports is not None:
            results.append(reports)
        with transaction(self.conn, read_only=not record) as cur:
            for item in self.stores:
                results.append(check_object_store(cur, self.scratch, item, findings, self.now))
            self.laps.lap("object_store")
            report = AuditReport(
                run_id=self.run_id,
                now=self.now,
                policy_version=self.policy.version,
                rules=results,
                seconds=self.laps.seconds,
                rights=self.rights,
            )
            if record:
                self.laps.total()
                record_evidence(cur, report)
        return report


def cross_checked(rule: Rule, outcome: GxOutcome, counted: Counted) -> RuleAudit:
    """The rule's result when GX and the aggregate over the same findings agree: the same count,
    no row GX returned older than the oldest, and GX's success exactly when nothing is overdue."""
    count, oldest = counted.overdue, counted.oldest
    sample_older = outcome.oldest is not None and (oldest is None or outcome.oldest > oldest)
    if count != outcome.count or sample_older or (count > 0) != (outcome.oldest is not None):
        raise AuditInconsistent(
            f"rule {rule.id}: GX counted {outcome.count} overdue (oldest {outcome.oldest}s), the "
            f"cross-check {count} (oldest {oldest}s) over the same findings; nothing was recorded, run it again"
        )
    if outcome.success != (count == 0):
        raise AuditInconsistent(f"rule {rule.id}: GX success={outcome.success} with {count} overdue")
    return RuleAudit(
        rule=rule.id,
        requirements=list(rule.requirements),
        overdue=count,
        oldest_overdue_seconds=oldest,
        held=counted.held,
        check=GX_CHECK,
        gx_success=outcome.success,
    )


def rights_cross_checked(check: RightsCheck, outcome: GxOutcome, counted: int) -> RightsAudit:
    """The check's result when GX's count and the aggregate over the same findings agree, and GX
    succeeded exactly when nothing was found."""
    if counted != outcome.count or outcome.success != (counted == 0):
        raise AuditInconsistent(
            f"rights check {check.id}: GX counted {outcome.count} (success={outcome.success}), the cross-check "
            f"{counted} over the same findings; nothing was recorded, run it again"
        )
    return RightsAudit(
        check=check.id,
        requirements=list(check.requirements),
        findings=counted,
        on_failure=check.on_failure,
        gx_success=outcome.success,
    )
