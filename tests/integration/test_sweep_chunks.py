"""RET-3 at scale: a clock view with a ``chunk`` column is computed in N short transactions.

The order-records clock (RET-3, RET-10: a customer's orders share the clock of the customer's
latest order; a guest customer is the trimmed, lower-cased e-mail address) is a window function
over all orders. Its view exposes ``chunk`` (a hash of the customer, in the window's PARTITION BY),
so the sweep computes the due set chunk by chunk: each chunk's qual must reach the scan below the
window, and the records anonymised (RET-8), the holds honoured and the evidence must be exactly
those of one pass. A view without the column is swept in one pass, as before.
"""

from __future__ import annotations

import copy
import logging
import random
import re
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from dateutil.relativedelta import relativedelta
from psycopg2 import sql

from governance.policy import DEFAULT_POLICY_PATH, parse_policy
from governance.sweep import sweep_rule
from governance.sweep.held import Holds
from governance.sweep.selection import Selection
from governance.sweep.target import load_target
from governance_dev.reference import email_pseudonym
from tests.integration import sweep_support as s

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TWO_YEARS = relativedelta(years=2)
SECOND = timedelta(seconds=1)
RULE = "order-records"
ENGINE_LOG = "governance.sweep.strategies.work_table"

# The RET-3 view as it was before the chunk column: the same clock, no ``chunk``.
PLAIN_VIEW = """
CREATE OR REPLACE VIEW governance_clocks.ret_3_orders_plain AS
    SELECT o.order_id AS record_id,
           max(o.placed_at) OVER (PARTITION BY o.account_id,
                                  CASE WHEN o.account_id IS NULL THEN lower(btrim(o.email)) END) AS clock
    FROM shop.orders o
    WHERE o.anonymised_at IS NULL
"""
# A ``chunk`` column that is not an integer is not a chunking column.
TEXT_CHUNK_VIEW = """
CREATE OR REPLACE VIEW governance_clocks.ret_3_orders_text_chunk AS
    SELECT v.record_id, v.clock, 'a'::text AS chunk FROM governance_clocks.ret_3_orders_plain v
"""


def policy_with_view(view: str = "governance_clocks.ret_3_orders"):
    """The shop's policy with the RET-3 clock read from ``view`` alone: without the clock kept per
    customer (``clock.kept``, swept by test_sweep_kept_clock.py), the view's chunks are what is tested."""
    data = copy.deepcopy(yaml.safe_load(DEFAULT_POLICY_PATH.read_text()))
    for rule in data["rules"]:
        if rule["id"] == RULE:
            rule["clock"]["view"] = view
            rule["clock"].pop("kept", None)
    return parse_policy(data, f"{view}.yaml")


def customer_key(account_id: int | None, email: str) -> tuple:
    """RET-10's customer, as the clock view has it: the account, else the e-mail trimmed of spaces, lower-cased."""
    return ("account", account_id) if account_id is not None else ("guest", email.strip(" ").lower())


def build_shop(conn) -> dict:
    """Customers with accounts and guests (e-mails in mixed case with spaces), due or not, some held.

    Returns the orders that must be anonymised and those held, computed here from the rows
    (an oracle independent of the SQL)."""
    s.empty_shop(conn)
    rng = random.Random(3)
    orders: dict[int, tuple[int | None, str, datetime]] = {}
    with conn.cursor() as cur:

        def order(placed: datetime, account_id: int | None = None, email: str | None = None) -> int:
            order_id = s.order(cur, placed, account_id, email)
            cur.execute("SELECT email FROM shop.orders WHERE order_id = %s", (order_id,))
            orders[order_id] = (account_id, cur.fetchone()[0], placed)
            return order_id

        old, recent = NOW - relativedelta(years=3), NOW - relativedelta(months=1)
        # Hand-made edges (RET-10): the boundary, one second inside it, one guest spelled three ways.
        boundary = s.account(cur, old)
        order(old, boundary)
        order(NOW - TWO_YEARS, boundary)  # clock + 2 years == now: due
        inside = s.account(cur, old)
        order(old, inside)
        order(NOW - TWO_YEARS + SECOND, inside)  # one second short: the whole customer stays
        order(old, email="Kari.Nordmann@Example.invalid")
        order(old + timedelta(days=40), email="  kari.nordmann@example.invalid ")
        order(recent, email="KARI.NORDMANN@EXAMPLE.INVALID")  # the same guest ordered again: none due
        order(old, email="Per.Hansen@Example.invalid ")
        order(old + timedelta(days=100), email=" per.hansen@EXAMPLE.invalid")  # one guest, both due
        # A guest order with an account holder's address is another customer (the account is).
        ola = s.account(cur, old)
        order(old, ola, "ola@example.invalid")
        order(recent, email="Ola@example.invalid")
        # Many customers, so that every chunk has some: half of them due.
        for n in range(400):
            due = n % 2 == 1
            last = (
                NOW - TWO_YEARS - timedelta(days=rng.randint(1, 300))
                if due
                else NOW - timedelta(days=rng.randint(1, 300))
            )
            if n % 3 == 0:
                address = f"gjest{n}@example.invalid"
                spellings = [address, address.upper(), f" {address.capitalize()}  "]
                for i in range(rng.randint(1, 3)):
                    order(last - timedelta(days=200 * i), email=spellings[i])
            else:
                account_id = s.account(cur, old - relativedelta(years=1))
                for i in range(rng.randint(1, 4)):
                    order(last - timedelta(days=150 * i), account_id)
        # RET-8 holds: a guest by e-mail pseudonym (any spelling), one order of a due account by key.
        s.hold(cur, "person", NOW - timedelta(days=1), email_sha256=email_pseudonym("PER.HANSEN@example.invalid"))
        held_record = next(o for o, (a, _, p) in orders.items() if a == boundary and p == old)
        s.hold(cur, "record", NOW - timedelta(days=1), table_name="shop.orders", record_key=str(held_record))
        cur.execute("ANALYZE shop.orders")
    conn.commit()
    latest: dict[tuple, datetime] = {}
    for account_id, email, placed in orders.values():
        key = customer_key(account_id, email)
        latest[key] = max(latest.get(key, placed), placed)
    due = {o for o, (a, e, _) in orders.items() if latest[customer_key(a, e)] + TWO_YEARS <= NOW}
    held = {
        o for o in due if o == held_record or customer_key(*orders[o][:2]) == ("guest", "per.hansen@example.invalid")
    }
    return {"orders": orders, "anonymise": due - held, "held": held}


