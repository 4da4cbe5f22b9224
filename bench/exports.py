"""ACC-1 / POR-1, one person's export at 1,000,000 customers (#10), in three figures:

1. **The database part** (everything the export asks of PostgreSQL: ``resolve_subject``, every
   store's columns, its rows for both files (read once, replayed from memory when they fit), the
   object list; bench/export_pipeline.py)
   for people with an account and guest orders, against **one hand-written query per table**
   for the same people, alternated on one warm connection; the median of each. The first of each,
   on a new connection and for a person not read before, is reported as the cold-ish figure.
   Both sides must return the same rows (checked first). In bench/export_database.py.
2. **Photos**: the whole export of a person with ``PHOTOS`` photos of 1 MiB, against the object
   store's own speed: plain ``GetObject`` reads of the same objects into nothing, plus one plain
   multipart upload of as many bytes (the same part size and encryption); best of three each.
3. **Memory**: the export of a person with 10 photos and of one with 1,000 (64 KiB each), each
   in a child process measuring its own peak (tracemalloc, and VmHWM): the bench S3 server holds
   the objects, so only the exporting process is measured, as tests/integration/test_export_archive.py does.

The data: bench/export_shop.py, this measurement's own copy of the run's shop template
(bench/shop_template.py: ``bench_<timestamp>_exports``).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import export_pipeline
import export_shop
import services
import shop_template
from export_database import HAND_WRITTEN, PEOPLE, database_part, timed
from harness import Check, Context, analyze_all, at_most, checkpoint, ratio

SHOP = (1_000_000, 10_000)  # the shop template's customers (full, minimum): built beside the data sets
EXPORTS_BUCKET = "governance-exports"  # the policy's object_store.exports_bucket (checked in prepare)
# 1. the database part: bench/export_database.py
PHOTO_BYTES = 1024 * 1024
MEMORY_PHOTO_BYTES = 64 * 1024
PHOTO_RATIO = 1.5
MEMORY_LIMIT = 4 * 1024 * 1024  # see bench/README.md, "Exports (#10)"
CHECK_UP_TO = 100_000  # customers up to which every foreign key of the loaded shop is checked (12 s at 1,000,000)
BENCH_DIR = Path(__file__).resolve().parent

# --- 2. photos at the object store's own speed ------------------------------------------------


def download(s3, keys: list[str], bucket: str) -> int:
    """Plain GetObject of every key, its body read in the export's chunks into nothing."""
    read = 0
    for key in keys:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        for chunk in body.iter_chunks(chunk_size=64 * 1024):
            read += len(chunk)
        body.close()
    return read


def upload(s3, size: int, key: str) -> None:
    """One plain multipart upload of ``size`` bytes from memory, in the export's part size and with
    its encryption: what writing the archive costs the object store, without making it."""
    from governance.exports import PART_SIZE

    part = os.urandom(PART_SIZE)
    created = s3.create_multipart_upload(
        Bucket=EXPORTS_BUCKET, Key=key, ServerSideEncryption="AES256", ContentType="application/zip"
    )
    done = []
    for number, first in enumerate(range(0, size, PART_SIZE), 1):
        body = part[: min(PART_SIZE, size - first)]
        answer = s3.upload_part(
            Bucket=EXPORTS_BUCKET, Key=key, UploadId=created["UploadId"], PartNumber=number, Body=body
        )
        done.append({"ETag": answer["ETag"], "PartNumber": number})
    s3.complete_multipart_upload(
        Bucket=EXPORTS_BUCKET, Key=key, UploadId=created["UploadId"], MultipartUpload={"Parts": done}
    )


