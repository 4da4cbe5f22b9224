"""CAT-5, purging objects: our sweep's DeleteObjects calls against one DeleteObject per key.

Data: ``objects`` guest uploads (default 20,000), 100 days old (RET-5c: 90 days), each a row in
shop.uploads and a 64-byte object in the uploads bucket on the moto S3 server (over HTTP).
The baseline deletes the same number of keys of the same names from a second bucket, one
DeleteObject request per key, on an evenly spread sample when the count is large (extrapolated,
and said so). Only the S3 calls are timed for the baseline: it pays nothing for the database,
which our sweep does pay, so the ratio is a lower bound.

Requests are counted on the boto3 client itself (every HTTP request sent, retries included).
"""

from __future__ import annotations

import math
import time
from collections import Counter

from builders import build_uploads, object_keys, put_objects
from harness import Check, Context, at_least, ratio
from ours import sweep_rule

RULE = "guest-uploads"
BASELINE_BUCKET = "bench-per-key"


def counting_client(ctx: Context) -> tuple[object, Counter]:
    client = ctx.s3()
    sent: Counter = Counter()

    def count(event_name: str, **_: object) -> None:
        sent[event_name.rsplit(".", 1)[-1]] += 1

    client.meta.events.register("before-send.s3", count)
    return client, sent


def prepare(ctx: Context) -> dict:
    objects = ctx.size(20_000, 1_000)
    sample = min(objects, ctx.sample(2_000, 500))
    conn = ctx.connect()
    s3 = ctx.s3()
    ctx.log(f"objects: loading {objects:,} objects (+ {sample:,} for the per-key baseline)")
    info = build_uploads(ctx, conn, s3, objects)
    conn.close()
    step = max(1, objects // sample)
    info["baseline_keys"] = object_keys(info["prefix"], objects)[::step][:sample]
    with ctx.setup_phase("objects: load the per-key baseline's bucket"):
        put_objects(s3, BASELINE_BUCKET, info["baseline_keys"])
    return info


def run(ctx: Context, info: dict) -> list[Check]:
    objects, keys = info["objects"], info["baseline_keys"]
    notes: list[str] = []

    ctx.log(f"objects: per-key DeleteObject baseline on {len(keys):,} keys")
    s3, sent = counting_client(ctx)
    start = time.perf_counter()
    for key in keys:
        s3.delete_object(Bucket=BASELINE_BUCKET, Key=key)
    t_sample = time.perf_counter() - start
    per_key = t_sample / len(keys) * objects
    extrapolated = len(keys) < objects
    if extrapolated:
        notes.append(
            f"per-key: {len(keys):,} DeleteObject calls in {t_sample:.2f} s "
            f"({t_sample / len(keys) * 1000:.2f} ms/key), extrapolated to {objects:,} keys"
        )

    ctx.log("objects: our sweep")
    s3, sent = counting_client(ctx)
    ours = sweep_rule(ctx, RULE, "objects", s3=s3)
    requests = dict(sent)
    if ours.seconds is not None:
        left = sum(1 for _ in _keys(ctx, info))
        conn = ctx.connect()
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM shop.uploads")
            rows_left = cur.fetchone()[0]
        conn.close()
        if left or rows_left:
            notes.append(f"SWEEP WRONG: {left:,} objects and {rows_left:,} upload rows left")
            ours.seconds = None
    elif ours.error:
        notes.append(ours.error)

    want_calls = math.ceil(objects / 1000)
    calls = requests.get("DeleteObjects", 0)
    single_calls = requests.get("DeleteObject", 0)
    counts = {"objects": objects, "per_key_sample": len(keys), "requests": requests}
    r = ratio(per_key, ours.seconds)
    calls_met = None if ours.seconds is None else (calls == want_calls and single_calls == 0)
    return [
        Check(
            "objects.delete_objects_calls",
            "CAT-5 purge: DeleteObjects calls",
            ours.seconds,
            {},
            None,
            "count",
            f"= ceil({objects:,}/1000) = {want_calls}",
            calls_met,
            counts,
            [f"requests sent by the sweep: {requests}"],
            {"ours_display": f"{calls} calls", "ratio_display": "-", "baseline_display": f"{want_calls} calls"},
        ),
        Check(
            "objects.purge_vs_per_key",
            "CAT-5 purge, speed-up vs one DeleteObject per key",
            ours.seconds,
            {"delete_object_per_key" + ("_extrapolated" if extrapolated else ""): per_key},
            r,
            "baseline/ours",
            ">= 20",
            at_least(r, 20),
            counts,
            notes,
            {"sweep": ours.result},
        ),
    ]


def _keys(ctx: Context, info: dict):
    from governance.objectstore import iter_keys

    return iter_keys(ctx.s3(), info["bucket"], info["prefix"])
