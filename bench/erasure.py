"""ERA-1, the erasure of one person at 1,000,000 customers (#11): the database part under 1 s.

The shop is bench/export_shop.py's (every store of the data map realistically large), this
measurement's own copy of the run's shop template (bench/shop_template.py). ``PEOPLE`` measured people (an account, orders of their
own and a guest order by address under another spelling, order lines, uploads both ways, a saved
product, newsletter and calendar events, contact messages, cookie preferences) each get an
erasure request, opened and verified (not timed); their uploads get objects with two versions
each in the versioned uploads bucket. Each erasure is then timed as ``answer_erasure`` runs it:

- **erase** (``erase_person``): the person resolved, the records recorded, every store's batches;
- **check** (``verify_erasure``): the independent per-request check on indexed person-column paths;
- **completion** (``complete_erasure``): the check's evidence and the request's completion;
- **objects**: the time spent inside S3 calls during the erase and the check (every version and
  delete marker purged, then listed), taken out of the two figures above (botocore's
  ``before-call`` / ``after-call`` events).

The database part is erase + check + completion without the object part; the target is under
1 s for the slowest person. The whole-table scan the per-request check no longer does is the
retention audit's rights check ``erased_persons_left.sql``: it is timed once over the shop after
the erasures, for every erased person at once (information, no target).
"""

from __future__ import annotations

import statistics
import threading
import time
from datetime import timedelta

import export_shop
import shop_template
from harness import Check, Context, analyze_all, at_most, checkpoint

SHOP = (1_000_000, 10_000)  # the shop template's customers (full, minimum): built beside the data sets
PEOPLE = 5
TARGET_SECONDS = 1.0
VERSIONS = 2  # versions of each of a measured person's objects


class S3Clock:
    """Wall seconds during which at least one S3 API call of one client was in flight (botocore's
    before-call / after-call). The purge lists versions on several threads at once: summing each
    call's own time would count the overlaps again (and could exceed the erase's wall time)."""

    def __init__(self, s3) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._lock = threading.Lock()
        self._in_flight = 0
        self._started = 0.0
        s3.meta.events.register("before-call.s3", self._before)
        s3.meta.events.register("after-call.s3", self._after)

    def _before(self, **_: object) -> None:
        with self._lock:
            if self._in_flight == 0:
                self._started = time.perf_counter()
            self._in_flight += 1

    def _after(self, **_: object) -> None:
        with self._lock:
            self._in_flight -= 1
            self.calls += 1
            if self._in_flight == 0:
                self.seconds += time.perf_counter() - self._started

    def lap(self) -> float:
        with self._lock:
            seconds, self.seconds = self.seconds, 0.0
        return seconds


def prepare(ctx: Context, sub: Context, shop: shop_template.ShopCopy) -> dict:
    """The measured people's requests and their objects, on this measurement's copy of the shop
    (set-up: not timed by a figure)."""
    from governance import requests
    from governance.db import connect
    from governance.objectstore import ensure_bucket

    customers, rows = shop.customers, shop.rows
    conn = connect(sub.db_url)
    people = export_shop.people(customers, PEOPLE)
    s3 = ctx.s3()
    bucket = ctx.policy.object_store.uploads_bucket
    ensure_bucket(s3, bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    requests_of = {}
    with ctx.setup_phase("erasure data: requests and objects"):
        for person in people:
            opened = requests.open_request(
                conn,
                ctx.policy,
                kind="erasure",
                email=person.email,
                account_id=person.account_id,
                reply_to=None,
                channel="email",
                opened_by="bench",
                now=ctx.now,
            )
            requests.verify(conn, ctx.policy, opened.request_id, verified_by="bench", method="id_document", now=ctx.now)
            requests_of[person.customer] = opened.request_id
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT bucket, object_key FROM shop.uploads WHERE upload_id BETWEEN 2 * %s AND 2 * %s + 1",
                    (person.customer, person.customer),
                )
                for b, key in cur.fetchall():
                    for v in range(VERSIONS):
                        s3.put_object(Bucket=b, Key=key, Body=f"bench {v}".encode())
            conn.rollback()
    with ctx.setup_phase("erasure data: checkpoint"):
        analyze_all(conn)
        checkpoint(conn)
    conn.close()
    return {"customers": customers, "rows": sum(rows.values()), "people": people, "requests": requests_of}


