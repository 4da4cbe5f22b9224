"""RET-3 at scale (#14 item 5, ADR 0011): the clock kept per customer in
governance.customer_last_order, against real PostgreSQL.

- the triggers on shop.orders keep the table equal to an oracle computed here from the rows
  (Python, not SQL) under inserts, updates, deletes, anonymisation and truncation;
- the audit's reconciliation check finds a tampered table (missing, extra, wrong clock) and nothing
  once it is rebuilt;
- the kept clock's due set equals the window view's (RET-10 boundaries, guests in varying case,
  holds, RET-8), and the ``kept`` sweep anonymises exactly that, in batches of due customers with
  evidence per batch, verified, and a rerun changes nothing.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta

import pytest
from dateutil.relativedelta import relativedelta
from psycopg2 import sql

from governance.audit.rights import RIGHTS_DIR, load_checks
from governance.policy import load_policy
from governance.sweep import plan, sweep_rule
from governance.sweep.held import Holds
from governance.sweep.kept import FIRST, LAST, KeptSelection
from governance.sweep.selection import Selection
from governance.sweep.target import load_target
from tests.integration import sweep_support as s
from tests.integration.test_sweep_chunks import NOW, RULE, anonymised, build_shop, one_pass_due, policy_with_view

CHECK_FILE = RIGHTS_DIR / "customer_last_order_reconciled.sql"
CHECK = "customer-last-order-reconciled"


def customer(account_id: int | None, email: str | None) -> str | None:
    """The table's key, computed here: the account, else sha256 of the trimmed, lower-cased address."""
    if account_id is not None:
        return f"a{account_id}"
    if email is None:
        return None
    return "g" + hashlib.sha256(email.strip(" ").lower().encode()).hexdigest()


def oracle(conn) -> dict[str, datetime]:
    """Each customer's latest live order, from the rows themselves."""
    with conn.cursor() as cur:
        cur.execute("SELECT account_id, email, placed_at FROM shop.orders WHERE anonymised_at IS NULL")
        rows = cur.fetchall()
    conn.rollback()
    latest: dict[str, datetime] = {}
    for account_id, email, placed in rows:
        key = customer(account_id, email)
        if key is not None:
            latest[key] = max(latest.get(key, placed), placed)
    return latest


def kept(conn) -> dict[str, datetime]:
    with conn.cursor() as cur:
        cur.execute("SELECT customer, last_placed_at FROM governance.customer_last_order")
        rows = dict(cur.fetchall())
    conn.rollback()
    return rows


def reconcile(conn) -> list[str]:
    """The audit's reconciliation check, evaluated as the audit evaluates it: its record ids."""
    with conn.cursor() as cur:
        cur.execute(CHECK_FILE.read_text())
        rows = cur.fetchall()
    conn.rollback()
    assert {r[0] for r in rows} <= {CHECK}
    return sorted(r[1] for r in rows)


@pytest.fixture
def empty(conn):
    s.empty_shop(conn)
    yield conn
    s.empty_shop(conn)


def test_the_triggers_keep_each_customers_last_order_under_every_change(empty):
    conn = empty
    old, recent = NOW - relativedelta(years=3), NOW - relativedelta(months=1)
    with conn.cursor() as cur:
        a = s.account(cur, old)
        b = s.account(cur, old)
        o1 = s.order(cur, old, a)
        o2 = s.order(cur, recent, a)
        g1 = s.order(cur, old, email="Kari@Example.invalid")
        g2 = s.order(cur, old + timedelta(days=3), email="  kari@example.INVALID ")
        s.order(cur, old, b)
        # a multi-row insert in one statement: one customer, the latest wins
        cur.execute(
            "INSERT INTO shop.orders (email, total_amount, placed_at) VALUES "
            "('per@example.invalid', 1, %s), ('PER@example.invalid', 1, %s)",
            (old, recent),
        )
    conn.commit()
    assert kept(conn) == oracle(conn) and len(kept(conn)) == 4
    steps = [
        "UPDATE shop.orders SET placed_at = placed_at - interval '1 year' WHERE order_id = {o2}",  # the latest moves back
        "UPDATE shop.orders SET account_id = {b} WHERE order_id = {o1}",  # an order moves to another customer
        "UPDATE shop.orders SET email = 'other@example.invalid' WHERE order_id = {g2}",  # a guest's address changes
        "UPDATE shop.orders SET total_amount = 2",  # nothing the clock depends on
        "UPDATE shop.orders SET anonymised_at = now(), email = NULL, account_id = NULL WHERE order_id = {g1}",
        "DELETE FROM shop.orders WHERE order_id = {o2}",  # a's last order gone
        "UPDATE shop.orders SET anonymised_at = now(), email = NULL, account_id = NULL "
        "WHERE lower(email) = 'per@example.invalid'",  # all of a customer's orders anonymised: its row goes
        "DELETE FROM shop.orders WHERE account_id = {b}",
    ]
    for step in steps:
        with conn.cursor() as cur:
            cur.execute(step.format(o1=o1, o2=o2, g1=g1, g2=g2, b=b))
        conn.commit()
        assert kept(conn) == oracle(conn), step
    assert reconcile(conn) == []
    with conn.cursor() as cur:
        cur.execute("TRUNCATE shop.orders CASCADE")
    conn.commit()
    assert kept(conn) == {} == oracle(conn)


