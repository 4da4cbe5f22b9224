"""Two sweeps of the same rule at once: the advisory lock lets one work; the other skips (default) or
waits (``lock_wait``, as the DAG does) and then finds nothing left. Nothing is done twice: the
evidence of both runs together counts exactly the rows removed."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from dateutil.relativedelta import relativedelta

from governance.db import connect
from governance.policy import load_policy
from governance.sweep import sweep_rule
from governance.sweep.rule import LOCK_NAMESPACE
from governance.sweep.target import lock_key
from tests.integration import sweep_support as s

NOW = datetime(2026, 6, 1, tzinfo=UTC)
RULE = "cookie-preferences"


def advisory_lock_held(conn, rule_id: str) -> bool:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objid = %s AND granted",
            (LOCK_NAMESPACE, lock_key(rule_id) & 0xFFFFFFFF),
        )
        held = cur.fetchone()[0] > 0
    conn.rollback()
    return held


def test_second_sweep_skips_or_waits_and_nothing_is_done_twice(db_url, s3):
    setup = connect(db_url)
    s.empty_shop(setup)
    with setup.cursor() as cur:
        due = [s.cookie(cur, NOW - relativedelta(months=13) - timedelta(minutes=i)) for i in range(300)]
        s.cookie(cur, NOW - timedelta(days=1))
    setup.commit()
    policy = load_policy()
    # hold a row the first sweep needs, so that it is provably mid-run when the others start
    blocker = connect(db_url)
    with blocker.cursor() as cur:
        cur.execute("SELECT 1 FROM shop.cookie_preferences WHERE preference_id = %s FOR UPDATE", (due[-1],))
    results: dict[str, object] = {}

    def run(name: str, **kw) -> None:
        conn = connect(db_url)
        try:
            results[name] = sweep_rule(conn, s3, policy, RULE, NOW, f"concurrent-{name}", batch_size=50, **kw)
        except Exception as exc:  # reported by the assertions below
            results[name] = exc
        finally:
            conn.close()

    first = threading.Thread(target=run, args=("first",), kwargs={"lock_timeout": "20s"})
    first.start()
    deadline = time.monotonic() + 30
    while not advisory_lock_held(setup, RULE):
        assert time.monotonic() < deadline and first.is_alive(), results
        time.sleep(0.02)

    run("skipper")  # default: skip at once
    waiter = threading.Thread(target=run, args=("waiter",), kwargs={"lock_wait": 60})
    waiter.start()
    time.sleep(0.5)
    assert waiter.is_alive(), "the waiting sweep must wait for the lock"
    blocker.rollback()  # let the first sweep finish
    first.join(60)
    waiter.join(60)
    blocker.close()

    first_result, skipper, waiter_result = results["first"], results["skipper"], results["waiter"]
    assert not isinstance(first_result, Exception), first_result
    assert not isinstance(waiter_result, Exception), waiter_result
    assert skipper.skipped_locked and skipper.deleted == 0 and skipper.batches == 0
    assert first_result.deleted == 300 and not first_result.skipped_locked
    assert waiter_result.deleted == 0 and not waiter_result.skipped_locked
    with setup.cursor() as cur:
        cur.execute("SELECT count(*) FROM shop.cookie_preferences")
        assert cur.fetchone()[0] == 1
        cur.execute(
            "SELECT coalesce(sum((counts->>'deleted')::int), 0) FROM governance.evidence "
            "WHERE kind = 'sweep_batch' AND rule_id = %s AND run_id LIKE 'concurrent-%%'",
            (RULE,),
        )
        assert cur.fetchone()[0] == 300
        cur.execute(
            "SELECT run_id FROM governance.evidence WHERE kind = 'sweep_rule' AND run_id LIKE 'concurrent-%%' "
            "ORDER BY run_id"
        )
        assert [r[0] for r in cur.fetchall()] == ["concurrent-first", "concurrent-waiter"]
    setup.rollback()
    assert not advisory_lock_held(setup, RULE)
    setup.close()