def erase_one(ctx: Context, conn, s3, clock: S3Clock, request_id: int) -> dict[str, float]:
    """One erasure as ``answer_erasure`` runs it, each step timed; S3's share taken out."""
    from governance import requests
    from governance.erasure import complete_erasure, erase_person, verify_erasure

    now = ctx.now + timedelta(minutes=1)
    requests.start(conn, ctx.policy, request_id, now=now)
    clock.lap()
    t0 = time.perf_counter()
    outcome = erase_person(conn, s3, ctx.policy, request_id, now=now)
    t1 = time.perf_counter()
    erase_objects = clock.lap()
    check = verify_erasure(conn, s3, ctx.policy, request_id, now=now)
    t2 = time.perf_counter()
    check_objects = clock.lap()
    complete_erasure(conn, ctx.policy, check, outcome, now=now)
    t3 = time.perf_counter()
    if not check.ok or outcome.total("object_versions_deleted") == 0:
        raise RuntimeError(f"erasure of request {request_id}: check ok={check.ok}, objects purged none")
    return {
        "erase": t1 - t0 - erase_objects,
        "check": t2 - t1 - check_objects,
        "completion": t3 - t2,
        "objects": erase_objects + check_objects,
        "records": float(sum(n for k, n in outcome.flat().items() if k.endswith((".deleted", ".anonymised")))),
    }


def rights_scan(ctx: Context, sub: Context) -> tuple[float, int]:
    """The audit's rights check erased_persons_left.sql over the whole shop, once: (seconds, findings)."""
    from governance.audit.predicates import audit_parameters
    from governance.audit.rendering import render_markers
    from governance.audit.rights import load_checks

    check = next(c for c in load_checks() if c.id == "erased-persons-left")
    conn = sub.connect()
    try:
        with conn.cursor() as cur:
            text = cur.mogrify(
                render_markers(cur, ctx.policy, check.file, check.text),
                audit_parameters(ctx.policy, ctx.now + timedelta(hours=1)),
            ).decode()
            t0 = time.perf_counter()
            cur.execute(f"SELECT count(*) FROM ({text}) AS found")  # noqa: S608 - our own rendered check
            found = int(cur.fetchone()[0])
            seconds = time.perf_counter() - t0
        conn.rollback()
    finally:
        conn.close()
    return seconds, found


def run(ctx: Context) -> list[Check]:
    with shop_template.copy(ctx, "erasure", ctx.size(*SHOP)) as shop:
        sub = Context(
            ctx.scale, ctx.admin_url, shop.db_url, shop.name, ctx.s3_url, ctx.now, ctx.policy, setup=ctx.setup
        )
        with ctx.setup_phase("erasure data"):
            data = prepare(ctx, sub, shop)
        conn, s3 = sub.connect(), ctx.s3()
        clock = S3Clock(s3)
        ctx.log(f"erasure: {len(data['people'])} people, one at a time")
        runs = [erase_one(ctx, conn, s3, clock, data["requests"][p.customer]) for p in data["people"]]
        conn.close()
        scan_seconds, scan_found = rights_scan(ctx, sub)
    return [_check(data, runs, scan_seconds, scan_found)]


def _check(data: dict, runs: list[dict[str, float]], scan_seconds: float, scan_found: int) -> Check:
    database = [r["erase"] + r["check"] + r["completion"] for r in runs]
    slowest = max(database)
    median = {k: statistics.median(r[k] for r in runs) for k in ("erase", "check", "completion", "objects")}
    notes = [
        f"{len(runs)} people at {data['customers']:,} customers ({data['rows']:,} rows), each "
        f"{statistics.median(r['records'] for r in runs):.0f} records erased or anonymised; median erase "
        f"{median['erase'] * 1000:.0f} ms, check {median['check'] * 1000:.0f} ms, completion "
        f"{median['completion'] * 1000:.0f} ms; objects (S3 calls, {VERSIONS} versions per upload) "
        f"{median['objects'] * 1000:.0f} ms",
        f"database part per person: {', '.join(f'{s * 1000:.0f}' for s in database)} ms (the first on a cold cache)",
        f"the audit's rights check erased_persons_left.sql over the whole shop, every erased person at once: "
        f"{scan_seconds:.1f} s ({scan_found} findings)",
    ]
    return Check(
        "erasure.one_person_database_part",
        f"Erasure of one person at {data['customers']:,} customers, database part (slowest of {len(runs)})",
        slowest,
        {},
        None,
        "-",
        f"< {TARGET_SECONDS:.0f} s",
        at_most(slowest, TARGET_SECONDS),
        {"people": len(runs), "runs": runs, "audit_rights_scan_s": scan_seconds, "audit_rights_findings": scan_found},
        notes,
        {"baseline_display": f"objects {median['objects'] * 1000:.0f} ms (median)", "ratio_display": "-"},
    )