def anonymised(conn) -> set[int]:
    with conn.cursor() as cur:
        cur.execute("SELECT order_id FROM shop.orders WHERE anonymised_at IS NOT NULL")
        done = {r[0] for r in cur.fetchall()}
        # RET-8: every personal column of the policy masked on those orders, the rest untouched
        cur.execute(
            "SELECT count(*) FROM shop.orders WHERE anonymised_at IS NOT NULL AND (email IS NOT NULL "
            "OR first_name IS NOT NULL OR account_id IS NOT NULL OR payment_method <> 'anonymised')"
        )
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT count(*) FROM shop.orders WHERE anonymised_at IS NULL AND email IS NULL")
        assert cur.fetchone()[0] == 0
    conn.rollback()
    return done


def one_pass_due(conn, policy) -> set[int]:
    """The selection computed the way it was before chunks: one pass over the whole view."""
    target = load_target(conn, policy, RULE)
    sel = Selection(target, NOW, Holds.at(conn, NOW))
    with conn.cursor() as cur:
        cur.execute(sel.candidates(lambda _: sql.SQL("t.order_id"), not_held=True), sel.params)
        rows = {r[0] for r in cur.fetchall()}
    conn.rollback()
    return rows


def chunks_logged(caplog) -> list[int]:
    return [
        int(m.group(1))
        for r in caplog.records
        if r.name == ENGINE_LOG
        for m in [re.search(r"computed in (\d+) chunk", r.getMessage())]
        if m
    ]


def work_steps(conn, run_id: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT step FROM governance.evidence WHERE run_id = %s AND kind = 'sweep_batch' ORDER BY entry_id",
            (run_id,),
        )
        steps = [r[0] for r in cur.fetchall()]
    conn.rollback()
    ranges = []
    for step in steps:
        m = re.fullmatch(r"orders tid \((\d+),(\d+)\)-\((\d+),(\d+)\)", step)
        assert m, step
        a, b, c, d = map(int, m.groups())
        ranges.append(((a, b), (c, d)))
    return ranges


@pytest.fixture
def shop(conn):
    expected = build_shop(conn)
    yield expected
    s.empty_shop(conn)


def test_the_ret_3_view_exposes_an_integer_chunk_column_and_others_do_not(conn, shop):
    policy = policy_with_view()
    assert load_target(conn, policy, RULE).chunked
    assert not load_target(conn, policy, "contact-messages").chunked  # no chunk column
    with conn.cursor() as cur:
        cur.execute(PLAIN_VIEW)
        cur.execute(TEXT_CHUNK_VIEW)
    conn.commit()
    assert not load_target(conn, policy_with_view("governance_clocks.ret_3_orders_plain"), RULE).chunked
    assert not load_target(conn, policy_with_view("governance_clocks.ret_3_orders_text_chunk"), RULE).chunked
    conn.rollback()


