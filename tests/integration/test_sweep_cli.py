"""``governance plan`` and ``governance sweep`` end to end on a seeded shop (real PostgreSQL and S3)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from governance.cli import main
from governance.db import connect
from governance.policy import load_policy
from governance.sweep.rule import LOCK_NAMESPACE
from governance.sweep.target import lock_key
from governance_dev.loader import seed
from tests.integration import sweep_support as s

NOW = "2026-03-01T12:00:00Z"


@pytest.fixture
def seeded(db_url, s3, s3_url):
    conn = connect(db_url)
    report = seed(conn, s3, load_policy(), datetime(2026, 3, 1, 12, tzinfo=UTC), customers=100, seed=11)
    yield {"conn": conn, "report": report, "args": ["--db-url", db_url, "--s3-endpoint-url", s3_url, "--now", NOW]}
    conn.close()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def shop_rows(conn) -> int:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT (SELECT count(*) FROM shop.visits) + (SELECT count(*) FROM shop.uploads) "
            "+ (SELECT count(*) FROM shop.accounts) + (SELECT count(*) FROM shop.orders WHERE anonymised_at IS NULL)"
        )
        n = cur.fetchone()[0]
    conn.rollback()
    return n


def test_plan_json_then_sweep_then_nothing_left(seeded, capsys, s3):
    conn, args, expected = seeded["conn"], seeded["args"], seeded["report"].expected_overdue
    before = shop_rows(conn)
    code, out, _ = run(capsys, "plan", "--json", *args)
    assert code == 0
    planned = json.loads(out)
    assert planned["now"] == NOW and len(planned["policy_version"]) == 64
    assert {r["rule"]: r["due"] for r in planned["rules"]} == expected  # the reference's overdue counts
    visits = next(r for r in planned["rules"] if r["rule"] == "visit-data")
    assert visits["partitions_to_drop"] and visits["strategy"] == "partitions"
    assert shop_rows(conn) == before  # planning changed nothing

    code, out, _ = run(capsys, "plan", *args)
    assert code == 0 and "nothing is changed" in out and "deleted-accounts" in out

    code, out, err = run(capsys, "sweep", "--json", "--batch-size", "25", *args)
    assert code == 0, err
    swept = json.loads(out)
    assert swept["run_id"] == f"cli-{NOW}" and swept["errors"] == {}
    done = {r["rule"]: r["deleted"] + r["anonymised"] for r in swept["rules"]}
    uploads = ("ordered-uploads", "saved-uploads", "guest-uploads", "unsaved-account-uploads")
    assert sum(done[r] for r in uploads) == sum(expected[r] for r in uploads)
    assert {r: n for r, n in done.items() if r not in uploads} == {
        r: n for r, n in expected.items() if r not in uploads
    }

    code, out, _ = run(capsys, "plan", "--json", *args)
    assert all(r["due"] == 0 and r["purging"] == 0 for r in json.loads(out)["rules"])

    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM governance.evidence")
        entries = cur.fetchone()[0]
    conn.rollback()
    code, out, _ = run(capsys, "sweep", *args)  # the same run again: nothing changes, nothing recorded
    assert code == 0 and "retention sweep at 2026-03-01T12:00:00Z, run cli-2026-03-01T12:00:00Z" in out
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM governance.evidence")
        assert cur.fetchone()[0] == entries
        cur.execute("SELECT object_key FROM shop.uploads")
        assert s.object_keys(s3) == {r[0] for r in cur.fetchall()}
    conn.rollback()


def test_dry_run_rule_selection_lock_and_errors(seeded, capsys, tmp_path):
    conn, args = seeded["conn"], seeded["args"]
    before = shop_rows(conn)
    code, out, _ = run(capsys, "sweep", "--dry-run", "--json", "--rule", "deleted-accounts", *args)
    assert code == 0
    rules = [r["rule"] for r in json.loads(out)["rules"]]
    assert rules == ["deleted-accounts"] and shop_rows(conn) == before

    # another sweep holds the rule: skipped, exit code 3, nothing done
    locker = connect(seeded["args"][1])
    with locker.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_NAMESPACE, lock_key("cookie-preferences")))
    code, out, _ = run(capsys, "sweep", "--rule", "cookie-preferences", *args)
    assert code == 3 and "SKIPPED" in out
    locker.close()
    code, out, _ = run(capsys, "sweep", "--rule", "cookie-preferences", *args)
    assert code == 0 and "SKIPPED" not in out

    code, _, err = run(capsys, "sweep", "--rule", "no-such-rule", *args)
    assert code == 2 and "no rule 'no-such-rule'" in err
    bad = tmp_path / "policy.yaml"
    bad.write_text("rules: []\n")
    code, _, err = run(capsys, "plan", "--policy", str(bad), *args)
    assert code == 2 and str(bad) in err
