"""RES-1 / OBJ-1 / CON-1: answering an objection for one person in a shop of 1,000,000 customers,
2,000,000 newsletter subscriptions and 1,000,000 cookie preferences (scale 1), in a database of its own
(``bench_<timestamp>_processing``).

- **ours**: ``governance.processing.switch_off`` of a verified objection naming ``newsletter`` and
  ``marketing_cookies``: the purposes and the catalogue checked, the request started, then one
  transaction with the register rows, both switch_off UPDATEs, the held-row count, the notices
  step, the evidence and the completion;
- **baseline**: the least any answer must do, hand-written: one transaction with the two UPDATEs
  by the person's account and address (the same index conditions), the two register rows and one
  evidence entry (an effect commits with its proof). Ours does more by design: the request's
  ledger transitions (started, completed), each with its evidence, in their own short transactions.

Each person is answered once (a second answer changes nothing), so ours and the baseline take
alternate people of the same shape (an account, its subscription, a guest subscription under
another spelling, cookie preferences); the median per person counts. The target says the answer
stays on the indexes: a table scan of a million rows would cost the answer far more than the
ledger's own transactions. Correctness first: every person answered must have exactly their rows
switched off and nobody else's.
"""

from __future__ import annotations

import statistics
import time
from datetime import timedelta

import bulk_load
import services
from harness import Check, Context, at_most, ratio

PEOPLE = 40  # answered ones, half by ours, half by the baseline
TARGET = 5.0  # ours/baseline, median per person (see bench/README.md, "Processing rights (#11)")
PURPOSES = ["marketing_cookies", "newsletter"]

_BUILD = [
    "INSERT INTO shop.accounts (account_id, email, password_hash, first_name, created_at) "
    "SELECT n, 'kunde' || n || '@example.invalid', 'x', 'Kari', %(then)s FROM generate_series(1, %(n)s) n",
    "SELECT setval('shop.accounts_account_id_seq', %(n)s)",
    "INSERT INTO shop.newsletter_subscriptions (account_id, email, first_name, subscribed_at) "
    "SELECT n, 'kunde' || n || '@example.invalid', 'Kari', %(then)s FROM generate_series(1, %(n)s) n",
    # guests: another spelling of every 10th customer's address, and addresses of their own
    "INSERT INTO shop.newsletter_subscriptions (email, first_name, subscribed_at) "
    "SELECT CASE WHEN n %% 10 = 0 THEN '  KUNDE' || n || '@Example.invalid ' ELSE 'gjest' || n || '@example.invalid' END, "
    "'Kari', %(then)s FROM generate_series(1, %(n)s) n",
    "INSERT INTO shop.cookie_preferences (visitor_key, account_id, analytics, marketing, given_at) "
    "SELECT gen_random_uuid(), CASE WHEN n %% 2 = 0 THEN n END, true, true, %(then)s FROM generate_series(1, %(n)s) n",
]


TABLES = ["shop.accounts", "shop.newsletter_subscriptions", "shop.cookie_preferences"]


def build(ctx: Context, conn, db_url: str, customers: int) -> None:
    """The rows (bench/bulk_load.py: the indexes built after them), then settled."""
    params = {"n": customers, "then": ctx.now - timedelta(days=30)}
    bulk_load.load(ctx, db_url, TABLES, [(statement, params) for statement in _BUILD], "processing data")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM (ANALYZE) shop.accounts, shop.newsletter_subscriptions, shop.cookie_preferences")
    conn.autocommit = False


