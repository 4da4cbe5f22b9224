"""Sharded sweeps (#14): a rule cut into N shards, each run on its own connection (as mapped tasks
on several workers would), then finished, has exactly the effect and the evidence totals of the
unsharded sweep of the same data, for each kind of shard:

- blocks: cookie preferences (RET-6, a column clock), shards of heap pages;
- chunks: order records (RET-3/RET-8/RET-10, the windowed clock of a customer's last order), shards
  of the clock view's ``chunk`` classes;
- partitions: visits (RET-1), shards of hourly partitions (and the default partition).

Holds (RET-8) are honoured in every shard, a rerun changes and records nothing, and a shard that
does not exist is refused.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from dateutil.relativedelta import relativedelta

from governance.db import connect
from governance.errors import OptionError
from governance.policy import load_policy
from governance.sweep import plan, sweep_rule
from governance.sweep.rule import rule_lock, shard_lock
from governance.sweep.sharded import finish_rule, sweep_shard, sweep_sharded
from governance.sweep.shards import Shard, plan_shards
from tests.integration import sweep_support as s
from tests.integration.test_sweep_chunks import anonymised, build_shop, policy_with_view

pytestmark = pytest.mark.integration

ORDERS_NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # build_shop's "now"
NOW = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
RULE = "order-records"


# --- seeded data, identical in every database it is built in ---


def build_cookies(conn) -> set[int]:
    """2,000 cookie preferences given over three years (RET-6: 12 months), in random order over
    the heap; every 97th is an account's under a person hold, one other under a record hold.
    Returns the ids that must go."""
    s.empty_shop(conn)
    rng = random.Random(6)
    expired: set[int] = set()
    held: set[int] = set()
    with conn.cursor() as cur:
        holder = s.account(cur, NOW - relativedelta(years=4))
        for n in range(2000):
            given = NOW - timedelta(days=rng.randint(1, 3 * 365), minutes=rng.randint(0, 1440))
            pref = s.cookie(cur, given, holder if n % 97 == 0 else None)
            if given + relativedelta(months=12) <= NOW:
                expired.add(pref)
                if n % 97 == 0:
                    held.add(pref)
        s.hold(cur, "person", NOW - timedelta(days=1), account_id=holder)
        record = max(expired - held)
        held.add(record)
        s.hold(cur, "record", NOW - timedelta(days=1), table_name="shop.cookie_preferences", record_key=str(record))
        cur.execute("ANALYZE shop.cookie_preferences")
    conn.commit()
    assert len(held) > 5
    return expired - held


def build_visits(conn) -> set[int]:
    """Visits over the last 40 hours in hourly partitions from 30 hours back (older ones in the
    default partition), one held by a record hold in an expired partition. Returns those to go."""
    s.empty_shop(conn)
    rng = random.Random(1)
    due: set[int] = set()
    with conn.cursor() as cur:
        start = (NOW - timedelta(hours=30)).replace(minute=0)
        cur.execute(
            "SELECT governance.ensure_hourly_partitions('shop.visits', %s, %s)", (start, NOW + timedelta(hours=2))
        )
        for _ in range(1200):
            last = NOW - timedelta(minutes=rng.randint(1, 40 * 60))
            visit = s.visit(cur, last)
            if last + timedelta(hours=24) <= NOW:
                due.add(visit)
        held = min(due)
        s.hold(cur, "record", NOW - timedelta(days=1), table_name="shop.visits", record_key=str(held))
        cur.execute("ANALYZE shop.visits")
    conn.commit()
    return due - {held}


def remaining(conn, table: str, key: str) -> set[int]:
    with conn.cursor() as cur:
        cur.execute(f"SELECT {key} FROM {table}")
        rows = {r[0] for r in cur.fetchall()}
    conn.rollback()
    return rows


def evidence_of(conn, run: str) -> dict:
    """What the evidence says of a run: batch and notice totals per rule, the latest rule summary's
    counts, the sum of the shard summaries, and whether the chain verifies."""
    with conn.cursor() as cur:
        out = {
            "batches": s.evidence_totals(cur, run),
            "notices": s.evidence_totals(cur, run, "notices_queued"),
            "summary": s.latest_summaries(cur, run),
            "shards": s.evidence_totals(cur, run, "sweep_shard"),
        }
        cur.execute("SELECT count(*) FROM governance.evidence WHERE run_id = %s", (run,))
        out["entries"] = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM governance.verify_evidence()")
        out["problems"] = cur.fetchone()[0]
    conn.rollback()
    return out


def run_in_parallel(
    url: str, rule: str, now: datetime, run: str, shards: int, policy=None, **opts
) -> tuple[list, object]:
    """Plan, then every shard on a connection of its own in its own thread, then the finish."""
    policy = policy or load_policy()
    with connect(url) as planner:
        plan_ = plan_shards(planner, policy, rule, now, shards)
    planner.close()
    assert [p.index for p in plan_] == list(range(shards)) and all(p.count == shards for p in plan_)

    def one(shard: Shard):
        conn = connect(url)
        try:
            return sweep_shard(conn, None, policy, shard, now, run, **opts)
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=shards) as pool:
        results = list(pool.map(one, plan_))
    conn = connect(url)
    try:
        finished = finish_rule(conn, None, policy, rule, shards, now, run, **opts)
    finally:
        conn.close()
    return results, finished


# --- the three kinds against the unsharded sweep ---


@pytest.mark.parametrize("strategy", ["blocks", "work"])
def test_block_shards_remove_what_one_sweep_removes(make_database, strategy):
    """RET-6 cookie preferences in 3 shards of heap pages (block ranges or a work table per shard)."""
    whole_db, sharded_db = make_database(), make_database()
    outcomes = {}
    for name, url in (("whole", whole_db), ("sharded", sharded_db)):
        conn = connect(url)
        try:
            due = build_cookies(conn)
            before = remaining(conn, "shop.cookie_preferences", "preference_id")
            opts = {"batch_pages": 4, "strategy": strategy}
            if name == "whole":
                results = [sweep_rule(conn, None, load_policy(), "cookie-preferences", NOW, "r", **opts)]
                finished = None
            else:
                results, finished = run_in_parallel(url, "cookie-preferences", NOW, "r", 3, **opts)
                assert {r.strategy for r in results} == {strategy}
                assert all(r.deleted > 0 for r in results)  # every shard had due rows of its own
            left = remaining(conn, "shop.cookie_preferences", "preference_id")
            assert before - left == due and due  # exactly the due ones, not the held ones
            outcomes[name] = (left, evidence_of(conn, "r"), sum(r.deleted for r in results), finished)
        finally:
            conn.close()
    whole, sharded = outcomes["whole"], outcomes["sharded"]
    assert whole[0] == sharded[0] and whole[2] == sharded[2]
    assert whole[1]["batches"] == sharded[1]["batches"] and whole[1]["summary"] == sharded[1]["summary"]
    assert sharded[1]["summary"]["cookie-preferences"]["held"] == whole[1]["summary"]["cookie-preferences"]["held"] > 0
    shard_sum = sharded[1]["shards"]["cookie-preferences"]
    assert shard_sum["deleted"] == sharded[1]["batches"]["cookie-preferences"]["deleted"]
    assert shard_sum["held"] == whole[1]["summary"]["cookie-preferences"]["held"]  # each held row in one shard
    assert sharded[3].deleted == 0 and sharded[3].held > 0  # the finish only verified
    assert sharded[1]["problems"] == 0


def test_chunk_shards_anonymise_what_one_sweep_anonymises(make_database):
    """RET-3/RET-8: order records in 3 shards of the chunk classes, each computed in chunks of its
    own (chunk_rows small), run in parallel: the same orders, notices and evidence totals as one
    sweep, the held customers untouched; a rerun does nothing. The clock is the view's (without
    ``clock.kept``, which makes the rule one whole shard: test_rules_that_cannot_be_cut...)."""
    policy = policy_with_view()
    whole_db, sharded_db = make_database(), make_database()
    outcomes = {}
    for name, url in (("whole", whole_db), ("sharded", sharded_db)):
        conn = connect(url)
        try:
            expected = build_shop(conn)
            if name == "whole":
                results = [sweep_rule(conn, None, policy, "order-records", ORDERS_NOW, "r", chunk_rows=300)]
            else:
                results, finished = run_in_parallel(url, "order-records", ORDERS_NOW, "r", 3, policy, chunk_rows=300)
                assert all(r.anonymised > 0 for r in results) and finished.held == len(expected["held"])
            done = anonymised(conn)
            assert done == expected["anonymise"]
            outcomes[name] = (done, evidence_of(conn, "r"), sum(r.anonymised for r in results))
            if name == "sharded":
                # a rerun of the same run (shards and finish) changes nothing and records nothing
                entries = outcomes[name][1]["entries"]
                again, fin = run_in_parallel(url, "order-records", ORDERS_NOW, "r", 3, policy, chunk_rows=300)
                assert sum(r.anonymised for r in again) == 0 and fin.anonymised == 0
                assert evidence_of(conn, "r")["entries"] == entries and anonymised(conn) == done
        finally:
            conn.close()
    whole, sharded = outcomes["whole"], outcomes["sharded"]
    assert whole[0] == sharded[0] and whole[2] == sharded[2]
    for key in ("batches", "summary"):
        assert whole[1][key] == sharded[1][key], key
    # TP-5: the recipients are told of the same records; notices are queued per batch, so the
    # shards' batches make more (smaller) notices
    told = {n: {k: v for k, v in o[1]["notices"][RULE].items() if k != "notices"} for n, o in outcomes.items()}
    assert told["whole"] == told["sharded"] and told["whole"]["records"] == whole[2]
    assert sharded[1]["notices"][RULE]["notices"] >= whole[1]["notices"][RULE]["notices"] > 0
    assert sharded[1]["shards"]["order-records"]["anonymised"] == whole[2]
    assert sharded[1]["problems"] == 0


def test_partition_shards_drop_what_one_sweep_drops(make_database):
    """RET-1 visits in 4 shards of partitions: the same partitions dropped and rows deleted
    (row-wise in the cut-off, the held and the default partitions), the same evidence."""
    whole_db, sharded_db = make_database(), make_database()
    outcomes = {}
    for name, url in (("whole", whole_db), ("sharded", sharded_db)):
        conn = connect(url)
        try:
            due = build_visits(conn)
            before = remaining(conn, "shop.visits", "visit_id")
            if name == "whole":
                results = [sweep_rule(conn, None, load_policy(), "visit-data", NOW, "r")]
            else:
                results, _ = run_in_parallel(url, "visit-data", NOW, "r", 4)
                assert sum(1 for r in results if r.partitions_dropped) >= 3  # spread over the shards
            left = remaining(conn, "shop.visits", "visit_id")
            assert before - left == due
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'shop.visits'::regclass")
                partitions = cur.fetchone()[0]
            conn.rollback()
            outcomes[name] = (left, evidence_of(conn, "r"), partitions)
        finally:
            conn.close()
    whole, sharded = outcomes["whole"], outcomes["sharded"]
    assert whole[0] == sharded[0] and whole[2] == sharded[2]  # partitions created ahead by the finish too
    assert whole[1]["batches"] == sharded[1]["batches"] and whole[1]["summary"] == sharded[1]["summary"]
    assert whole[1]["batches"]["visit-data"]["partitions_dropped"] > 4
    assert sharded[1]["problems"] == 0


# --- refusals, locks, the finish ---


def test_a_shard_that_does_not_exist_is_refused(conn):
    for index, count in ((3, 3), (-1, 2), (0, 0), (0, -2), (0, 65)):
        with pytest.raises(OptionError):
            Shard("visit-data", index, count, "partitions")
    with pytest.raises(OptionError, match="number of shards"):
        plan_shards(conn, load_policy(), "visit-data", NOW, -1)
    with pytest.raises(OptionError, match="chunks shards, not blocks"):
        sweep_shard(
            conn, None, policy_with_view(), Shard("order-records", 0, 2, "blocks", {"lo": 0, "hi": 1}), NOW, "x"
        )


def test_rules_that_cannot_be_cut_are_one_whole_shard(conn):
    """A view without a chunk column, a table several rules share, an object purge, a clock kept per
    customer (RET-3 in the shop's policy, ADR 0011): one shard, swept by sweep_rule; a small table's
    default is one shard too."""
    policy = load_policy()
    for rule in ("contact-messages", "ordered-uploads", "request-exports"):
        assert plan_shards(conn, policy, rule, NOW, 4) == [Shard(rule, 0, 1, "whole")]
    assert plan_shards(conn, policy, "cookie-preferences", NOW) == [Shard("cookie-preferences", 0, 1, "whole")]
    assert plan_shards(conn, policy, "order-records", NOW, 2) == [Shard("order-records", 0, 1, "whole")]
    assert [p.kind for p in plan_shards(conn, policy_with_view(), "order-records", NOW, 2)] == ["chunks", "chunks"]


def test_shards_run_beside_each_other_never_beside_a_whole_rule_sweep(db_url):
    """Shard k holds the rule's lock shared and its own exclusively: another shard of the rule
    runs, the same shard or a whole-rule sweep (or the finish) is skipped while one holds it."""
    holder, other = connect(db_url), connect(db_url)
    try:
        with shard_lock(holder, "cookie-preferences", "0/2", 0) as got:
            assert got
            with shard_lock(other, "cookie-preferences", "1/2", 0) as second:
                assert second  # another shard: runs
            with shard_lock(other, "cookie-preferences", "0/2", 0) as same:
                assert not same
            with rule_lock(other, "cookie-preferences", 0) as whole:
                assert not whole  # the whole rule (a CLI sweep, the finish) waits for the shards
            result = finish_rule(other, None, load_policy(), "cookie-preferences", 2, NOW, "lock")
            assert result.skipped_locked
        with rule_lock(holder, "cookie-preferences", 0) as whole:
            assert whole
            shard = Shard("cookie-preferences", 1, 2, "blocks", {"lo": 0, "hi": None})
            assert sweep_shard(other, None, load_policy(), shard, NOW, "lock").skipped_locked
    finally:
        holder.close()
        other.close()


def test_the_finish_sweeps_what_a_failed_shard_left(make_database):
    """A shard that never ran (its task failed): the finish's whole-rule verification finds its
    rows due and sweeps them, so the rule's effect and totals are those of one sweep."""
    url = make_database()
    conn = connect(url)
    try:
        due = build_cookies(conn)
        before = remaining(conn, "shop.cookie_preferences", "preference_id")
        policy = load_policy()
        shards = plan_shards(conn, policy, "cookie-preferences", NOW, 3)
        first = sweep_shard(conn, None, policy, shards[0], NOW, "fail", batch_pages=4)
        finished = finish_rule(conn, None, policy, "cookie-preferences", 3, NOW, "fail", batch_pages=4)
        assert first.deleted > 0 and finished.deleted > 0 and first.deleted + finished.deleted == len(due)
        assert before - remaining(conn, "shop.cookie_preferences", "preference_id") == due
        totals = evidence_of(conn, "fail")
        assert totals["summary"]["cookie-preferences"]["deleted"] == len(due)
        with conn.cursor() as cur:
            cur.execute(
                "SELECT details->>'shards' FROM governance.evidence WHERE run_id = 'fail' AND kind = 'sweep_rule'"
            )
            assert [r[0] for r in cur.fetchall()] == ["3"]
        conn.rollback()
        [p] = plan(conn, policy, NOW, ["cookie-preferences"])
        assert p.due == 0
    finally:
        conn.close()


def test_sweep_sharded_in_one_process_and_its_dry_run(make_database):
    url = make_database()
    conn = connect(url)
    try:
        due = build_cookies(conn)
        dry, dry_finish = sweep_sharded(
            conn, None, load_policy(), "cookie-preferences", NOW, "one", shards=3, dry_run=True
        )
        assert [r.dry_run for r in dry] == [True] and dry[0].deleted == len(due) and dry_finish.deleted == 0
        results, finished = sweep_sharded(conn, None, load_policy(), "cookie-preferences", NOW, "one", shards=3)
        assert len(results) == 3 and sum(r.deleted for r in results) == len(due) and finished.deleted == 0
    finally:
        conn.close()


def test_the_chunk_classes_of_the_shards_partition_every_chunk_value(conn):
    """``shard_chunk`` with the SQL of ``chunk_qual``: for any S and M, shard k's M chunks are its
    class alone, the classes cover every value (NULL and negatives too), and a shard's records do
    not depend on how many chunks it is computed in (its verification uses fewer)."""
    from psycopg2 import sql

    from governance.sweep.selection import Selection, shard_chunk

    values = [None, 0, 1, -1, 2**31 - 1, -(2**31), 12345, -98765, 7, 8, 9]
    qual = sql.SQL("SELECT v.chunk FROM unnest(%(values)s::bigint[]) AS v(chunk) WHERE {}").format(
        Selection.chunk_qual("v")
    )

    def members(chunk: int, chunks: int) -> set:
        with conn.cursor() as cur:
            cur.execute(qual, {"values": values, "chunk": chunk, "chunks": chunks})
            return {r[0] for r in cur.fetchall()}

    for shards in (2, 3, 5):
        seen: list = []
        for k in range(shards):
            by_m = []
            for m in (1, 2, 4):
                parts = [members(*shard_chunk(k, shards, j, m)) for j in range(m)]
                assert sum(len(p) for p in parts) == len(set().union(*parts))  # disjoint
                by_m.append(set().union(*parts))
            assert by_m[0] == by_m[1] == by_m[2]
            seen.extend(by_m[0])
        assert sorted(seen, key=str) == sorted(values, key=str)
    conn.rollback()


def test_the_cli_runs_one_shard_then_the_finish_and_refuses_shards_that_do_not_exist(db_url, capsys):
    """``governance sweep --rule R --shards N --shard K``, then ``--finish``: a failed shard is
    rerun alone, the finish verifies the whole rule (docs/runbook.md)."""
    import json

    from governance.cli import main

    conn = connect(db_url)
    try:
        due = build_cookies(conn)
        base = ["sweep", "--db-url", db_url, "--now", NOW.isoformat(), "--rule", "cookie-preferences", "--json"]
        for bad in (
            ["--shards", "3", "--shard", "3"],
            ["--shards", "-1"],
            ["--shard", "0"],
            ["--shards", "0", "--shard", "0"],
        ):
            assert main([*base, *bad]) == 2
            assert "shard" in capsys.readouterr().err
        assert main([*base[:-3], "--rule", "contact-messages", "--shards", "2", "--shard", "1"]) == 2
        assert "cannot be cut into shards" in capsys.readouterr().err
        deleted = 0
        for k in (2, 0, 1):
            assert main([*base, "--shards", "3", "--shard", str(k)]) == 0
            [result] = json.loads(capsys.readouterr().out)["rules"]
            assert result["skipped_locked"] is False
            deleted += result["deleted"]
        assert deleted == len(due)
        assert main([*base, "--shards", "3", "--finish"]) == 0
        [finished] = json.loads(capsys.readouterr().out)["rules"]
        assert finished["deleted"] == 0 and finished["held"] > 0 and finished["strategy"] == "shards"
        summary = s.latest_summaries(conn.cursor(), f"cli-{NOW.isoformat().replace('+00:00', 'Z')}")
        conn.rollback()
        assert summary["cookie-preferences"]["deleted"] == len(due)
    finally:
        conn.close()