def test_a_rolled_back_change_leaves_the_table_as_it_was(empty):
    conn = empty
    with conn.cursor() as cur:
        a = s.account(cur, NOW - relativedelta(years=3))
        s.order(cur, NOW - relativedelta(years=3), a)
    conn.commit()
    before = kept(conn)
    with conn.cursor() as cur:
        s.order(cur, NOW, a)
        cur.execute("DELETE FROM shop.orders WHERE placed_at < %s", (NOW - relativedelta(years=1),))
    conn.rollback()
    assert kept(conn) == before == oracle(conn)


def test_the_reconciliation_finds_a_tampered_table_and_nothing_after_a_rebuild(empty):
    """RET-3: the audit's check, written from the orders, fails on each kind of drift, naming ids only."""
    conn = empty
    old = NOW - relativedelta(years=3)
    with conn.cursor() as cur:
        accounts = [s.account(cur, old) for _ in range(3)]
        orders = [s.order(cur, old + timedelta(days=i), a) for i, a in enumerate(accounts)]
        s.order(cur, old, email="Guest@Example.invalid")
    conn.commit()
    assert reconcile(conn) == []
    assert CHECK in {c.id for c in load_checks()}  # the audit picks the file up
    with conn.cursor() as cur:
        cur.execute("DELETE FROM governance.customer_last_order WHERE customer = %s", (f"a{accounts[0]}",))
        cur.execute(
            "UPDATE governance.customer_last_order SET last_placed_at = last_placed_at - interval '1 day' "
            "WHERE customer = %s",
            (f"a{accounts[1]}",),
        )
        cur.execute("INSERT INTO governance.customer_last_order VALUES ('a999999999', %s)", (old,))
    conn.commit()
    found = reconcile(conn)
    assert len(found) == 3
    assert f"order:{orders[0]}:missing" in found and f"order:{orders[1]}:clock" in found
    assert any(re.fullmatch(r"kept:\(\d+,\d+\):extra", f) for f in found)
    assert not any("@" in f or "example" in f.lower() for f in found)  # no address, no name
    # the triggers bypassed (a replica-mode bulk load): found as missing
    with conn.cursor() as cur:
        cur.execute("SET LOCAL session_replication_role = replica")
        s.order(cur, old, email="bypass@example.invalid")
    conn.commit()
    assert len(reconcile(conn)) == 4
    with conn.cursor() as cur:
        cur.execute("SELECT governance.rebuild_customer_last_order()")
        assert cur.fetchone()[0] == 5
    conn.commit()
    assert reconcile(conn) == [] and kept(conn) == oracle(conn)


@pytest.fixture
def shop(conn):
    expected = build_shop(conn)
    yield expected
    s.empty_shop(conn)


def kept_due(conn, policy, now: datetime) -> set[int]:
    """The due, unheld orders as the kept clock selects them (its batches' predicate over all groups)."""
    target = load_target(conn, policy, RULE)
    sel = Selection(target, now, Holds.at(conn, now))
    k = KeptSelection(sel)
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("SELECT t.order_id FROM shop.orders t WHERE {}").format(k.batch_rows()),
            {**sel.params, **FIRST, **LAST},
        )
        rows = {r[0] for r in cur.fetchall()}
    conn.rollback()
    return rows


def view_due(conn, now: datetime) -> set[int]:
    target = load_target(conn, policy_with_view(), RULE)
    sel = Selection(target, now, Holds.at(conn, now))
    with conn.cursor() as cur:
        cur.execute(sel.candidates(lambda _: sql.SQL("t.order_id"), not_held=True), sel.params)
        rows = {r[0] for r in cur.fetchall()}
    conn.rollback()
    return rows