def people(customers: int) -> list[int]:
    """Account ids with a guest subscription under another spelling and cookie preferences."""
    step = max(20, customers // PEOPLE // 20 * 20)
    return [n for n in range(step, customers + 1, step) if n % 20 == 0][:PEOPLE]


def open_objections(conn, policy, accounts: list[int], now) -> dict[int, int]:
    from governance import requests

    opened = {}
    for account in accounts:
        request = requests.open_request(
            conn, policy, kind="objection", account_id=account, channel="web_form", opened_by="bench",
            purposes=PURPOSES, now=now - timedelta(hours=2),
        )  # fmt: skip
        requests.verify(conn, policy, request.request_id, verified_by="bench", method="signed_in_account", now=now)
        opened[account] = request.request_id
    return opened


def hand_written(conn, account: int, request_id: int, now) -> None:
    """The baseline: both switch-offs, the register rows and an evidence entry, one transaction."""
    from governance import evidence

    with conn.cursor() as cur:
        cur.execute(
            "UPDATE shop.newsletter_subscriptions SET unsubscribed_at = %(now)s WHERE unsubscribed_at IS NULL AND "
            "(account_id = %(a)s OR (account_id IS NULL AND lower(btrim(email)) = %(e)s))",
            {"now": now, "a": account, "e": f"kunde{account}@example.invalid"},
        )
        cur.execute(
            "UPDATE shop.cookie_preferences SET marketing = false WHERE account_id = %s AND marketing", (account,)
        )
        cur.execute(
            "INSERT INTO governance.processing_register (request_id, purpose, effect, account_ids, email_sha256s, "
            "starts_at) SELECT %s, p, 'objected', ARRAY[%s::bigint], ARRAY[governance.email_pseudonym(%s)], %s "
            "FROM unnest(%s::text[]) p",
            (request_id, account, f"kunde{account}@example.invalid", now, PURPOSES),
        )
        evidence.append(
            cur, kind="bench_switched_off", run_id=f"request-{request_id}", requirements=["OBJ-1"], as_of=now,
            policy_version="bench", counts={"rows": cur.rowcount}, details={"request_id": request_id},
        )  # fmt: skip
    conn.commit()


def switched(conn, accounts: list[int]) -> tuple[int, int]:
    """(subscriptions unsubscribed, cookie preferences off) in the whole shop."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT (SELECT count(*) FROM shop.newsletter_subscriptions WHERE unsubscribed_at IS NOT NULL), "
            "(SELECT count(*) FROM shop.cookie_preferences WHERE NOT marketing)"
        )
        found = cur.fetchone()
    conn.rollback()
    return int(found[0]), int(found[1])


def run(ctx: Context) -> list[Check]:
    from governance.db import apply_schema, connect
    from governance.notices import pseudonym_key
    from governance.processing import switch_off

    key = pseudonym_key("bench-processing-key-0123456789abcdef")  # synthetic: TP-5 pseudonyms

    customers = ctx.size(1_000_000, 20_000)
    with services.scratch_database(ctx.admin_url, suffix="processing") as (db_url, _name):
        conn = connect(db_url)
        with ctx.setup_phase("processing data"):
            apply_schema(conn, ctx.policy)
            build(ctx, conn, db_url, customers)
            accounts = people(customers)
            requests_of = open_objections(conn, ctx.policy, accounts, ctx.now)
        ours: list[float] = []
        base: list[float] = []
        for i, account in enumerate(accounts):
            start = time.perf_counter()
            if i % 2 == 0:
                switch_off(conn, ctx.policy, requests_of[account], now=ctx.now, key=key)
                ours.append(time.perf_counter() - start)
            else:
                hand_written(conn, account, requests_of[account], ctx.now)
                base.append(time.perf_counter() - start)
        # every person: their account's and guest subscription, their cookie preferences; nobody else's
        right = switched(conn, accounts) == (2 * len(accounts), len(accounts))
        conn.close()
    ours_s, base_s = statistics.median(ours), statistics.median(base)
    r = ratio(ours_s, base_s)
    check = Check(
        "processing.objection_vs_hand_written",
        f"objection switched off for one person ({2 * customers:,} subscriptions)",
        ours_s,
        {"hand-written": base_s},
        r,
        "ours/baseline",
        f"<= {TARGET:g}x, and right",
        bool(at_most(r, TARGET)) and right,
        counts={"subscriptions": 2 * customers, "cookie_preferences": customers, "people": len(accounts)},
    )
    if not right:
        check.notes.append("WRONG: the rows switched off are not exactly the people's")
    check.notes.append(f"ours max {max(ours) * 1000:.1f} ms, baseline max {max(base) * 1000:.1f} ms per person")
    return [check]
