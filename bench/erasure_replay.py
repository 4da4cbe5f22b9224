"""The replay of 10,000 erasures after a restore (ERA-1, #11): ours against hand-written set-based
statements of the same records, and against Fides' shape (one row per transaction).

The restored shop is the export shop (``bench/export_shop.py``) as built (a copy of the run's shop
template, bench/shop_template.py; the uploads of the people replayed name the policy's uploads
bucket here, absent from S3): every erased person's
records are all there again. Half the erased people have an account, half are guests (orders,
newsletter and messages by address only). Three contenders, each on its own copy of the shop
(``CREATE DATABASE ... TEMPLATE``):

- **ours**: ``governance.erasure.replay.apply_entries`` on the 10,000 ledger entries (the database
  part: the subjects' scratch table, the records recorded, the batches with their evidence). The
  independent check is not timed here (it lists every recorded object in S3: tests cover it).
- **hand-written**: in one transaction, the subjects in a temporary table, then one DELETE or
  UPDATE per table, children first, with the same predicates (the person finder's, over the
  subjects) and the same RET-8 masking; no batches, no holds, no evidence.
- **Fides' shape**: per person and table a SELECT of the keys, then one UPDATE or DELETE per row,
  each in its own transaction committed with the server's default ``synchronous_commit``; timed on
  a sample of people and extrapolated per record. The hand-written statements' own speed-up over it
  is reported too: the bound of the ≥ 100× target on this machine's commit latency.

The ledger read (S3 GETs) is timed apart on a smaller ledger and extrapolated per entry.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import services
import shop_template
from builders import settle_tables
from harness import Check, Context, analyze_all, at_least, at_most, checkpoint, ratio, timed

SHOP = (1_000_000, 20_000)  # the shop template's customers (full, minimum): built beside the data sets
HAND_RATIO = 1.5
FIDES_SPEEDUP = 100.0
LEDGER_BUCKET = "bench-erasure-ledger"
UPLOADS_BUCKET = "bench-replay-uploads"  # named by the policy, absent from S3: the objects are gone


def address(c: int) -> str:
    return f"customer{c}@example.com"


def erased(customers: int, count: int) -> list[int]:
    """``count`` customers spread over the shop, alternately an account holder and a guest."""
    stride = max(10, customers // count)
    return [k * stride + (1 if k % 2 == 0 else 5) for k in range(count) if k * stride + 5 <= customers]


def entries(people: list[int], now) -> list[Any]:
    from governance.erasure.ledger import LedgerEntry

    return [
        LedgerEntry(
            request_id=10_000_000 + c,
            kind="erasure",
            erased_at=(now - timedelta(minutes=5)).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            account_ids=[c] if c % 5 != 0 else [],
            email_sha256s=[hashlib.sha256(address(c).encode()).hexdigest()],
            keep_categories=[],
        )
        for c in people
    ]


def bench_policy(policy):
    """The policy file with the uploads' objects in UPLOADS_BUCKET and the ledger in LEDGER_BUCKET
    (a copy next to it, so its relative paths resolve; removed once loaded)."""
    import os
    import tempfile
    from pathlib import Path

    from governance.policy import load_policy

    text = Path(policy.source_path).read_text()
    for old, new in (
        ("buckets: [shop-uploads]", f"buckets: [{UPLOADS_BUCKET}]"),
        ("uploads_bucket: shop-uploads", f"uploads_bucket: {UPLOADS_BUCKET}"),  # the shop is built naming it
        ("erasure_ledger_bucket: governance-erasure-ledger", f"erasure_ledger_bucket: {LEDGER_BUCKET}"),
    ):
        if old not in text:
            raise RuntimeError(f"the policy no longer says {old!r}: update bench/erasure_replay.py")
        text = text.replace(old, new)
    fd, name = tempfile.mkstemp(suffix=".yaml", prefix=".bench-", dir=Path(policy.source_path).parent)
    try:
        os.write(fd, text.encode())
        os.close(fd)
        return load_policy(name)
    finally:
        os.unlink(name)


def hand_written(conn, policy, subjects: list[Any], now) -> tuple[float, int]:
    """One transaction, one statement per table; (seconds, records changed)."""
    from psycopg2 import sql

    from governance.db import ident
    from governance.erasure import replay_work
    from governance.erasure.plan import erasure_plan
    from governance.person.records import person_predicate
    from governance.sweep.actions.anonymise import mask_assignments

    changed = 0
    with timed() as t:
        with conn.cursor() as cur:
            replay_work.create_scratch(cur)
            replay_work.load_subjects(
                cur, [a for e in subjects for a in e.account_ids], [p for e in subjects for p in e.email_sha256s]
            )
            for plan in erasure_plan(cur, policy):
                matches = person_predicate(policy, plan.store, replay_work.REPLAY_KEYS)
                if plan.disposition == "erase":
                    cur.execute(sql.SQL("DELETE FROM {} t WHERE {}").format(ident(plan.table), matches))
                elif plan.disposition == "anonymise":
                    assignments, params = mask_assignments(plan.anonymise)
                    cur.execute(
                        sql.SQL("UPDATE {} t SET {} WHERE {} AND t.{} IS NULL").format(
                            ident(plan.table), assignments, matches, sql.Identifier(plan.anonymise.marker_column)
                        ),
                        {**params, "now": now},
                    )
                else:
                    continue
                changed += cur.rowcount
        conn.commit()
    return t.seconds, changed


def fides(conn, policy, people: list[int], now) -> tuple[float, int]:
    """Per person and table a SELECT, then one statement per row in its own transaction."""
    from psycopg2 import sql

    from governance.db import ident
    from governance.erasure.plan import erasure_plan
    from governance.person.records import person_predicate
    from governance.sweep.actions.anonymise import mask_assignments

    with conn.cursor() as cur:
        plans = [p for p in erasure_plan(cur, policy) if p.disposition != "keep"]
        cur.execute("SHOW synchronous_commit")  # the default: each commit waits for the WAL flush
        if cur.fetchone() != ("on",):
            raise RuntimeError("Fides' shape is timed with synchronous_commit = on (the server's default)")
    conn.commit()
    rows = 0
    with timed() as t:
        for c in people:
            params = {"accounts": [c] if c % 5 != 0 else [], "emails": [address(c)]}
            for plan in plans:
                with conn.cursor() as cur:
                    cur.execute(
                        sql.SQL("SELECT t.{} FROM {} t WHERE {}").format(
                            sql.Identifier(plan.key), ident(plan.table), person_predicate(policy, plan.store)
                        ),
                        params,
                    )
                    keys = [r[0] for r in cur.fetchall()]
                conn.commit()
                for key in keys:
                    with conn.cursor() as cur:
                        if plan.disposition == "anonymise":
                            assignments, mask = mask_assignments(plan.anonymise)
                            statement = sql.SQL("UPDATE {} t SET {} WHERE t.{} = %(key)s").format(
                                ident(plan.table), assignments, sql.Identifier(plan.key)
                            )
                            cur.execute(statement, {**mask, "key": key, "now": now})
                        else:
                            cur.execute(
                                sql.SQL("DELETE FROM {} WHERE {} = %s").format(
                                    ident(plan.table), sql.Identifier(plan.key)
                                ),
                                (key,),
                            )
                    conn.commit()
                    rows += 1
    return t.seconds, rows


def ledger_read(ctx: Context, policy, sample: list[Any]) -> tuple[float, int]:
    """Write ``sample`` entries to a locked ledger bucket (set-up), then time reading them back."""
    from concurrent.futures import ThreadPoolExecutor

    from governance.erasure.replay import ledger_entries
    from governance.objectstore import locked_bucket_mode, put_locked

    s3 = ctx.s3()
    locked_bucket_mode(s3, LEDGER_BUCKET, 1)
    with ctx.setup_phase("erasure replay ledger"), ThreadPoolExecutor(16) as pool:
        until = ctx.now + timedelta(days=1)
        list(pool.map(lambda e: put_locked(s3, LEDGER_BUCKET, e.object_key(), e.to_bytes(), until), sample))
    with timed() as t:
        found = ledger_entries(s3, policy, ctx.now - timedelta(hours=1), None)
    return t.seconds, len(found)


def prepare(ctx: Context, sub: Context, customers: list[int]) -> None:
    """The restored shop: the uploads of ``customers`` (the erased and Fides' people) name the
    policy's UPLOADS_BUCKET, absent from S3 (their objects are gone); then settled again."""
    from governance.db import connect

    conn = connect(sub.db_url)
    uploads = [2 * c + j for c in customers for j in (0, 1)]
    with conn.cursor() as cur:
        cur.execute("UPDATE shop.uploads SET bucket = %s WHERE upload_id = ANY(%s)", (UPLOADS_BUCKET, uploads))
    conn.commit()
    settle_tables(sub, ["shop.uploads"])
    with ctx.setup_phase("erasure replay data: checkpoint"):
        analyze_all(conn)
        checkpoint(conn)
    conn.close()


def run(ctx: Context) -> list[Check]:
    from governance.db import connect
    from governance.erasure.replay import apply_entries

    customers, count = ctx.size(*SHOP), ctx.size(10_000, 2_000)
    policy = bench_policy(ctx.policy)
    people = erased(customers, count)
    ledger = entries(people, ctx.now)
    sample = [c + 2 for c in people[: ctx.sample(300, 60)]]  # Fides' people: others, of the same two kinds
    # the last measurement of the run order (bench/run.py MEASUREMENTS) to use the shop template
    with shop_template.copy(ctx, "replay", customers, last=True) as shop:
        db_url, name = shop.db_url, shop.name
        sub = Context(ctx.scale, ctx.admin_url, db_url, name, ctx.s3_url, ctx.now, policy, setup=ctx.setup)
        with ctx.setup_phase("erasure replay data"):
            prepare(ctx, sub, [*people, *sample])
            hand_url = services.clone_database(ctx.admin_url, name, f"{name}_hand")
        try:
            hand_conn = connect(hand_url)
            ctx.log(f"erasure replay: hand-written statements for {len(people):,} people")
            hand_s, hand_rows = hand_written(hand_conn, policy, ledger, ctx.now)
            ctx.log(f"erasure replay: Fides' shape for {len(sample)} people")
            fides_s, fides_rows = fides(hand_conn, policy, sample, ctx.now)
            hand_conn.close()
            conn = connect(db_url)
            checkpoint(conn)
            ctx.log(f"erasure replay: ours for {len(ledger):,} ledger entries")
            with timed() as t:
                outcome = apply_entries(
                    conn, ctx.s3(), policy, ledger, ctx.now - timedelta(hours=1), now=ctx.now, check=False
                )
            conn.close()
        finally:
            services.drop_database(ctx.admin_url, f"{name}_hand")
    read = ledger_read(ctx, policy, ledger[: ctx.sample(1_000, 200)])
    sizes = (customers, len(ledger), len(sample))
    return checks(t.seconds, (hand_s, hand_rows), (fides_s, fides_rows), outcome, sizes, read)


def checks(ours: float, hand, fides, outcome, sizes, read) -> list[Check]:
    """The two figures, with the counts and the notes saying how they were made."""
    (hand_s, hand_rows), (fides_s, fides_rows), (customers, erasures, sampled), (read_s, read_n) = (
        hand,
        fides,
        sizes,
        read,
    )
    ours_rows = sum(
        n for counts in outcome.tables.values() for k, n in counts.items() if k in ("deleted", "anonymised")
    )
    per_record = fides_s / max(1, fides_rows)
    fides_total = per_record * ours_rows
    bound = ratio(fides_total, hand_s)
    counts = {"customers": customers, "erasures": erasures, "records_ours": ours_rows, "records_hand": hand_rows}
    notes = [
        f"a shop of {customers:,} customers, {erasures:,} erasures",
        f"Fides' shape timed on {sampled} people ({fides_rows:,} rows, {per_record * 1000:.2f} ms per row, each "
        f"committed with synchronous_commit = on) and extrapolated to our {ours_rows:,} records",
        f"the bound: the hand-written statements themselves are {bound or 0:.1f}x faster than Fides' shape "
        f"here (a replay within {HAND_RATIO}x of them is {FIDES_SPEEDUP:.0f}x only if this is {FIDES_SPEEDUP * HAND_RATIO:.0f}x)",
        f"ledger read (S3, not in 'ours'): {read_n:,} entries in {read_s:.2f} s, "
        f"{read_s / max(1, read_n) * erasures:.1f} s extrapolated to {erasures:,}",
    ]
    return [
        Check(
            "erasure_replay.vs_hand_written",
            f"Erasure replay ({erasures:,}): database part / hand-written set-based statements",
            ours,
            {"hand_written": hand_s},
            ratio(ours, hand_s),
            "ours/baseline",
            f"<= {HAND_RATIO}x",
            at_most(ratio(ours, hand_s), HAND_RATIO),
            counts,
            notes,
        ),
        Check(
            "erasure_replay.vs_fides",
            f"Erasure replay ({erasures:,}): speed-up over one row per transaction (Fides, extrapolated)",
            ours,
            {"fides_extrapolated": fides_total},
            ratio(fides_total, ours),
            "baseline/ours",
            f">= {FIDES_SPEEDUP:.0f}x",
            at_least(ratio(fides_total, ours), FIDES_SPEEDUP),
            counts,
            notes,
            {"ledger_read_s": read_s, "ledger_read_entries": read_n, "hand_written_vs_fides": bound},
        ),
    ]