def test_the_kept_clock_selects_what_the_window_view_selects(conn, shop):
    """RET-10 boundaries (clock + 2 years == now is due, one second short is not), guests in
    varying case and spacing, an account holder's guest order, holds (RET-8): at "now" and at
    instants around the boundaries, the kept clock's due set is the view's and the oracle's."""
    policy = load_policy()
    assert load_target(conn, policy, RULE).kept is not None
    assert kept(conn) == oracle(conn)
    assert kept_due(conn, policy, NOW) == view_due(conn, NOW) == shop["anonymise"]
    for delta in (timedelta(seconds=-1), timedelta(seconds=1), timedelta(days=-200), timedelta(days=400)):
        assert kept_due(conn, policy, NOW + delta) == view_due(conn, NOW + delta), delta


def kept_policy(path: str):
    """The shop's policy; for the ``groups`` path without ``row_clock`` (so never one pass over the pages)."""
    policy = load_policy()
    if path == "blocks":
        return policy
    rules = [
        r.model_copy(
            update={"clock": r.clock.model_copy(update={"kept": r.clock.kept.model_copy(update={"row_clock": None})})}
        )
        if r.id == RULE
        else r
        for r in policy.rules
    ]
    return policy.model_copy(update={"rules": rules})


@pytest.mark.parametrize("path", ["blocks", "groups"])
def test_the_kept_sweep_anonymises_exactly_the_due_customers_in_batches_with_evidence(conn, shop, s3, path):
    """Half the customers are due: with ``row_clock`` one pass over the pages (``blocks``), without
    it batches of due customers (``groups``); the same orders either way, held ones left (RET-8)."""
    policy = kept_policy(path)
    expected = shop["anonymise"]
    assert one_pass_due(conn, policy_with_view()) == expected
    planned = plan(conn, policy, NOW, [RULE])[0]
    assert (planned.strategy, planned.due, planned.held) == ("kept", len(expected), len(shop["held"]))
    run = f"kept-run-{path}"
    result = sweep_rule(conn, s3, policy, RULE, NOW, run, batch_size=40)
    assert result.strategy == "kept" and result.anonymised == len(expected) and result.held == len(shop["held"])
    assert anonymised(conn) == expected  # held orders untouched, undue customers untouched
    assert result.batches > 5
    with conn.cursor() as cur:
        cur.execute(
            "SELECT step, counts, details FROM governance.evidence WHERE run_id = %s "
            "AND kind = 'sweep_batch' ORDER BY entry_id",
            (run,),
        )
        batches = cur.fetchall()
        cur.execute("SELECT details FROM governance.evidence WHERE run_id = %s AND kind = 'sweep_rule'", (run,))
        summary = cur.fetchone()[0]
    conn.rollback()
    assert sum(c["anonymised"] for _, c, _ in batches) == len(expected)
    assert all(re.fullmatch(rf"orders {path} \d+-(\d+|end)", step) for step, _, _ in batches)
    assert all(d["strategy"] == "kept" and d["path"] == path for _, _, d in batches)
    assert summary["verified_remaining"] == 0
    # The held customers keep their rows; the others are gone from the kept table (all anonymised).
    assert kept(conn) == oracle(conn)
    assert view_due(conn, NOW) == set()
    rerun = sweep_rule(conn, s3, policy, RULE, NOW, f"kept-rerun-{path}")  # held customers only are due: groups
    assert rerun.anonymised == 0 and rerun.held == len(shop["held"])
    assert anonymised(conn) == expected
    assert reconcile(conn) == []


@pytest.fixture
def slow_first_batches(conn):
    """The first three statements that anonymise the orders of more than one customer take 0.3 s
    (a statement trigger; the count is a sequence, so a rolled-back statement still counts)."""
    with conn.cursor() as cur:
        cur.execute(
            "CREATE SEQUENCE public.test_slow_batches; "
            "CREATE FUNCTION public.test_slow_batch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF (SELECT count(DISTINCT coalesce(account_id::text, lower(btrim(email)))) FROM old_orders) > 1 "
            "AND nextval('public.test_slow_batches') <= 3 THEN PERFORM pg_sleep(0.3); END IF; "
            "RETURN NULL; END $$; "
            "CREATE TRIGGER test_slow_batch AFTER UPDATE ON shop.orders REFERENCING OLD TABLE AS old_orders "
            "FOR EACH STATEMENT EXECUTE FUNCTION public.test_slow_batch()"
        )
    conn.commit()
    yield
    with conn.cursor() as cur:
        cur.execute(
            "DROP TRIGGER test_slow_batch ON shop.orders; DROP FUNCTION public.test_slow_batch(); "
            "DROP SEQUENCE public.test_slow_batches"
        )
    conn.commit()


