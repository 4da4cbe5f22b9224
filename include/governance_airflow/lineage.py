"""Lineage (#14 item 4): the datasets each sweep, audit, request-answering and audience export
task reads and writes, derived from the policy, reported to Airflow's hook lineage collector. The
OpenLineage provider's listener adds them to the task's COMPLETE (or FAIL) event as inputs and
outputs, so a data catalog shows which DAG removes what and what leaves the shop (RET-1..RET-10,
CAT-5; ACC-1, POR-1, ERA-1; TP-1).

Datasets are named per the OpenLineage naming spec: a table as namespace ``postgres://host:port``,
name ``database.schema.table`` (the ``governance_db`` connection's server and database); a bucket
as namespace ``s3://bucket``, name ``/``. Only tables and buckets, never an object key or a row.
Nothing is collected unless the provider is configured (a transport), see docs/architecture.md,
"Lineage". Reporting is best effort: a failure is logged and never stops a sweep the law requires.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from governance.settings import AIRFLOW_DB_CONN_ID, AIRFLOW_S3_CONN_ID

if TYPE_CHECKING:
    from psycopg2.extensions import connection

    from governance.policy import Policy

log = logging.getLogger(__name__)

EVIDENCE = "governance.evidence"  # every effect commits with its evidence (habit 5)
HOLDS = "governance.legal_holds"  # every sweep, erasure and audit honours them (RET-8)
REQUESTS = "governance.subject_requests"
OUTBOX = "governance.recipient_outbox"  # TP-5: the recipients' notices
PROCESSING = "governance.processing_register"  # RES-1, OBJ-1, CON-1
EXPORT_KINDS = ("access", "portability")  # ACC-1, POR-1: an archive in the exports bucket
ERASURE_KINDS = ("erasure", "account_deletion")  # ERA-1, RET-7


def bucket(name: str) -> str:
    return f"s3://{name}"


def is_bucket(dataset: str) -> bool:
    return dataset.startswith("s3://")


@dataclass(frozen=True)
class Lineage:
    """What a task reads and writes: tables as ``schema.table``, buckets as ``s3://bucket``."""

    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()

    @classmethod
    def of(cls, reads: Iterable[str], writes: Iterable[str]) -> Lineage:
        """Each dataset once, in first-named order."""
        return cls(tuple(dict.fromkeys(reads)), tuple(dict.fromkeys(writes)))


def _rule_closure(policy: Policy, rule_ids: Iterable[str]) -> list[str]:
    """The rules and, first, the rules they sweep ``after`` (a rule's task sweeps those too)."""
    seen: dict[str, None] = {}

    def visit(rule_id: str) -> None:
        for dependency in policy.rule(rule_id).after:
            visit(dependency)
        seen.setdefault(rule_id, None)

    for rule_id in rule_ids:
        visit(rule_id)
    return list(seen)


def _store_buckets(policy: Policy, tables: Iterable[str]) -> list[str]:
    """The buckets holding the objects that rows of ``tables`` point at (CAT-5)."""
    found = []
    for category in policy.categories:
        for store in category.stores:
            if store.table in tables and store.objects is not None:
                found += [bucket(name) for name in store.objects.buckets]
    return found


def _data_map_tables(policy: Policy) -> list[str]:
    return [store.table for category in policy.categories for store in category.stores]


def sweep_lineage(policy: Policy, rule_ids: Iterable[str], *, dry_run: bool = False) -> Lineage:
    """A sweep of ``rule_ids``: reads each rule's table, its clock view and the holds; writes (not in
    a dry run) the table, the buckets of its objects and the evidence."""
    rules = [policy.rule(rule_id) for rule_id in _rule_closure(policy, rule_ids)]
    tables = [rule.table for rule in rules]
    views = [rule.clock.view for rule in rules if rule.clock.view]
    if dry_run:
        return Lineage.of([*tables, *views, HOLDS], [])
    return Lineage.of([*tables, *views, HOLDS], [*tables, *_store_buckets(policy, tables), EVIDENCE])


def audit_lineage(policy: Policy) -> Lineage:
    """The audit: reads every table of the data map and every rule's, the holds, the request ledger
    (its rights checks) and lists every bucket of the data map's objects; writes its evidence."""
    tables = [*(rule.table for rule in policy.rules), *_data_map_tables(policy)]
    return Lineage.of([*tables, HOLDS, REQUESTS, *_store_buckets(policy, tables)], [EVIDENCE])


def request_lineage(policy: Policy, kind: str) -> Lineage:
    """Answering a request of ``kind``. An export (ACC-1, POR-1) reads the person's records in every
    store of the data map and their objects, and writes the archive to the exports bucket; an
    erasure (ERA-1, RET-7) writes every store and its buckets, a rectification (REC-1) the stores,
    a restriction, objection or consent withdrawal the processing register and the tables its
    purposes switch off; the kinds that change data queue the recipients' notices (TP-5)."""
    tables = _data_map_tables(policy)
    reads = [REQUESTS, *tables, HOLDS]
    ledger = [REQUESTS, EVIDENCE]
    notices = [OUTBOX] if policy.recipients else []
    store = policy.object_store
    if kind in EXPORT_KINDS:
        exports = [bucket(store.exports_bucket)] if store.exports_bucket else []
        return Lineage.of([*reads, *_store_buckets(policy, tables)], [*exports, *ledger])
    if kind in ERASURE_KINDS:
        erasure_ledger = [bucket(store.erasure_ledger_bucket)] if store.erasure_ledger_bucket else []
        return Lineage.of(reads, [*tables, *_store_buckets(policy, tables), *erasure_ledger, *notices, *ledger])
    if kind == "rectification":
        return Lineage.of(reads, [*tables, *notices, *ledger])
    switched = [switch.table for purpose in policy.purposes for switch in purpose.switch_off]
    held = [HOLDS] if kind == "restriction" else []  # decision RES-1: a restriction holds the person
    return Lineage.of(reads, [PROCESSING, *switched, *held, *notices, *ledger])


