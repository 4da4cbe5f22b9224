"""Lineage (#14 item 4): the OpenLineage provider, configured with its file transport, emits for
each sweep, audit, request-answering and audience export task the tables and buckets it reads and
writes, derived from the policy (``governance_airflow.lineage``), and no event carries personal
data (habit 6).

A small seeded shop with a verified access request (ACC-1); ``retention_sweep``,
``retention_audit``, ``subject_requests`` and ``advertising_audience`` (TP-1) run through
``dag.test()`` in a process of their own whose environment configures the provider
(``tests/integration/lineage_worker.py``: the provider decides at plugin load whether it is
enabled). The COMPLETE events are read back from the transport's file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from governance.db import connect
from governance.objectstore import ensure_bucket
from governance.policy import load_policy
from governance_airflow.lineage import audience_lineage, audit_lineage, request_lineage, sweep_lineage
from tests.integration import request_support as rs
from tests.integration.test_no_personal_data import _leaks, _needles

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
POLICY = load_policy()


def run_worker(tmp_path: Path, *dag_ids: str) -> tuple[dict, list[dict]]:
    """The DAGs run with the provider's file transport; their states and every event written."""
    events = tmp_path / "openlineage.jsonl"
    env = {
        **os.environ,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(events), "append": True}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "governance-test",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT)]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "tests.integration.lineage_worker", NOW.isoformat(), *dag_ids],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    line = next((x for x in result.stdout.splitlines() if x.startswith("LINEAGE-WORKER ")), None)
    assert line, f"the worker failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    written = [json.loads(x) for x in events.read_text().splitlines() if x.strip()] if events.exists() else []
    return json.loads(line.removeprefix("LINEAGE-WORKER ")), written


def datasets(event: dict, side: str) -> set[tuple[str, str]]:
    return {(d["namespace"], d["name"]) for d in event.get(side, [])}


def expected(lineage, server: tuple[str, int, str]) -> tuple[set, set]:
    host, port, database = server

    def named(dataset: str) -> tuple[str, str]:
        if dataset.startswith("s3://"):
            return dataset, "/"
        return f"postgres://{host}:{port}", f"{database}.{dataset}"

    return {named(d) for d in lineage.reads}, {named(d) for d in lineage.writes}


def events_of(events: list[dict], dag_id: str, task_id: str) -> list[dict]:
    """The COMPLETE events of the tasks whose id starts with ``task_id`` (a stage's mapped tasks)."""
    return [
        e for e in events if e.get("eventType") == "COMPLETE" and e["job"]["name"].startswith(f"{dag_id}.{task_id}")
    ]


@pytest.fixture
def dag_env(airflow_home, airflow_connections, smtp_inbox, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_GOVERNANCE_RECIPIENT_PSEUDONYM",
        json.dumps({"conn_type": "generic", "password": "lineage-test-recipient-pseudonym-key-0123456789"}),
    )
    return airflow_connections