@pytest.mark.parametrize("path", ["blocks", "groups"])
def test_a_batch_over_its_time_limit_is_rolled_back_and_swept_again_smaller(conn, shop, s3, slow_first_batches, path):
    """#14: a batch that overruns ``batch_time_limit`` (here: stalled 0.3 s against a 100 ms limit)
    is rolled back with nothing recorded and its rows swept again in smaller batches; the rule's
    effect and evidence are those of a sweep that never stalled, and no committed batch of
    customers waited out a stall."""
    policy = kept_policy(path)
    expected = shop["anonymise"]
    run = f"kept-slow-{path}"
    batch_size = 400 if path == "blocks" else 40  # a first batch of several pages / customers
    result = sweep_rule(conn, s3, policy, RULE, NOW, run, batch_size=batch_size, batch_time_limit="100ms")
    assert result.batches_over_time >= 1
    assert result.anonymised == len(expected) and anonymised(conn) == expected
    with conn.cursor() as cur:
        cur.execute(
            "SELECT counts FROM governance.evidence WHERE run_id = %s AND kind = 'sweep_batch'",
            (run,),
        )
        batches = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT details FROM governance.evidence WHERE run_id = %s AND kind = 'sweep_rule'", (run,))
        summary = cur.fetchone()[0]
    conn.rollback()
    assert sum(c["anonymised"] for c in batches) == len(expected)  # nothing of a rolled-back batch
    assert summary["verified_remaining"] == 0 and summary["batches_over_time"] == result.batches_over_time
    if path == "groups":  # cut down to one customer, which the stall spares: every stall rolled back
        assert result.batches_over_time == 3 and result.max_batch_seconds < 0.3
    assert reconcile(conn) == []


def test_a_rule_hold_keeps_every_order_and_a_dry_run_changes_nothing(conn, shop, s3):
    policy = load_policy()
    dry = sweep_rule(conn, s3, policy, RULE, NOW, "kept-dry", dry_run=True)
    assert dry.anonymised == len(shop["anonymise"]) and anonymised(conn) == set()
    with conn.cursor() as cur:
        s.hold(cur, "rule", NOW - timedelta(days=1), rule_id=RULE)
    conn.commit()
    result = sweep_rule(conn, s3, policy, RULE, NOW, "kept-held")
    assert result.anonymised == 0 and result.held == len(shop["anonymise"]) + len(shop["held"])
    assert anonymised(conn) == set()


def test_a_customer_who_orders_again_is_no_longer_due(conn, shop, s3):
    """A customer who orders again is no longer due: the kept clock moves on at once, and the batch
    statement checks each group due itself."""
    policy = load_policy()
    target = load_target(conn, policy, RULE)
    sel = Selection(target, NOW, Holds.at(conn, NOW))
    k = KeptSelection(sel)
    with conn.cursor() as cur:
        # the boundary account orders again, after the groups were read
        cur.execute(
            "SELECT account_id FROM shop.orders WHERE account_id IS NOT NULL AND placed_at = %s",
            (NOW - relativedelta(years=2),),
        )
        boundary = cur.fetchone()[0]
        s.order(cur, NOW - timedelta(days=1), boundary)
    conn.commit()
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("SELECT t.order_id FROM shop.orders t WHERE {}").format(k.batch_rows()),
            {**sel.params, **FIRST, **LAST},
        )
        rows = {r[0] for r in cur.fetchall()}
        cur.execute("SELECT order_id FROM shop.orders WHERE account_id = %s", (boundary,))
        boundary_orders = {r[0] for r in cur.fetchall()}
    conn.rollback()
    assert rows == shop["anonymise"] - boundary_orders and boundary_orders & shop["anonymise"]
    result = sweep_rule(conn, s3, policy, RULE, NOW, "kept-again")
    assert anonymised(conn) == shop["anonymise"] - boundary_orders
    assert result.anonymised == len(shop["anonymise"] - boundary_orders)


def test_the_policy_names_a_kept_clock_that_must_exist(conn):
    """check_policy: the kept table and its columns must exist with the right types."""
    from governance.policy import check_against_database

    policy = load_policy()
    assert check_against_database(policy, conn) == []
    rule = policy.rule(RULE)
    assert rule.clock.kept is not None
    broken = rule.clock.model_copy(update={"kept": rule.clock.kept.model_copy(update={"clock": "customer"})})
    rules = [r.model_copy(update={"clock": broken}) if r.id == RULE else r for r in policy.rules]
    problems = check_against_database(policy.model_copy(update={"rules": rules}), conn)
    assert any("clock.kept.clock" in p for p in problems)
