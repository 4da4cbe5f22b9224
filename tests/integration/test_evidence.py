"""Evidence verification and the reviewer's report against a real PostgreSQL ("What proof means
here", docs/requirements.md; RET-8): `governance evidence verify` proves the hash chain is intact or
names every broken entry; `governance evidence show` says which rules ran, when, and what each
removed or anonymised (counts), plus audits and holds."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from governance.cli import main
from governance.db import connect
from governance.errors import EvidenceBroken
from governance.evidence import entries, format_report, verify
from governance.holds import add_hold, lift_hold
from governance.policy import load_policy

POLICY = load_policy()
AS_OF = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
RUN = "scheduled__2026-03-01T00:00:00+00:00"


def _append(cur, kind, run_id, rule_id, step, requirements, counts, details=None):
    cur.execute(
        "SELECT governance.append_evidence(%s,%s,%s,%s,%s,%s,%s,%s::jsonb,%s::jsonb)",
        (
            kind,
            run_id,
            rule_id,
            step,
            requirements,
            AS_OF,
            POLICY.version,
            json.dumps(counts),
            json.dumps(details or {}),
        ),
    )
    return cur.fetchone()[0]


@pytest.fixture
def evidence_db(make_database):
    """A database of its own (tampering must not leak into other tests), with a sweep, an audit
    and a hold recorded the way the library records them."""
    url = make_database()
    conn = connect(url)
    with conn.cursor() as cur:
        _append(
            cur, "sweep_rule", RUN, "visit-data", "", ["RET-1", "RET-10"], {"deleted": 120, "partitions_dropped": 3}
        )
        _append(cur, "sweep_rule", RUN, "order-records", "", ["RET-3", "RET-8"], {"anonymised": 17})
        _append(
            cur,
            "audit_rule",
            RUN,
            "visit-data",
            "",
            ["RET-1"],
            {"overdue": 0, "held": 2},
            {"check": "independent predicate"},
        )
        cur.execute(
            "INSERT INTO shop.accounts (email, password_hash, created_at) "
            "VALUES ('reviewer.case@example.no', 'x', %s) RETURNING account_id",
            (AS_OF,),
        )
        account_id = cur.fetchone()[0]
    conn.commit()
    hold = add_hold(
        conn,
        POLICY,
        scope="person",
        email="reviewer.case@example.no",
        reason="Court order for Ola",
        set_by="legal",
        now=AS_OF + timedelta(hours=1),
    )
    lift_hold(conn, POLICY, hold.hold_id, lifted_by="legal", now=AS_OF + timedelta(hours=2))
    yield {"url": url, "conn": conn, "hold_id": hold.hold_id, "account_id": account_id}
    conn.close()


def test_empty_chain_verifies(make_database, capsys):
    url = make_database()
    assert main(["evidence", "verify", "--db-url", url, "--no-anchors"]) == 0
    assert capsys.readouterr().out.strip() == (
        f"OK: evidence chain intact, 0 entries, head {'0' * 64}\nanchors not checked (--no-anchors)"
    )


def test_verify_ok_prints_entries_and_head(evidence_db, capsys):
    conn = evidence_db["conn"]
    with conn.cursor() as cur:
        cur.execute("SELECT count(*), (SELECT last_hash FROM governance.evidence_head) FROM governance.evidence")
        count, head = cur.fetchone()
    assert count == 5
    result = verify(conn)
    assert result.ok and result.entries == 5 and result.head_hash == head
    assert main(["evidence", "verify", "--db-url", evidence_db["url"], "--no-anchors"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[0] == f"OK: evidence chain intact, 5 entries, head {head}"
    assert main(["evidence", "verify", "--db-url", evidence_db["url"], "--json", "--no-anchors"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "ok": True,
        "entries": 5,
        "head_hash": head,
        "head_entry_id": result.head_entry_id,
        "problems": [],
        "notes": ["anchors not checked (--no-anchors)"],
    }


def test_verify_names_each_broken_entry_and_exits_1(evidence_db, capsys):
    conn = evidence_db["conn"]
    with conn.cursor() as cur:
        cur.execute("SELECT entry_id FROM governance.evidence ORDER BY entry_id")
        ids = [row[0] for row in cur.fetchall()]
        # Someone shrinks what a sweep removed, and deletes an audit entry: the append-only triggers
        # refuse it (SEC-1), so this is an attacker with superuser rights switching them off.
        cur.execute("SET session_replication_role = replica")
        cur.execute("UPDATE governance.evidence SET counts = '{\"anonymised\": 1}' WHERE entry_id = %s", (ids[1],))
        cur.execute("DELETE FROM governance.evidence WHERE entry_id = %s", (ids[2],))
    conn.commit()
    result = verify(conn)
    assert not result.ok
    assert [(p.entry_id, p.problem) for p in result.problems] == [
        (ids[1], "entry_hash does not match its content"),
        (ids[3], "prev_hash does not match the entry before"),
    ]
    assert main(["evidence", "verify", "--db-url", evidence_db["url"], "--no-anchors"]) == EvidenceBroken.exit_code
    out = capsys.readouterr().out
    assert out.startswith("BROKEN: 2 problem(s) in the evidence chain of 4 entries")
    assert f"  entry {ids[1]}: entry_hash does not match its content" in out
    assert f"  entry {ids[3]}: prev_hash does not match the entry before" in out
    assert "docs/runbook.md" in out


def test_verify_detects_a_truncated_tail(evidence_db, capsys):
    conn = evidence_db["conn"]
    with conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")  # superuser: the triggers refuse DELETE
        cur.execute("DELETE FROM governance.evidence WHERE entry_id = (SELECT max(entry_id) FROM governance.evidence)")
    conn.commit()
    assert main(["evidence", "verify", "--db-url", evidence_db["url"], "--no-anchors"]) == EvidenceBroken.exit_code
    assert "chain head does not match the last entry" in capsys.readouterr().out


def test_show_filters_and_reports_counts(evidence_db, capsys):
    url, hold_id = evidence_db["url"], evidence_db["hold_id"]
    assert main(["evidence", "show", "--db-url", url]) == 0
    report = capsys.readouterr().out
    assert f"run {RUN}  (as of 2026-03-01T00:00:00Z, policy {POLICY.version[:12]}, 3 entries)" in report
    visit_line = next(line for line in report.splitlines() if "sweep_rule" in line and "visit-data" in line)
    assert "RET-1,RET-10" in visit_line and "deleted 120, partitions_dropped 3" in visit_line
    assert any(
        "sweep_rule" in line and "order-records" in line and "anonymised 17" in line for line in report.splitlines()
    )
    assert any("audit_rule" in line and "overdue 0" in line and "held 2" in line for line in report.splitlines())
    assert f"run hold-{hold_id}" in report and "hold_lifted" in report
    assert "5 entries: audit_rule 1, hold_added 1, hold_lifted 1, sweep_rule 2" in report
    assert report.rstrip().splitlines()[-1].startswith("OK: evidence chain intact, 5 entries")
    # Evidence holds no personal data: neither the address nor the free-text reason of the hold.
    assert "reviewer.case" not in report and "Ola" not in report and "Court order" not in report

    assert main(["evidence", "show", "--db-url", url, "--rule", "visit-data", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["count"] == 2 and {e["kind"] for e in shown["entries"]} == {"sweep_rule", "audit_rule"}
    assert shown["chain"]["ok"] is True

    assert main(["evidence", "show", "--db-url", url, "--kind", "sweep_rule", "--run-id", RUN, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [(e["rule_id"], e["counts"]) for e in shown["entries"]] == [
        ("visit-data", {"deleted": 120, "partitions_dropped": 3}),
        ("order-records", {"anonymised": 17}),
    ]
    assert shown["entries"][0]["as_of"] == "2026-03-01T00:00:00Z"
    assert shown["entries"][0]["policy_version"] == POLICY.version

    assert main(["evidence", "show", "--db-url", url, "--run-id", f"hold-{hold_id}", "--json"]) == 0
    holds = json.loads(capsys.readouterr().out)["entries"]
    assert [e["kind"] for e in holds] == ["hold_added", "hold_lifted"]
    assert holds[0]["details"]["scope"] == "person" and len(holds[0]["details"]["email_sha256_prefix"]) == 12

    assert main(["evidence", "show", "--db-url", url, "--kind", "sweep_batch"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("no evidence matches")
    assert "no entry of kind 'sweep_batch' is recorded; kinds recorded: audit_rule, hold_added" in out


def test_show_since(evidence_db, capsys):
    conn = evidence_db["conn"]
    all_entries = entries(conn)
    cut = all_entries[3].recorded_at
    later = entries(conn, since=cut)
    assert [e.entry_id for e in later] == [e.entry_id for e in all_entries[3:]]
    since = cut.astimezone(UTC).isoformat()
    assert main(["evidence", "show", "--db-url", evidence_db["url"], "--since", since, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == len(later)
    assert entries(conn, since=cut + timedelta(days=1)) == []
    assert format_report([]) == "no evidence matches"


def test_show_folds_a_sweeps_batches_per_rule(make_database, capsys):
    url = make_database()
    conn = connect(url)
    with conn.cursor() as cur:
        for step, deleted in (("b1", 5), ("b2", 7), ("b3", 1)):
            _append(
                cur, "sweep_batch", RUN, "visit-data", step, ["RET-1"], {"deleted": deleted, "partitions_dropped": 1}
            )
        _append(cur, "sweep_rule", RUN, "visit-data", "summary", ["RET-1"], {"deleted": 13, "held": 0})
        _append(cur, "sweep_batch", RUN, "cookie-preferences", "b1", ["RET-6"], {"deleted": 4})
    conn.commit()
    conn.close()
    assert main(["evidence", "show", "--db-url", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    folded = [line for line in lines if "sweep_batch x3" in line]
    assert len(folded) == 1 and "#1..3" in folded[0] and "deleted 13, partitions_dropped 3" in folded[0]
    assert any("sweep_rule" in line and "deleted 13" in line and "held 0" in line for line in lines)
    assert any("sweep_batch " in line and "cookie-preferences" in line and "deleted 4 [b1]" in line for line in lines)
    assert "5 entries: sweep_batch 4, sweep_rule 1" in lines

    assert main(["evidence", "show", "--db-url", url, "--detail"]) == 0
    detailed = capsys.readouterr().out
    assert "sweep_batch x3" not in detailed
    assert all(f"deleted {n}, partitions_dropped 1 [b{i}]" in detailed for i, n in ((1, 5), (2, 7), (3, 1)))
