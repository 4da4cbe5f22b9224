"""TP-1, the advertising audience export at 1,000,000 customers (#11): ours (governance.audiences
``export_audience``: one COPY streamed to the object store over HTTP as a multipart upload, the
exclusion counts on a second connection in the same snapshot, the manifest, the file's row and its
evidence) against **one hand-written ``COPY (SELECT ...) TO STDOUT``** with the same exclusions,
written here, into a local buffer. Both must produce the same bytes (checked first). Alternated on
warm connections, ROUNDS times each; the medians.

The shop (its own database, ``bench_<timestamp>_audience``), built with generate_series: accounts,
1 % deleted; 60 % consented to advertising audiences, 1 in 30 of those withdrew in the shop; the
consenting told 20 days ago (1 in 20 only 3 days ago: not yet in); the register: 1 % objected by
account, 1 % by address, 0.5 % restricted.
"""

from __future__ import annotations

import hashlib
import io
import statistics
import time
from datetime import timedelta

import bulk_load
import services
from harness import Check, Context, analyze_all, at_most, checkpoint, ratio

ROUNDS = 3
RATIO = 1.5
PURPOSE = "advertising_audiences"
AUDIENCE = "meta-customers"

# The same audience, written by hand from the schema (010_shop.sql, 060_processing.sql, 070_audiences.sql).
HAND_WRITTEN = """
COPY (
  SELECT encode(sha256(convert_to(lower(btrim(a.email)), 'UTF8')), 'hex') AS email
  FROM shop.accounts a
  JOIN governance.audience_notices n ON n.account_id = a.account_id AND n.audience_id = %(audience)s
                                    AND n.notified_at <= %(told_before)s
  WHERE (a.deleted_at IS NULL OR a.deleted_at > %(now)s)
    AND a.account_id IN (SELECT c.account_id FROM shop.marketing_consents c
                         WHERE c.purpose = %(purpose)s AND c.given_at <= %(now)s
                           AND (c.withdrawn_at IS NULL OR c.withdrawn_at > %(now)s))
    AND a.account_id NOT IN (SELECT o.account_id FROM governance.processing_off_at(%(now)s) o
                             WHERE o.purpose = %(purpose)s AND o.account_id IS NOT NULL)
    AND encode(sha256(convert_to(lower(btrim(a.email)), 'UTF8')), 'hex') NOT IN (
        SELECT o.email_sha256 FROM governance.processing_off_at(%(now)s) o
        WHERE o.purpose = %(purpose)s AND o.email_sha256 IS NOT NULL)
  ORDER BY 1
) TO STDOUT WITH (FORMAT csv, HEADER true)
"""


TABLES = ["shop.accounts", "shop.marketing_consents", "governance.audience_notices"]
_BUILD = [
    "INSERT INTO shop.accounts (email, password_hash, created_at, deleted_at) "
    "SELECT 'Customer' || i || '@Example.no', 'x', %(t)s - interval '400 days', "
    "CASE WHEN i %% 100 = 0 THEN %(t)s - interval '30 days' END FROM generate_series(1, %(n)s) i",
    "INSERT INTO shop.marketing_consents (account_id, purpose, given_at, withdrawn_at) "
    "SELECT account_id, %(p)s, %(t)s - interval '60 days', "
    "CASE WHEN account_id %% 30 = 7 THEN %(t)s - interval '10 days' END "
    "FROM shop.accounts WHERE account_id %% 5 < 3",
    "INSERT INTO governance.audience_notices (account_id, audience_id, notified_at, run_id) "
    "SELECT account_id, %(a)s, %(t)s - CASE WHEN account_id %% 20 = 1 THEN interval '3 days' "
    "ELSE interval '20 days' END, 'bench' FROM shop.marketing_consents WHERE withdrawn_at IS NULL",
]