def test_the_chunk_qual_reaches_the_scan_below_the_window(conn, shop):
    """Each chunk's window sees only the chunk's orders: the chunks' window rows add up to the
    whole, none of them is the whole (EXPLAIN ANALYZE of the statement the sweep runs)."""
    target = load_target(conn, policy_with_view(), RULE)
    sel = Selection(target, NOW, Holds.at(conn, NOW))
    columns = sql.SQL("t.tableoid AS rel, t.ctid AS tid, t.order_id AS rec")

    def window_rows(chunked: bool, chunk: int = 0) -> tuple[int, list[str]]:
        query = sel.candidates(lambda _: columns, not_held=True, chunked=chunked)
        with conn.cursor() as cur:
            cur.execute(sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + query, {**sel.params, "chunks": 4, "chunk": chunk})
            plan = cur.fetchone()[0][0]["Plan"]
        conn.rollback()
        nodes, filters_below = [], []

        def walk(node: dict, below_window: bool) -> None:
            if node["Node Type"] == "WindowAgg":
                nodes.append(node)
                below_window = True
            if below_window and "Filter" in node:
                filters_below.append(node["Filter"])
            for child in node.get("Plans", []):
                walk(child, below_window)

        walk(plan, False)
        assert len(nodes) == 1
        return nodes[0]["Actual Rows"], filters_below

    whole, _ = window_rows(False)
    assert whole == len(shop["orders"])
    per_chunk = []
    for chunk in range(4):
        rows, filters = window_rows(True, chunk)
        assert any("mod(" in f and "hash" in f for f in filters), filters  # evaluated in the scan
        per_chunk.append(rows)
    assert sum(per_chunk) == whole and max(per_chunk) < whole


def test_a_chunked_sweep_anonymises_exactly_what_one_pass_does(conn, shop, s3, caplog):
    """RET-3/RET-8/RET-10: the due set built in chunks (N from the table's rows, one per 300) is the
    one-pass set; holds are honoured; batches are disjoint, ordered ranges of the heap (the work
    table is put in heap order after the chunks)."""
    policy = policy_with_view()
    expected = shop["anonymise"]
    assert one_pass_due(conn, policy) == expected and len(expected) > 300
    caplog.set_level(logging.INFO, logger=ENGINE_LOG)
    rows = len(shop["orders"])
    result = sweep_rule(conn, s3, policy, RULE, NOW, "chunked", chunk_rows=300, batch_size=50)
    assert chunks_logged(caplog) == [-(-rows // 300)] and -(-rows // 300) > 2
    assert result.anonymised == len(expected) and result.held == len(shop["held"])
    assert anonymised(conn) == expected
    ranges = work_steps(conn, "chunked")
    assert len(ranges) == result.batches > 1
    assert all(lo <= hi < next_lo for (lo, hi), (next_lo, _) in zip(ranges, ranges[1:], strict=False))
    with conn.cursor() as cur:
        cur.execute("SELECT counts FROM governance.evidence WHERE run_id = 'chunked' AND kind = 'sweep_rule'")
        assert cur.fetchone()[0] == {"anonymised": len(expected), "held": len(shop["held"])}
    conn.rollback()
    # verified chunk by chunk: nothing left; a rerun finds nothing and records nothing
    again = sweep_rule(conn, s3, policy, RULE, NOW, "chunked", chunks=3)
    assert again.anonymised == 0 and anonymised(conn) == expected


def test_forced_chunk_counts_give_the_same_records(make_database, s3):
    """Whatever N (1 = one pass), the same orders are anonymised, with the same evidence counts."""
    from governance.db import connect

    outcomes = {}
    for chunks in (1, 2, 7):
        conn = connect(make_database())
        try:
            expected = build_shop(conn)
            result = sweep_rule(conn, s3, policy_with_view(), RULE, NOW, f"n{chunks}", chunks=chunks)
            outcomes[chunks] = (result.anonymised, result.held, anonymised(conn))
            assert outcomes[chunks] == (len(expected["anonymise"]), len(expected["held"]), expected["anonymise"])
        finally:
            conn.close()
    assert outcomes[1] == outcomes[2] == outcomes[7]


def test_a_view_without_the_chunk_column_is_swept_in_one_pass(conn, shop, s3, caplog):
    with conn.cursor() as cur:
        cur.execute(PLAIN_VIEW)
    conn.commit()
    policy = policy_with_view("governance_clocks.ret_3_orders_plain")
    caplog.set_level(logging.INFO, logger=ENGINE_LOG)
    result = sweep_rule(conn, s3, policy, RULE, NOW, "plain", chunk_rows=10, chunks=5)
    assert chunks_logged(caplog) == [1]
    assert (result.anonymised, result.held) == (len(shop["anonymise"]), len(shop["held"]))
    assert anonymised(conn) == shop["anonymise"]


@pytest.mark.parametrize("chunks", [1, 3, 7])
def test_the_plan_counts_a_chunked_clock_chunk_by_chunk_to_the_same_totals(conn, shop, chunks):
    """governance plan (and the DAG's settle step) count a chunked clock in short READ ONLY
    transactions too (RET-3): whatever N, the same due and held counts as the independent oracle."""
    from governance.sweep import plan

    [p] = plan(conn, policy_with_view(), NOW, [RULE], chunks=chunks)
    assert (p.due, p.held) == (len(shop["anonymise"]), len(shop["held"]))
    assert anonymised(conn) == set()  # a plan changes nothing
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting('transaction_read_only')")
        assert cur.fetchone()[0] == "off"  # the plan ended its transactions; the next is the caller's
    conn.rollback()
