"""The synthetic shop generator without any service: determinism, the spread of ages around every
rule's window (RET-1..RET-6), the fixed boundary cases of RET-10, the upload cap, holds (RET-8).

The oracle is governance_dev.reference: "compliant" records of a rule are those it would report
overdue at a far-future instant but not at ``now``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from governance.policy import load_policy
from governance_dev import reference
from governance_dev.generator import LEAP_DAY_CLOCK, MIN_CUSTOMERS, Generator
from governance_dev.vocabulary import build_pools, jpeg_payload, text_payload

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FAR = timedelta(days=365 * 200)
POLICY = load_policy()
CUSTOMERS = 300


def generate(now=NOW, **kw) -> Generator:
    kw.setdefault("customers", CUSTOMERS)
    kw.setdefault("keep_snapshot", True)
    gen = Generator(POLICY, now, **kw)
    gen.batches_seen = list(gen.batches())
    if gen.snapshot is not None:
        gen.snapshot.legal_holds = [h.as_row() for h in gen.holds]
    return gen


def lines(gen: Generator) -> dict[str, list[str]]:
    merged: dict[str, list[str]] = defaultdict(list)
    for batch in gen.batches_seen:
        for table, rows in batch.lines.items():
            merged[table] += rows
    return merged


@pytest.fixture(scope="module")
def shop() -> Generator:
    return generate()


def test_same_inputs_give_identical_rows_and_another_seed_does_not(shop):
    again = generate()
    assert lines(again) == lines(shop)
    assert [b.objects for b in again.batches_seen] == [b.objects for b in shop.batches_seen]
    other = generate(seed=43)
    assert lines(other)["shop.accounts"] != lines(shop)["shop.accounts"]


def test_every_table_of_the_shop_gets_rows(shop):
    assert all(count > 0 for count in shop.counts.values()), shop.counts
    assert 0.6 < shop.counts["shop.accounts"] / CUSTOMERS < 0.8  # about 70 % of customers have an account


@pytest.mark.parametrize(
    "now",
    [
        NOW,
        datetime(2026, 2, 28, 12, 0, tzinfo=UTC),  # two years after the leap day
        datetime(2025, 3, 1, 0, 0, 0, 123456, tzinfo=UTC),  # an instant with microseconds
        datetime(2028, 2, 29, 0, 0, tzinfo=UTC),  # a leap day itself
    ],
)
def test_every_rule_has_overdue_and_compliant_records(now):
    gen = generate(now)
    overdue_now = reference.overdue(gen.snapshot, POLICY, now)
    overdue_ever = reference.overdue(gen.snapshot, POLICY, now + FAR)
    for rule in POLICY.rules:
        overdue = set(overdue_now[rule.id])
        compliant = set(overdue_ever[rule.id]) - overdue
        assert overdue, f"{rule.id}: nothing overdue at {now}"
        assert compliant, f"{rule.id}: nothing compliant at {now}"


def test_every_rule_has_records_at_and_one_second_either_side_of_its_boundary(shop):
    """RET-10: expired exactly at clock + window; one second earlier kept, one second later overdue by 1 s."""
    overdue_now = reference.overdue(shop.snapshot, POLICY, NOW)
    overdue_ever = reference.overdue(shop.snapshot, POLICY, NOW + FAR)
    far_seconds = int(FAR.total_seconds())
    for rule in POLICY.rules:
        seconds = set(overdue_now[rule.id].values())
        assert 0 in seconds, f"{rule.id}: no record exactly at its boundary"
        assert 1 in seconds, f"{rule.id}: no record one second past its boundary"
        expires_in = {far_seconds - s for s in overdue_ever[rule.id].values()}
        assert 1 in expires_in, f"{rule.id}: no record one second before its boundary"


def test_a_leap_day_clock_expires_on_28_february():
    """RET-10: P2Y after 2024-02-29 is 2026-02-28 (and P12M is 2025-02-28), calendar arithmetic."""
    now = datetime(2026, 2, 28, 12, 0, tzinfo=UTC)
    gen = generate(now)
    result = reference.overdue(gen.snapshot, POLICY, now)
    leap_accounts = [a["account_id"] for a in gen.snapshot.accounts if a["deleted_at"] == LEAP_DAY_CLOCK]
    assert leap_accounts and all(result["deleted-accounts"][a] == 0 for a in leap_accounts)
    leap_cookies = [c["preference_id"] for c in gen.snapshot.cookie_preferences if c["given_at"] == LEAP_DAY_CLOCK]
    assert leap_cookies and all(result["cookie-preferences"][c] == 365 * 86400 for c in leap_cookies)
    one_second_earlier = reference.overdue(gen.snapshot, POLICY, now - timedelta(seconds=1))
    assert not set(leap_accounts) & set(one_second_earlier["deleted-accounts"])


def test_uploads_under_several_rules_the_latest_expiry_wins(shop):
    """RET-5a..d, RET-10: a photo ordered long ago but saved recently is kept; each rule governs some overdue."""
    snap = shop.snapshot
    line_order = {line["order_line_id"]: line["order_id"] for line in snap.order_lines}
    placed = {o["order_id"]: o["placed_at"] for o in snap.orders}
    saved_at = {p["saved_product_id"]: p["saved_at"] for p in snap.saved_products}
    ordered = defaultdict(list)
    for link in snap.order_line_uploads:
        ordered[link["upload_id"]].append(placed[line_order[link["order_line_id"]]])
    saved = defaultdict(list)
    for link in snap.saved_product_uploads:
        saved[link["upload_id"]].append(saved_at[link["saved_product_id"]])
    result = reference.overdue(snap, POLICY, NOW)
    overdue_uploads = set().union(*(result[r] for r in reference.UPLOAD_RULES))
    both = [
        u
        for u in ordered
        if u in saved and max(ordered[u]) < NOW - timedelta(days=60) and max(saved[u]) > NOW - timedelta(days=700)
    ]
    assert both, "no upload ordered more than 60 days ago yet saved less than 2 years ago"
    assert not set(both) & overdue_uploads
    for rule in reference.UPLOAD_RULES:
        assert result[rule], f"{rule} governs no overdue upload"


def test_guest_emails_vary_in_case_and_spaces_and_are_one_customer(shop):
    """RET-3 is per customer: a guest's orders typed differently share the latest order's clock."""
    by_person = defaultdict(list)
    for o in shop.snapshot.orders:
        if o["account_id"] is None and o["email"] is not None:
            by_person[reference.normalise_email(o["email"])].append(o)
    varied = {p: orders for p, orders in by_person.items() if len({o["email"] for o in orders}) > 1}
    assert varied
    assert any(o["email"] != o["email"].strip() for orders in varied.values() for o in orders)
    result = reference.overdue(shop.snapshot, POLICY, NOW)["order-records"]
    for orders in varied.values():  # all of a person's orders are overdue together, or none is
        assert len({o["order_id"] in result for o in orders}) == 1
    assert any(all(o["order_id"] not in result for o in orders) for orders in varied.values())


def test_bulk_sends_alone_do_not_renew_the_newsletter(shop):
    """RET-4/RET-10: a subscription whose last engagement is old is overdue even with recent sends."""
    snap = shop.snapshot
    recent_sends = {
        e["subscription_id"]
        for e in snap.newsletter_events
        if e["kind"] == "send" and e["occurred_at"] > NOW - timedelta(days=365)
    }
    overdue = set(reference.overdue(snap, POLICY, NOW)["newsletter-subscriptions"])
    assert recent_sends & overdue


def test_upload_cap_changes_uploads_only(shop):
    capped = generate(max_uploads=40)
    assert capped.counts["shop.uploads"] == 40
    full, few = lines(shop), lines(capped)
    for table in full:
        if table not in ("shop.uploads", "shop.order_line_uploads", "shop.saved_product_uploads"):
            assert few[table] == full[table], table
    upload_ids = {u["upload_id"] for u in capped.snapshot.uploads}
    links = capped.snapshot.order_line_uploads + capped.snapshot.saved_product_uploads
    assert {link["upload_id"] for link in links} <= upload_ids
    assert sum(len(b.objects) for b in capped.batches_seen) == 40


def test_no_uploads_when_objects_are_off():
    gen = generate(uploads=False)
    assert gen.counts["shop.uploads"] == gen.counts["shop.order_line_uploads"] == 0
    assert not any(b.objects for b in gen.batches_seen)


def test_holds_name_records_and_persons_never_a_rule(shop):
    """RET-8: held records would be overdue; holds not in force at now keep nothing."""
    scopes = {h.scope for h in shop.holds}
    assert scopes == {"record", "person"}
    assert any(h.account_id for h in shop.holds) and any(h.email for h in shop.holds)
    with_holds = reference.overdue(shop.snapshot, POLICY, NOW)
    snap = shop.snapshot
    holds, snap.legal_holds = snap.legal_holds, []
    try:
        without = reference.overdue(snap, POLICY, NOW)
    finally:
        snap.legal_holds = holds
    kept = {rule: set(without[rule]) - set(with_holds[rule]) for rule in without}
    assert sum(len(k) for k in kept.values()) >= 10
    for rule in (
        "order-records",
        "deleted-accounts",
        "contact-messages",
        "newsletter-subscriptions",
        "cookie-preferences",
        "visit-data",
    ):
        assert kept[rule], f"no hold keeps a record of {rule}"
    inactive = [h for h in shop.holds if h.lifted_at or h.ends_at or h.set_at > NOW]
    assert len(inactive) == 4
    for h in inactive:
        assert int(h.record_key) in with_holds["cookie-preferences"]


def test_pools_are_norwegian_deterministic_and_leak_scannable():
    pools = build_pools(42)
    assert pools == build_pools(42)
    assert min(len(n) for n in pools.first_names) >= 4 and min(len(n) for n in pools.last_names) >= 4
    assert len(set(pools.first_names)) > 1000 and len(set(pools.last_names)) > 1000
    assert any(ch in "".join(pools.streets) for ch in "æøå")
    assert all(len(code) == 4 and code.isdigit() for code, _ in pools.places)


def test_every_person_has_an_address_of_their_own(shop):
    emails = [a["email"] for a in shop.snapshot.accounts]
    assert len(emails) == len(set(emails))
    assert all(e.endswith((".com", ".net", ".org")) and "example." in e for e in emails)


def test_object_payloads_are_small_valid_files():
    photo = jpeg_payload(7, 42)
    assert photo[:4] == b"\xff\xd8\xff\xe0" and photo[6:11] == b"JFIF\x00" and photo.endswith(b"\xff\xd9")
    assert 100 < len(photo) < 1000 and photo != jpeg_payload(8, 42) and photo == jpeg_payload(7, 42)
    comment = photo.index(b"\xff\xfe")
    length = int.from_bytes(photo[comment + 2 : comment + 4], "big")
    assert photo[comment + 2 + length : comment + 4 + length] == b"\xff\xdb"  # the next marker follows the comment
    assert text_payload(7, 42).decode("utf-8")


def test_too_few_customers_is_refused():
    with pytest.raises(ValueError, match=f"at least {MIN_CUSTOMERS}"):
        Generator(POLICY, NOW, customers=MIN_CUSTOMERS - 1)