def build(ctx: Context, conn, db_url: str, customers: int) -> None:
    """Accounts, consents, notices (bench/bulk_load.py: the indexes built after them) and register
    rows, set-based."""
    from governance import requests

    now = ctx.now
    params = {"t": now, "n": customers, "p": PURPOSE, "a": AUDIENCE}
    bulk_load.load(ctx, db_url, TABLES, [(statement, params) for statement in _BUILD], "audience data")
    for kind, effect, pick, by in (
        ("objection", "objected", 11, "account"),
        ("objection", "objected", 13, "address"),
        ("restriction", "restricted", 17, "account"),
    ):
        request = requests.open_request(
            conn,
            ctx.policy,
            kind=kind,
            email=f"bench-{pick}@example.no",
            channel="email",
            opened_by="bench",
            purposes=[PURPOSE],
            now=now - timedelta(days=2),
        )
        per = 100 if effect == "objected" else 200
        column = "account_ids" if by == "account" else "email_sha256s"
        value = "array_agg(account_id)" if by == "account" else "array_agg(governance.email_pseudonym(email))"
        with conn.cursor() as cur:
            cur.execute(
                f"INSERT INTO governance.processing_register (request_id, purpose, effect, {column}, starts_at) "  # noqa: S608 - names from this file
                f"SELECT %s, %s, %s, {value}, %s FROM shop.accounts WHERE account_id %% {per} = {pick}",
                (request.request_id, PURPOSE, effect, now - timedelta(days=1)),
            )
        conn.commit()


def hand_written(conn, params: dict) -> bytes:
    out = io.BytesIO()
    with conn.cursor() as cur:
        cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cur.copy_expert(cur.mogrify(HAND_WRITTEN, params).decode(), out)
    conn.rollback()
    return out.getvalue()


def run(ctx: Context) -> list[Check]:
    from governance.audiences import export_audience
    from governance.audiences.selection import parameters
    from governance.db import apply_schema, connect
    from governance.objectstore import ensure_bucket

    audience = ctx.policy.audience(AUDIENCE)
    customers = ctx.size(1_000_000, 10_000)
    with services.scratch_database(ctx.admin_url, suffix="audience") as (db_url, _):
        conn, counts_conn, plain = connect(db_url), connect(db_url), connect(db_url)
        s3 = ctx.s3()
        with ctx.setup_phase("audience data"):
            apply_schema(conn, ctx.policy)
            build(ctx, conn, db_url, customers)
            analyze_all(conn)
            ensure_bucket(s3, audience.drop.bucket)
            checkpoint(conn)
        ours_s: list[float] = []
        base_s: list[float] = []
        result = None
        for i in range(ROUNDS):
            now = ctx.now + timedelta(seconds=i)
            start = time.perf_counter()
            body = hand_written(plain, parameters(audience, audience.purpose, now))
            base_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            result = export_audience(conn, s3, ctx.policy, audience, now=now, counts_conn=counts_conn)
            ours_s.append(time.perf_counter() - start)
            if result.sha256 != hashlib.sha256(body).hexdigest():
                raise AssertionError("the audience file differs from the hand-written COPY's output")
        start = time.perf_counter()  # the counts after the file, on the one connection: what the second saves
        export_audience(conn, s3, ctx.policy, audience, now=ctx.now + timedelta(seconds=ROUNDS))
        one_connection = time.perf_counter() - start
        for c in (conn, counts_conn, plain):
            c.close()
        _clean(s3, audience.drop.bucket)
    ours, base = statistics.median(ours_s), statistics.median(base_s)
    r = ratio(ours, base)
    assert result is not None
    return [
        Check(
            name="audience.export_vs_copy",
            title=f"TP-1 audience export, {customers:,} customers, to S3 over HTTP",
            ours_s=ours,
            baseline_s={"hand-written COPY to a local buffer": base},
            ratio=r,
            ratio_kind="ours/baseline",
            target=f"<= {RATIO}x",
            met=at_most(r, RATIO),
            counts={"persons": result.persons, "bytes": result.byte_size, **result.excluded},
            notes=[
                f"median of {ROUNDS}, alternated; same bytes checked each round",
                f"with the counts on the same connection after the file (no second connection): {one_connection:.2f} s",
            ],
        )
    ]


def _clean(s3, bucket: str) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