def test_sweep_audit_request_and_audience_tasks_name_their_datasets_and_no_personal_data(dag_env, s3, tmp_path):
    from psycopg2.extensions import parse_dsn

    from governance_dev.loader import personal_values, seed

    conn = connect(dag_env["db_url"])
    try:
        seed(conn, s3, POLICY, NOW, customers=100, seed=7)
        rs.buckets(s3)
        ensure_bucket(s3, POLICY.audience("meta-customers").drop.bucket)
        person = rs.seed_person(conn, s3, POLICY, NOW)
        request_id = rs.open_verified(conn, POLICY, NOW)
        needles = _needles(personal_values(conn) | set(person.personal_values))
        with conn.cursor() as cur:  # the requests the run will answer (the seed opens some too)
            cur.execute(
                "SELECT request_id, kind FROM governance.subject_requests WHERE state IN ('verified', 'in_progress')"
            )
            kinds = dict(cur.fetchall())
        conn.rollback()
    finally:
        conn.close()
    assert any("@" in n for n in needles) and kinds[request_id] == "access"

    dag_ids = ("retention_sweep", "retention_audit", "subject_requests", "advertising_audience")
    states, events = run_worker(tmp_path, *dag_ids)
    assert {dag: s["state"] for dag, s in states.items()} == dict.fromkeys(states, "success"), states

    conn = connect(dag_env["db_url"])
    with conn.cursor() as cur:  # the requests this run answered, by id: their kinds
        cur.execute(
            "SELECT request_id, state FROM governance.subject_requests WHERE request_id = ANY(%s)", (list(kinds),)
        )
        assert dict(cur.fetchall()) == dict.fromkeys(kinds, "completed")
    conn.close()
    params = parse_dsn(dag_env["db_url"])
    server = (params.get("host", "127.0.0.1"), int(params.get("port", 5432)), params["dbname"])

    def pg(*tables: str) -> set[tuple[str, str]]:  # the OpenLineage naming spec, written out by hand
        return {(f"postgres://{server[0]}:{server[1]}", f"{server[2]}.{table}") for table in tables}

    def s3_(*names: str) -> set[tuple[str, str]]:
        return {(f"s3://{name}", "/") for name in names}

    # Each sweep task (mapped, one per rule): exactly what governance_airflow.lineage derives for its
    # rule, and, for a few rules written out here, exactly the tables and buckets the policy implies.
    sweeps = [
        (datasets(e, "inputs"), datasets(e, "outputs")) for e in events_of(events, "retention_sweep", "sweep_stage_")
    ]
    assert len(sweeps) == len(POLICY.rules)
    for rule in POLICY.rules:
        assert expected(sweep_lineage(POLICY, [rule.id]), server) in sweeps, rule.id
    holds, evidence = pg("governance.legal_holds"), pg("governance.evidence")
    assert (pg("shop.visits") | holds, pg("shop.visits") | evidence) in sweeps  # RET-1: a column clock
    guest_reads = pg("shop.uploads", "governance_clocks.ret_5c_guest_uploads") | holds
    assert (guest_reads, pg("shop.uploads") | s3_("shop-uploads") | evidence) in sweeps  # CAT-5: the photos' bucket
    exports_swept = pg("governance.request_exports") | s3_("governance-exports") | evidence
    assert exports_swept in [writes for _, writes in sweeps]  # RET-9: the archives go with their rows
    accounts = pg("shop.accounts", "shop.calendar_events", "shop.saved_products") | evidence
    assert accounts in [writes for _, writes in sweeps]  # the account rule sweeps its `after` rules first

    (audit,) = events_of(events, "retention_audit", "audit")
    assert (datasets(audit, "inputs"), datasets(audit, "outputs")) == expected(audit_lineage(POLICY), server)
    assert pg(*(rule.table for rule in POLICY.rules)) | holds <= datasets(audit, "inputs")
    assert s3_("shop-uploads", "governance-exports") <= datasets(audit, "inputs")  # the object listing
    assert datasets(audit, "outputs") == evidence  # the audit changes nothing but its evidence

    # One answer per request the run picked (the seed opens some too), each with its kind's datasets;
    # the access export reads the person's stores and photos and writes the exports bucket only.
    answers = [(datasets(e, "inputs"), datasets(e, "outputs")) for e in events_of(events, "subject_requests", "answer")]
    assert len(answers) == len(kinds)
    for kind in set(kinds.values()):
        assert expected(request_lineage(POLICY, kind), server) in answers, kind
    ledger = pg("governance.subject_requests") | evidence
    export_reads = pg("shop.accounts", "shop.orders", "shop.uploads", "governance.request_contacts") | s3_(
        "shop-uploads"
    )
    assert any(reads >= export_reads and writes == s3_("governance-exports") | ledger for reads, writes in answers)

    # The audience export (TP-1): what leaves the shop, to the partner's drop.
    (export,) = events_of(events, "advertising_audience", "export")
    audience = (datasets(export, "inputs"), datasets(export, "outputs"))
    assert audience == expected(audience_lineage(POLICY, "meta-customers"), server)
    assert audience[1] == s3_("advertising-audiences") | pg("governance.audience_files") | evidence
    assert pg("shop.accounts", "shop.marketing_consents", "governance.processing_register") <= audience[0]

    # No event of any task carries personal data: not a name, an address, an IP or a phone number.
    text = "\n".join(json.dumps(e) for e in events)
    assert _leaks([("openlineage events", text)], needles) == []