# What an audience's eligibility reads (include/sql/audiences/eligible.sql, TP-1, TP-3): the live
# accounts, their consents, the switch-offs in force and the notices sent.
AUDIENCE_READS = (
    "shop.accounts",
    "shop.marketing_consents",
    PROCESSING,
    "governance.audience_notices",
    HOLDS,
)


def audience_lineage(policy: Policy, audience_id: str) -> Lineage:
    """An audience export (TP-1): reads who may be in it; writes the file to the drop's bucket (and
    purges the drop's expired files, RET-9), its row in ``governance.audience_files`` and the evidence."""
    drop = policy.audience(audience_id).drop
    return Lineage.of(
        [*AUDIENCE_READS, "governance.audience_files"], [bucket(drop.bucket), "governance.audience_files", EVIDENCE]
    )


@dataclass(frozen=True)
class Server:
    """Where the tables are: the host, port and database of an Airflow postgres connection."""

    host: str
    port: int
    database: str

    @classmethod
    def of(cls, conn_id: str = AIRFLOW_DB_CONN_ID) -> Server:
        from airflow.sdk import Connection

        conn = Connection.get(conn_id)
        host = conn.host or "localhost"
        # a unix socket (host=/var/run/postgresql) has no host name: the server is this machine
        return cls("localhost" if host.startswith("/") else host, int(conn.port or 5432), conn.schema or "postgres")

    def uri(self, dataset: str) -> str:
        """The Airflow asset URI of a dataset: ``postgres://host:port/db/schema/table`` or ``s3://bucket/``."""
        if is_bucket(dataset):
            return dataset.rstrip("/") + "/"
        schema, _, table = dataset.partition(".")
        return f"postgres://{self.host}:{self.port}/{self.database}/{schema}/{table}"


def enabled() -> bool:
    """Whether anything reads lineage in this process: the OpenLineage provider, once configured,
    registers a hook lineage reader; otherwise the collector is a no-op."""
    from airflow.sdk import lineage as hook_lineage

    return not isinstance(hook_lineage.get_hook_lineage_collector(), hook_lineage.NoOpCollector)


def report(lineage: Lineage, conn_id: str = AIRFLOW_DB_CONN_ID) -> None:
    """Hand ``lineage`` to the hook lineage collector of this task. A task process runs one task in
    production; ``dag.test()`` runs every task in one process, where the process-wide collector
    would carry the previous task's datasets, so each report starts a fresh collector."""
    try:
        from airflow.sdk import lineage as hook_lineage

        hook_lineage.get_hook_lineage_collector.cache_clear()
        collector = hook_lineage.get_hook_lineage_collector()
        if isinstance(collector, hook_lineage.NoOpCollector):
            return  # OpenLineage is not configured: nothing reads lineage
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        server = Server.of(conn_id)
        # the hooks of the connections the datasets belong to, as their lineage context (no I/O)
        db, s3 = PostgresHook(postgres_conn_id=conn_id), S3Hook(aws_conn_id=AIRFLOW_S3_CONN_ID)
        for dataset in lineage.reads:
            collector.add_input_asset(context=s3 if is_bucket(dataset) else db, uri=server.uri(dataset))
        for dataset in lineage.writes:
            collector.add_output_asset(context=s3 if is_bucket(dataset) else db, uri=server.uri(dataset))
    except Exception as exc:  # lineage must never fail the task whose effect the policy requires
        log.warning("lineage not reported: %s", type(exc).__name__)


def report_sweep(policy: Policy, rule_ids: Iterable[str], *, dry_run: bool) -> None:
    """``sweep_lineage`` reported: one call in a sweep task's body."""
    report(sweep_lineage(policy, rule_ids, dry_run=dry_run))


def report_audit(policy: Policy, conn_id: str = AIRFLOW_DB_CONN_ID) -> None:
    """``audit_lineage`` reported, on the server of ``conn_id`` (the auditor's login, SEC-4)."""
    report(audit_lineage(policy), conn_id)


def report_audience(policy: Policy, audience_id: str) -> None:
    """``audience_lineage`` reported: one call in the audience export task's body."""
    report(audience_lineage(policy, audience_id))


def report_request(conn: connection, policy: Policy, request_id: int) -> None:
    """``request_lineage`` of the request's kind (read from the ledger), reported."""
    from governance.db import transaction
    from governance.requests import fetch

    if not enabled():
        return  # no query for lineage nobody reads
    try:
        with transaction(conn, read_only=True) as cur:
            kind = fetch(cur, request_id).kind
    except Exception as exc:  # the handler reports a missing request properly; lineage only logs
        log.warning("lineage not reported for request %s: %s", request_id, type(exc).__name__)
        return
    report(request_lineage(policy, kind))
