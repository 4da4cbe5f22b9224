"""A sweep killed with SIGKILL in the middle of a batch, then rerun (CONVENTIONS habit 5).

The CLI runs in a subprocess on a seeded shop. To kill it *inside* a batch, deterministically, the
test holds a row lock the batch needs: the sweep's backend then waits on it with its batch's
transaction open, and ``kill -9`` hits exactly there. Two kills:

1. in the purge of ``ordered-uploads``, after the tombstone committed and the objects were deleted,
   while the row delete waits (its FK cascade needs an ``order_line_uploads`` row we locked);
2. in a delete batch of ``cookie-preferences`` (a due row we locked).

A rerun of the same run must then finish: nothing due remains, the 'purging' rows are gone with
their objects, the evidence counts equal the rows really removed, and the chain verifies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import psycopg2

from governance.db import connect
from governance.policy import load_policy
from governance.sweep import plan
from governance_dev.loader import seed
from tests.integration import sweep_support as s

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RUN = "crash-run"
TABLE_OF = {
    "visit-data": "shop.visits",
    "deleted-account-calendar-events": "shop.calendar_events",
    "deleted-account-saved-products": "shop.saved_products",
    "deleted-accounts": "shop.accounts",
    "contact-messages": "shop.contact_messages",
    "newsletter-subscriptions": "shop.newsletter_subscriptions",
    "ordered-uploads": "shop.uploads",
    "saved-uploads": "shop.uploads",
    "guest-uploads": "shop.uploads",
    "unsaved-account-uploads": "shop.uploads",
    "cookie-preferences": "shop.cookie_preferences",
}


def cli(db_url: str, s3_url: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from governance.cli import main; sys.exit(main())",
            "sweep",
            "--db-url",
            db_url,
            "--s3-endpoint-url",
            s3_url,
            "--now",
            "2026-03-01T12:00:00Z",
            "--run-id",
            RUN,
            "--batch-size",
            "20",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )


def wait_blocked(watch, proc: subprocess.Popen, statement: str, timeout: float = 60) -> None:
    """Until a backend of the sweep waits on a lock inside ``statement`` (its batch is open)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        with watch.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND state = 'active' AND query LIKE %s AND pid <> pg_backend_pid()",
                (statement + "%",),
            )
            if cur.fetchone()[0]:
                return
        time.sleep(0.05)
    raise AssertionError(f"the sweep never blocked in {statement!r}")


def kill_mid_batch(db_url: str, s3_url: str, watch, lock_sql: str, params: tuple, statement: str) -> None:
    locker = connect(db_url)
    with locker.cursor() as cur:
        cur.execute(lock_sql, params)
        assert cur.fetchall(), "nothing to lock"
    proc = cli(db_url, s3_url)
    try:
        wait_blocked(watch, proc, statement)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        locker.rollback()
        locker.close()
    # the killed client's backend notices and rolls its batch back once the lock wait ends
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with watch.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND application_name = 'governance' AND state <> 'idle'"
            )
            if cur.fetchone()[0] == 0:
                break
        time.sleep(0.1)


def table_counts(cur) -> dict[str, int]:
    counts = {}
    for table in sorted(set(TABLE_OF.values())):
        cur.execute(f"SELECT count(*) FROM {table}")
        counts[table] = cur.fetchone()[0]
    return counts


def test_sigkill_mid_batch_then_rerun_finishes_exactly(db_url, s3, s3_url):
    policy = load_policy()
    conn = connect(db_url)
    seed(conn, s3, policy, NOW, customers=400, seed=7)
    watch = psycopg2.connect(db_url)
    watch.autocommit = True
    with watch.cursor() as cur:
        before = table_counts(cur)
    expected = {p.rule: p.due for p in plan(conn, policy, NOW)}
    assert expected["ordered-uploads"] > 40 and expected["cookie-preferences"] > 20

    # 1. inside the purge of ordered-uploads: tombstoned and objects gone, the row delete blocked
    kill_mid_batch(
        db_url,
        s3_url,
        watch,
        "SELECT 1 FROM shop.order_line_uploads olu WHERE olu.upload_id IN ("
        "  SELECT record_id FROM governance_clocks.ret_5a_ordered_uploads GROUP BY record_id"
        "  HAVING max((clock AT TIME ZONE 'UTC' + interval '60 days') AT TIME ZONE 'UTC') <= %s"
        "  ORDER BY record_id DESC LIMIT 1) FOR UPDATE",
        (NOW,),
        'DELETE FROM "shop"."uploads"',
    )
    with watch.cursor() as cur:
        cur.execute("SELECT count(*) FROM shop.uploads WHERE state = 'purging'")
        purging = cur.fetchone()[0]
        cur.execute("SELECT array_agg(object_key) FROM shop.uploads WHERE state = 'purging'")
        purging_keys = set(cur.fetchone()[0] or [])
    assert purging > 0, "the kill was meant to leave tombstones"
    assert not purging_keys & s.object_keys(s3), "their objects were deleted before the kill"

    # 2. inside a delete batch of cookie-preferences; the rerun first finishes the tombstones
    kill_mid_batch(
        db_url,
        s3_url,
        watch,
        "SELECT 1 FROM shop.cookie_preferences WHERE given_at < %s - interval '13 months' "
        "AND preference_id NOT IN (SELECT record_key::bigint FROM governance.legal_holds "
        "WHERE table_name = 'shop.cookie_preferences') ORDER BY preference_id DESC LIMIT 1 FOR UPDATE",
        (NOW,),
        'DELETE FROM "shop"."cookie_preferences"',
    )
    with watch.cursor() as cur:
        cur.execute("SELECT count(*) FROM shop.uploads WHERE state = 'purging'")
        assert cur.fetchone()[0] == 0

    # 3. the rerun of the same run
    done = cli(db_url, s3_url)
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err.decode()[-3000:]

    with watch.cursor() as cur:
        after = table_counts(cur)
        totals = s.evidence_totals(cur, RUN)
        cur.execute("SELECT count(*) FROM shop.uploads WHERE state <> 'stored'")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT object_key FROM shop.uploads")
        rows = {r[0] for r in cur.fetchall()}
        cur.execute("SELECT count(*) FROM governance.verify_evidence()")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT count(*) FROM governance.evidence WHERE run_id = %s AND kind = 'sweep_rule'", (RUN,))
        assert cur.fetchone()[0] == len(policy.rules)
    assert s.object_keys(s3) == rows  # no orphan object, no row pointing at nothing
    assert all(p.due == 0 for p in plan(conn, policy, NOW)), "nothing due and unheld remains"
    removed: dict[str, int] = {}
    for rule, table in TABLE_OF.items():
        removed[table] = removed.get(table, 0) + totals.get(rule, {}).get("deleted", 0)
    assert removed == {table: before[table] - after[table] for table in before}
    # the run removed (or anonymised) exactly what was planned. The upload rules are compared as a
    # group: removing a deleted account's saved products (an earlier rule) moves some of their uploads
    # from saved-uploads to the rule with the next latest expiry, e.g. ordered-uploads.
    done = {
        rule: totals.get(rule, {}).get("deleted", 0) + totals.get(rule, {}).get("anonymised", 0) for rule in expected
    }
    uploads = [r.id for r in policy.rules if r.table == "shop.uploads"]
    assert sum(done[r] for r in uploads) == sum(expected[r] for r in uploads)
    assert {r: n for r, n in done.items() if r not in uploads} == {
        r: n for r, n in expected.items() if r not in uploads
    }
    conn.close()
    watch.close()