def photos(ctx: Context, person: export_shop.Person, count: int, body: bytes) -> list[Check]:
    """Figure 2: the whole export of ``person`` against plain downloads + a plain upload."""
    from governance.person.records import person_objects, snapshot
    from governance.person.subject import resolve_subject

    conn, s3 = ctx.connect(), ctx.s3()
    with snapshot(conn) as cur:
        subject = resolve_subject(cur, ctx.policy, account_id=person.account_id, email=person.email)
        keys = [ref.key for ref in person_objects(cur, ctx.policy, subject)]
    bucket = ctx.policy.object_store.uploads_bucket
    photo_bytes = len(keys) * len(body)
    best: dict[str, float] = {}
    result = None
    for round_ in range(3):
        contenders = [
            ("download", lambda: download(s3, keys, bucket)),
            ("upload", lambda r=round_: upload(s3, photo_bytes, f"bench/plain-{r}.bin")),
            (
                "ours",
                lambda r=round_: export_pipeline.export(
                    conn,
                    s3,
                    ctx.policy,
                    person.account_id,
                    person.email,
                    bucket=EXPORTS_BUCKET,
                    key=f"bench/export-photos-{r}.zip",
                    created_at=ctx.now,
                ),
            ),
        ]
        for name, function in contenders if round_ % 2 == 0 else reversed(contenders):
            seconds, value = timed(function)
            best[name] = min(best.get(name, seconds), seconds)
            if name == "ours":
                result = value
        for written in (f"bench/plain-{round_}.bin", f"bench/export-photos-{round_}.zip"):
            s3.delete_object(Bucket=EXPORTS_BUCKET, Key=written)  # the S3 server holds them in memory
    conn.close()
    exported, counts = result
    digest = hashlib.sha256(body).hexdigest()
    photo_hashes = [h for path, h in exported.manifest.items() if path.startswith("files/")]
    if len(photo_hashes) != count or set(photo_hashes) != {digest} or len(keys) != count:
        raise RuntimeError(f"the photo export holds {len(photo_hashes)} photos of {count}, or not their bytes")
    floor = best["download"] + best["upload"]
    r = ratio(best["ours"], floor)
    mb = photo_bytes / 1e6
    notes = [
        f"{count} photos of {len(body) / 1024 / 1024:.0f} MiB ({mb:.0f} MB); archive {exported.byte_size / 1e6:.1f} MB; "
        f"ours {mb / best['ours']:.0f} MB/s, plain download {mb / best['download']:.0f} MB/s, plain upload "
        f"{mb / best['upload']:.0f} MB/s, download + upload {mb / floor:.0f} MB/s (best of 3 each)",
        f"ours / plain download alone: {best['ours'] / best['download']:.2f}x",
    ]
    return [
        Check(
            "exports.photos_vs_plain_transfer",
            f"Export of {count} photos / plain download + upload",
            best["ours"],
            {"download_plus_upload": floor, "plain_download": best["download"], "plain_upload": best["upload"]},
            r,
            "ours/baseline",
            f"<= {PHOTO_RATIO}",
            at_most(r, PHOTO_RATIO),
            {"photos": count, "photo_bytes": photo_bytes, "archive_bytes": exported.byte_size, "records": counts},
            notes,
        )
    ]


# --- 3. memory flat in the number of photos ---------------------------------------------------

# The child measures itself from just before the export (the library imported, connected, the S3
# client made and used once): tracemalloc's peak of Python allocations, and VmHWM as it ends.
CHILD = r"""
import json, sys, tracemalloc
from datetime import datetime
args = json.loads(sys.argv[1])
import export_pipeline
from governance.db import connect
from governance.objectstore import make_client
from governance.policy import load_policy
from governance.settings import resolve
policy = load_policy()
conn = connect(args["db_url"])
s3 = make_client(resolve(None, args["s3_url"]))
s3.head_bucket(Bucket=args["bucket"])
tracemalloc.start()
base = tracemalloc.get_traced_memory()[0]
result, counts = export_pipeline.export(conn, s3, policy, args["account_id"], args["email"], bucket=args["bucket"],
                                        key=args["key"], created_at=datetime.fromisoformat(args["now"]))
peak = tracemalloc.get_traced_memory()[1] - base
tracemalloc.stop()
conn.close()
hwm_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"peak": peak, "bytes": result.byte_size, "files": result.file_count, "vmhwm_kib": hwm_kib}))
"""


