"""The figures compliance staff read (#13, governance.compliance.figures) against what the audit and
the sweep did on a real shop: the page's and the report's numbers are the evidence's."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from governance import evidence
from governance.cli import main
from governance.compliance import chain, figures
from governance.db import transaction
from governance.policy import load_policy
from governance_dev.loader import ensure_store_buckets
from governance_dev.reference import Snapshot
from tests.integration.test_audit_properties import empty_shop, insert_snapshot

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NOW_ARG = "2026-11-25T12:00:00Z"


@pytest.fixture(autouse=True)
def no_ambient_settings(monkeypatch):
    for name in ("GOVERNANCE_DB_URL", "GOVERNANCE_S3_ENDPOINT_URL", "GOVERNANCE_POLICY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def shop(conn, s3):
    empty_shop(conn)
    insert_snapshot(
        conn,
        Snapshot(
            visits=[
                {"visit_id": 1, "last_activity_at": NOW - timedelta(hours=25)},
                {"visit_id": 2, "last_activity_at": NOW - timedelta(hours=71, minutes=30)},
                {"visit_id": 3, "last_activity_at": NOW - timedelta(hours=1)},
            ]
        ),
    )
    ensure_store_buckets(s3, load_policy())


def cli(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    out, _ = capsys.readouterr()
    return code, out


def test_a_stale_or_missing_audit_is_amber(conn, shop):
    # first in this module's database: no audit recorded yet
    with transaction(conn, read_only=True) as cur:
        rules = figures.rules_now(cur, load_policy(), now=NOW)
    assert rules and {(r.status, r.why) for r in rules} == {("amber", "never audited")}
    with transaction(conn) as cur:
        evidence.append(cur, kind="audit", run_id="old", as_of=NOW, counts={"overdue_total": 0})
        evidence.append(cur, kind="audit_rule", run_id="old", rule_id="visit-data", counts={"overdue": 0, "held": 0})
    later = datetime.now(UTC) + figures.AUDIT_STALE_AFTER + timedelta(minutes=1)
    with transaction(conn, read_only=True) as cur:
        visits = next(r for r in figures.rules_now(cur, load_policy(), now=later) if r.rule_id == "visit-data")
    assert visits.status == "amber" and "older than" in visits.why


def test_rules_now_show_the_audit_then_green_after_a_sweep(conn, db_url, s3_url, shop, capsys):
    base = ["--db-url", db_url, "--s3-endpoint-url", s3_url, "--now", NOW_ARG]
    code, out = cli(capsys, "audit", "--json", *base, "--run-id", "fig-audit-1")
    assert code == 1
    audited = {r["rule"]: r for r in json.loads(out)["rules"]}
    with transaction(conn, read_only=True) as cur:
        rules = {r.rule_id: r for r in figures.rules_now(cur, load_policy(), now=NOW)}
    # every rule and check the audit ran, with the audit's own figures
    assert set(audited) <= set(rules)
    for rule_id, a in audited.items():
        assert (rules[rule_id].overdue, rules[rule_id].held) == (a["overdue"], a["held"]), rule_id
    visits = rules["visit-data"]
    assert (visits.status, visits.overdue, visits.oldest_overdue_seconds) == ("red", 2, 47 * 3600 + 1800)
    assert visits.last_sweep_at is None and visits.removed == 0
    assert {r.status for r in rules.values() if r.rule_id != "visit-data"} == {"green"}

    assert cli(capsys, "sweep", *base, "--run-id", "fig-sweep-1")[0] == 0
    assert cli(capsys, "audit", "--json", *base, "--run-id", "fig-audit-2")[0] == 0
    with transaction(conn, read_only=True) as cur:
        rules = {r.rule_id: r for r in figures.rules_now(cur, load_policy(), now=NOW)}
        day = figures.daily_effects(cur, start=NOW - timedelta(days=1), end=datetime.now(UTC) + timedelta(days=1))
        audits = figures.audit_runs(cur, start=NOW - timedelta(days=1), end=datetime.now(UTC) + timedelta(days=1))
    visits = rules["visit-data"]
    assert (visits.status, visits.overdue, visits.removed, visits.last_sweep_run_id) == ("green", 0, 2, "fig-sweep-1")
    assert visits.audit_run_id == "fig-audit-2"
    assert [(d.rule_id, d.removed, d.runs) for d in day if d.removed] == [("visit-data", 2, 1)]
    assert [(a.run_id, a.ok, a.overdue_total, a.rules_over) for a in audits if a.run_id.startswith("fig-")] == [
        ("fig-audit-1", False, 2, ["visit-data"]),
        ("fig-audit-2", True, 0, []),
    ]


def test_evidence_status_and_a_recorded_verification(conn, shop):
    with transaction(conn, read_only=True) as cur:
        before = chain.evidence_status(cur)
    with transaction(conn) as cur:
        evidence.append(cur, kind="audit", run_id="a1", counts={"overdue_total": 0})
    result = evidence.verify(conn)
    conn.rollback()
    with transaction(conn) as cur:
        chain.record_verification(cur, result, by="alice", run_id="verify-1", now=NOW)
    with transaction(conn, read_only=True) as cur:
        status = chain.evidence_status(cur)
    grown = {k: n - before.per_kind.get(k, 0) for k, n in status.per_kind.items()}
    assert {k: n for k, n in grown.items() if n} == {"audit": 1, chain.VERIFIED_KIND: 1}
    assert status.entries == before.entries + 2 == sum(status.per_kind.values())
    assert (status.last_verified_by, status.last_verified_ok) == ("alice", True)
    assert status.last_verified_entries == before.entries + 1
    assert status.head_hash == evidence.verify(conn).head_hash and len(status.head_hash) == 64
    as_json = json.dumps(figures.as_dict(status))
    assert '"last_verified_by": "alice"' in as_json


def test_a_rules_figures_are_read_from_its_last_summary_and_audit(conn, shop):
    # RET-8 evidence: the Now view's removed = deleted + rows_estimated (dropped partitions' rows),
    # anonymised, purged = objects_deleted; of the run's newest summary, not an older run's
    with transaction(conn) as cur:
        evidence.append(cur, kind="sweep_rule", run_id="fig-old", rule_id="guest-uploads", step="summary",
                        counts={"deleted": 50, "objects_deleted": 50})  # fmt: skip
        evidence.append(cur, kind="sweep_rule", run_id="fig-new", rule_id="guest-uploads", step="summary",
                        counts={"deleted": 3, "rows_estimated": 4, "anonymised": 5, "objects_deleted": 6, "held": 1})  # fmt: skip
        evidence.append(cur, kind="audit_rule", run_id="fig-audit-3", rule_id="guest-uploads",
                        counts={"overdue": 7, "held": 2, "oldest_overdue_seconds": 3600})  # fmt: skip
    with transaction(conn, read_only=True) as cur:
        uploads = next(r for r in figures.rules_now(cur, load_policy(), now=NOW) if r.rule_id == "guest-uploads")
    assert (uploads.removed, uploads.anonymised, uploads.purged) == (7, 5, 6)
    assert (uploads.overdue, uploads.held, uploads.oldest_overdue_seconds) == (7, 2, 3600)
    assert (uploads.status, uploads.last_sweep_run_id, uploads.audit_run_id) == ("red", "fig-new", "fig-audit-3")
    assert uploads.why.startswith("7 overdue in the audit of ")
