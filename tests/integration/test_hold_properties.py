"""Property (RET-8, RET-9): over random small shops, random holds and a random crash point, a rerun of
the full sweep (rules, finishing 'purging' uploads, settling) never removes or anonymises a held record,
removes exactly what the plain-Python reference says is due, and records no evidence twice.

One example: a shop (``test_sweep_properties.shops``) is loaded with some of its holds; a sweep of
run R is crashed at a drawn point —
- ``failed-purge``: some uploads' objects are under an S3 legal hold (object lock), so their purge
  fails and their rows stay 'purging';
- ``between-batches``: batch size 1, and the N-th batch transaction never starts (the process died);
- ``after-tombstone``: the same, at the N-th batch that follows a committed tombstone (objects gone,
  rows still 'purging');
- ``none``: the sweep completes —
then the other holds are placed (they may name 'purging' rows), the object locks lifted, and run R is
swept again once or twice. The oracle is ``governance_dev.reference`` on the shop as the crash left it
(read back from the database), with every hold.
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from psycopg2.extras import RealDictCursor

from governance.db import connect
from governance.errors import SweepFailed
from governance.objectstore import make_client
from governance.settings import resolve
from governance.sweep import sweep
from governance.sweep.runner import BatchRunner
from governance_dev import reference
from tests.integration import sweep_support as s
from tests.integration.test_sweep_crash import TABLE_OF
from tests.integration.test_sweep_properties import (
    EXECUTED_AT,
    INSERT_ORDER,
    NOW,
    POLICY,
    TABLES,
    Shop,
    accounts_with_held_dependents,
    ids,
    load,
    shops,
)

RUNS = itertools.count(1)
HOLD_COLUMNS = ("rule_id", "table_name", "record_key", "account_id", "email_sha256", "lifted_at", "ends_at")
CRASHES = ["none", "failed-purge", "failed-purge", "between-batches", "after-tombstone", "after-tombstone"]


class Crash(Exception):
    """The simulated death of the sweep process (not a GovernanceError: nothing catches it)."""


@st.composite
def scenarios(draw) -> dict[str, Any]:
    shop = draw(shops())
    holds = shop.rows["legal_holds"]
    later = [h for h in holds if draw(st.booleans())]  # placed after the crash
    crash = draw(st.sampled_from(CRASHES))
    aimed = draw(st.integers(0 if crash in ("none", "between-batches") else 1, 2)) if shop.rows["uploads"] else 0
    for i in range(aimed):  # and holds aimed at uploads, which a crash may leave 'purging'
        hold = upload_hold(draw, shop, 100 + i)
        holds.append(hold)
        later.append(hold)
    uploads = [u["upload_id"] for u in shop.rows["uploads"]]
    locked = [u for u in uploads if draw(st.booleans())] if crash == "failed-purge" else []
    return {
        "shop": shop,
        "later": later,
        "crash": crash,
        "locked": locked,
        "at_batch": draw(st.integers(1, 3 if crash == "after-tombstone" else 12)),
        "reruns": draw(st.integers(1, 2)),
    }


def upload_hold(draw, shop: Shop, hold_id: int) -> dict[str, Any]:
    """A hold in force on an upload: by record, by its owner's account id or e-mail, or by its rule."""
    upload = draw(st.sampled_from(shop.rows["uploads"]))
    owner = next((a for a in shop.rows["accounts"] if a["account_id"] == upload["account_id"]), None)
    kind = draw(st.sampled_from(["record", "account", "email", "rule"] if owner else ["record", "rule"]))
    hold = dict.fromkeys(HOLD_COLUMNS)
    hold |= {"hold_id": hold_id, "scope": "person" if kind in ("account", "email") else kind, "set_at": NOW}
    if kind == "record":
        hold |= {"table_name": "shop.uploads", "record_key": str(upload["upload_id"])}
    elif kind == "account":
        hold["account_id"] = owner["account_id"]
    elif kind == "email":
        hold["email_sha256"] = reference.email_pseudonym(owner["email"])
    else:
        hold["rule_id"] = draw(st.sampled_from(reference.UPLOAD_RULES))
    return hold