def child(ctx: Context, person: export_shop.Person, key: str) -> dict:
    args = {
        "db_url": ctx.db_url,
        "s3_url": ctx.s3_url,
        "bucket": EXPORTS_BUCKET,
        "key": key,
        "account_id": person.account_id,
        "email": person.email,
        "now": ctx.now.isoformat(),
    }
    env = {**services.proxy_free_env(), "PYTHONPATH": os.pathsep.join([str(BENCH_DIR), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)], env=env, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise RuntimeError(f"export memory child failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory(ctx: Context, small: tuple[export_shop.Person, int], large: tuple[export_shop.Person, int]) -> list[Check]:
    """Figure 3: the peak of an export of few photos and of many, each in a child process."""
    measured = {}
    seconds = {}
    for label, (person, count) in (("small", small), ("large", large)):
        seconds[label], measured[label] = timed(child, ctx, person, f"bench/memory-{count}.zip")
    growth = measured["large"]["peak"] - measured["small"]["peak"]
    grown = measured["large"]["bytes"] / measured["small"]["bytes"]
    per_photo = growth / (large[1] - small[1])
    hwm = {label: m["vmhwm_kib"] / 1024 for label, m in measured.items()}
    notes = [
        f"traced peak {measured['small']['peak'] / 2**20:.2f} MiB with {small[1]} photos, "
        f"{measured['large']['peak'] / 2**20:.2f} MiB with {large[1]} (+{growth / 1024:.0f} KiB, {per_photo:.0f} B "
        f"per photo of {MEMORY_PHOTO_BYTES // 1024} KiB); archive {measured['small']['bytes'] / 2**20:.1f} MiB -> "
        f"{measured['large']['bytes'] / 2**20:.1f} MiB ({grown:.0f}x)",
        f"VmHWM of the child {hwm['small']:.1f} MiB -> {hwm['large']:.1f} MiB (+{hwm['large'] - hwm['small']:.1f} MiB)",
    ]
    return [
        Check(
            "exports.memory_flat_in_photos",
            f"Export memory, {large[1]:,} photos - {small[1]} photos (traced peak)",
            seconds["large"],
            {f"export_{small[1]}_photos": seconds["small"]},
            None,
            "peak_large-peak_small",
            f"< {MEMORY_LIMIT // 2**20} MiB while the archive grows {grown:.0f}x",
            growth < MEMORY_LIMIT,
            {"photos": [small[1], large[1]], "measured": measured},
            notes,
            {
                "ours_display": f"+{growth / 2**20:.2f} MiB",
                "baseline_display": f"{small[1]} photos: {measured['small']['peak'] / 2**20:.2f} MiB",
                "ratio_display": "-",
            },
        )
    ]


# --- the run ----------------------------------------------------------------------------------


def check_stores(ctx: Context) -> None:
    """The data map's person stores are the ones the hand-written baseline and the shop cover."""
    from governance.person.records import person_stores

    unknown = {store.table for _, store in person_stores(ctx.policy)} ^ {"shop.accounts", *HAND_WRITTEN}
    if unknown:
        raise RuntimeError(
            f"the data map's person stores and the hand-written baseline differ on {sorted(unknown)}: write their "
            "query in HAND_WRITTEN (bench/exports.py) and their rows in bench/export_shop.py"
        )
    if ctx.policy.object_store.exports_bucket != EXPORTS_BUCKET:
        raise RuntimeError(
            f"the policy writes exports to {ctx.policy.object_store.exports_bucket}, not {EXPORTS_BUCKET}"
        )


def prepare(ctx: Context, sub: Context, shop: shop_template.ShopCopy) -> dict:
    """The photo people and their objects, the requests, on this measurement's copy of the shop,
    settled (set-up: not timed by any figure)."""
    from governance.db import connect
    from governance.objectstore import ensure_bucket

    customers, rows = shop.customers, shop.rows
    photo_count = ctx.size(100, 10)
    many = max(100, ctx.size(1_000))
    conn = connect(sub.db_url)
    s3 = ctx.s3()
    ensure_bucket(s3, EXPORTS_BUCKET)
    photographer = export_shop.photo_person(customers, 1)
    small, large = export_shop.photo_person(customers, 2), export_shop.photo_person(customers, 3)
    with ctx.setup_phase("exports data: photos"):
        photo = b"\xff\xd8\xff\xe0" + os.urandom(PHOTO_BYTES - 4)
        export_shop.add_photos(sub, conn, s3, photographer, photo_count, photo, "bench-photos")
        thumb = b"\xff\xd8\xff\xe0" + os.urandom(MEMORY_PHOTO_BYTES - 4)
        export_shop.add_photos(sub, conn, s3, small, 10, thumb, "bench-memory-small")
        export_shop.add_photos(sub, conn, s3, large, many, thumb, "bench-memory-large")
    people = export_shop.people(customers, PEOPLE)
    export_shop.open_requests(conn, people, ctx.now)
    export_shop.settle(sub)
    if customers <= CHECK_UP_TO:  # the same arithmetic at every size: checked on the small shops
        with ctx.setup_phase("exports data: check"):
            export_shop.check_consistent(conn)
    with ctx.setup_phase("exports data: checkpoint"):
        analyze_all(conn)
        checkpoint(conn)
    conn.close()
    return {
        "shop": {"customers": customers, "rows": sum(rows.values()), "rows_per_table": rows},
        "people": people,
        "photos": (photographer, photo_count, photo),
        "memory": ((small, 10), (large, many)),
    }


def clean_up(ctx: Context) -> None:
    """Remove what the run put in the bench S3 server (the server holds it in memory)."""
    from governance.objectstore import iter_keys

    s3 = ctx.s3()
    for bucket, prefix in (
        (EXPORTS_BUCKET, "bench/"),
        *(
            (ctx.policy.object_store.uploads_bucket, f"uploads/bench-{label}/")
            for label in ("photos", "memory-small", "memory-large")
        ),
    ):
        keys = list(iter_keys(s3, bucket, prefix))
        for first in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[first : first + 1000]]})


def run(ctx: Context) -> list[Check]:
    check_stores(ctx)
    with shop_template.copy(ctx, "exports", ctx.size(*SHOP)) as shop:
        sub = Context(
            ctx.scale, ctx.admin_url, shop.db_url, shop.name, ctx.s3_url, ctx.now, ctx.policy, setup=ctx.setup
        )
        with ctx.setup_phase("exports data"):
            data = prepare(ctx, sub, shop)
        checks: list[Check] = []
        try:
            ctx.log(f"exports: database part, {len(data['people'])} people")
            checks += database_part(sub, data["people"], data["shop"])
            person, count, photo = data["photos"]
            ctx.log(f"exports: {count} photos against plain transfers")
            checks += photos(sub, person, count, photo)
            ctx.log("exports: memory with few and many photos")
            checks += memory(sub, *data["memory"])
        finally:
            clean_up(ctx)
    return checks