def pinned(crash: str, target: dict[str, Any]) -> dict[str, Any]:
    """Two long-overdue uploads of one account, a hold placed after the crash: always tried first."""
    shop = Shop()
    old = NOW - timedelta(days=500)
    email = "ane@example.invalid"
    shop.rows["accounts"].append({"account_id": 1, "email": email, "created_at": old, "deleted_at": None})
    shop.rows["uploads"] += [{"upload_id": i, "account_id": 1, "uploaded_at": old} for i in (1, 2)]
    hold = dict.fromkeys(HOLD_COLUMNS)
    hold |= {"hold_id": 1, "set_at": NOW, **target}
    shop.rows["legal_holds"].append(hold)
    locked = [1, 2] if crash == "failed-purge" else []
    return {"shop": shop, "later": [hold], "crash": crash, "locked": locked, "at_batch": 1, "reruns": 2}


@pytest.fixture(scope="module")
def services(db_url, s3_endpoint):
    requests.post(f"{s3_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    client = make_client(resolve(None, s3_endpoint))
    s.create_locked_bucket(client)
    conn = connect(db_url)
    yield conn, client
    conn.close()


def set_locks(s3, keys: list[str], status: str) -> None:
    for key in keys:
        s3.put_object_legal_hold(Bucket=s.BUCKET, Key=key, LegalHold={"Status": status})


def empty_bucket(s3) -> None:
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=s.BUCKET):
        for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
            if "ETag" in v:  # a version, not a delete marker: its lock goes first
                s3.put_object_legal_hold(
                    Bucket=s.BUCKET, Key=v["Key"], VersionId=v["VersionId"], LegalHold={"Status": "OFF"}
                )
            s3.delete_object(Bucket=s.BUCKET, Key=v["Key"], VersionId=v["VersionId"])


@contextmanager
def crash_at(kind: str, n: int):
    """Kill the sweep (raise ``Crash``) before the n-th batch transaction, counting every batch
    (``between-batches``) or only those right after a committed tombstone (``after-tombstone``)."""
    if kind not in ("between-batches", "after-tombstone"):
        yield
        return
    real = BatchRunner.run
    seen = {"n": 0, "tombstone": False}

    def run(self, step, *args, **kwargs):
        counts = seen["tombstone"] or kind == "between-batches"
        seen["n"] += counts
        seen["tombstone"] = step.endswith("/tombstone")
        if counts and seen["n"] == n:
            raise Crash(step)
        return real(self, step, *args, **kwargs)

    BatchRunner.run = run
    try:
        yield
    finally:
        BatchRunner.run = real


def snapshot(conn) -> reference.Snapshot:
    """The shop and the holds as they are in the database now (for the oracle)."""
    rows = {}
    with conn.cursor(cursor_factory=RealDictCursor) as cur:
        for table in INSERT_ORDER:
            cur.execute(f"SELECT * FROM {'governance' if table == 'legal_holds' else 'shop'}.{table}")
            rows[table] = [dict(row) for row in cur.fetchall()]
    conn.rollback()
    return reference.Snapshot(**rows)


def run_evidence(conn, run_id: str) -> tuple[int, dict[str, int]]:
    """(entries of the run, rows deleted or anonymised per table by the run's batch evidence)."""
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM governance.evidence WHERE run_id = %s", (run_id,))
        entries = cur.fetchone()[0]
        totals = s.evidence_totals(cur, run_id)
    conn.rollback()
    done: dict[str, int] = {}
    for rule, counts in totals.items():
        table = TABLE_OF.get(rule, "shop.orders")
        done[table] = done.get(table, 0) + counts.get("deleted", 0) + counts.get("anonymised", 0)
    return entries, done


def crash(conn, s3, case: dict[str, Any], run_id: str) -> None:
    """Load the shop with its early holds and sweep until the drawn crash point."""
    shop: Shop = case["shop"]
    early = Shop(rows={**shop.rows, "legal_holds": [h for h in shop.rows["legal_holds"] if h not in case["later"]]})
    empty_bucket(s3)
    load(conn, early)
    keys = [f"uploads/{u}.jpg" for u in case["locked"]]
    for key in keys:
        s3.put_object(Bucket=s.BUCKET, Key=key, Body=b"jpeg")
    set_locks(s3, keys, "ON")
    size = 1 if case["crash"] in ("between-batches", "after-tombstone") else 10_000
    try:
        with crash_at(case["crash"], case["at_batch"]):
            sweep(conn, s3, POLICY, NOW, run_id, batch_size=size)
    except (Crash, SweepFailed) as exc:
        conn.rollback()
        event(f"crash: {type(exc).__name__}")
    set_locks(s3, keys, "OFF")


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(case=scenarios())
@example(case=pinned("after-tombstone", {"scope": "record", "table_name": "shop.uploads", "record_key": "1"}))
@example(
    case=pinned("failed-purge", {"scope": "person", "email_sha256": reference.email_pseudonym("ane@example.invalid")})
)
def test_reruns_after_a_crash_never_remove_a_held_record_nor_record_twice(services, case):
    conn, s3 = services
    run_id = f"hold-property-{next(RUNS)}"
    crash(conn, s3, case, run_id)
    with conn.cursor() as cur:
        for hold in case["later"]:
            columns = {**{"reason": "test", "set_by": "test"}, **hold}
            cur.execute(
                f"INSERT INTO governance.legal_holds ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})",
                list(columns.values()),
            )
        cur.execute("SELECT upload_id FROM shop.uploads WHERE state = 'purging'")
        purging = {r[0] for r in cur.fetchall()}
    conn.commit()
    event(f"crash {case['crash']}: {'some' if purging else 'no'} 'purging' uploads")

    state = snapshot(conn)  # the oracle: what is due now, with and without the holds
    due = reference.overdue(state, POLICY, NOW, holds_also_at=EXECUTED_AT)
    unheld = reference.overdue(reference.Snapshot(**{**vars(state), "legal_holds": []}), POLICY, NOW)
    blocked = accounts_with_held_dependents(Shop(rows=vars(state)), due)
    before, (_, done_before) = ids(conn), run_evidence(conn, run_id)
    rows_before = {t: len(before[t]) for t in TABLES} | {"anonymised": len(before["anonymised"])}

    sweep(conn, s3, POLICY, NOW, run_id)  # the rerun: resume 'purging' rows, every rule, settle
    entries, done = run_evidence(conn, run_id)
    after = ids(conn)
    removed = {table: before[table] - after[table] for table in TABLES}
    anonymised = after["anonymised"] - before["anonymised"]
    held = {rule: set(unheld[rule]) - set(due[rule]) for rule in unheld}
    event(f"due records held: {'some' if any(held.values()) else 'none'}")

    # RET-8 on every path: no due-but-held record went (nor a held 'purging' upload, nor its object)
    for rule, keys in held.items():
        table = TABLE_OF.get(rule, "shop.orders")
        assert not keys & (anonymised if table == "shop.orders" else removed[table]), (rule, keys)
    held_purging = purging & set().union(*(held[r] for r in reference.UPLOAD_RULES))
    assert held_purging <= after["shop.uploads"]
    assert {f"uploads/{u}.jpg" for u in held_purging & set(case["locked"])} <= s.object_keys(s3)
    # and exactly what is due and not held went (RET-1..RET-6, RET-9: the 'purging' rows too)
    assert removed["shop.accounts"] == set(due["deleted-accounts"]) - blocked
    assert removed["shop.uploads"] == set().union(*(due[r] for r in reference.UPLOAD_RULES))
    for rule in ("visit-data", "contact-messages", "newsletter-subscriptions", "cookie-preferences"):
        assert removed[TABLE_OF[rule]] == set(due[rule]), rule
    assert removed["shop.orders"] == set() and anonymised == set(due["order-records"])
    # the evidence counts each removal once over the crash and the reruns
    rows_after = {t: len(after[t]) for t in TABLES} | {"anonymised": len(after["anonymised"])}
    for table in TABLES:
        gone = rows_before[table] - rows_after[table]
        if table == "shop.orders":
            gone = rows_after["anonymised"] - rows_before["anonymised"]
        assert done.get(table, 0) - done_before.get(table, 0) == gone, table

    for _ in range(case["reruns"] - 1):  # a further rerun of the run: no change, no new evidence
        sweep(conn, s3, POLICY, NOW, run_id)
        assert ids(conn) == after
        assert run_evidence(conn, run_id)[0] == entries
