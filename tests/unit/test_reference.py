"""Fixed answers for the plain-Python reference of the rules (governance_dev.reference).

Each test builds a tiny shop by hand and states which records are overdue, by how many seconds,
under which rule: the boundaries of RET-1..RET-6, the per-customer clock of RET-3, what renews
RET-4, latest-expiry-wins for uploads (RET-5a..d, RET-10) and legal holds (RET-8).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml

from governance.policy import DEFAULT_POLICY_PATH, load_policy, parse_policy
from governance.windows import Window
from governance_dev.reference import Snapshot, email_pseudonym, overdue

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
S = timedelta(seconds=1)
DAY = timedelta(days=1)
TWO_YEARS_AGO = NOW - Window.parse("P2Y").relativedelta  # 2024-11-25T12:00Z


@pytest.fixture(scope="module")
def policy():
    return load_policy()


def only(result: dict[str, dict[int, int]]) -> dict[str, dict[int, int]]:
    """The rules with something overdue."""
    return {rule: records for rule, records in result.items() if records}


def account(account_id, deleted_at=None, email=None):
    return {"account_id": account_id, "email": email or f"user{account_id}@example.no", "deleted_at": deleted_at}


def order(order_id, placed_at, account_id=None, email="guest@example.no", anonymised_at=None):
    return {
        "order_id": order_id,
        "account_id": account_id,
        "email": email,
        "placed_at": placed_at,
        "anonymised_at": anonymised_at,
    }


def hold(scope, set_at=NOW - 10 * DAY, **kw):
    row = {
        "scope": scope,
        "rule_id": None,
        "table_name": None,
        "record_key": None,
        "account_id": None,
        "email_sha256": None,
        "set_at": set_at,
        "ends_at": None,
        "lifted_at": None,
    }
    row.update(kw)
    return row


# --- RET-1 -----------------------------------------------------------------------------------


def test_visits_expire_24_hours_after_the_last_activity(policy):
    shop = Snapshot(
        visits=[
            {"visit_id": 1, "last_activity_at": NOW - timedelta(hours=24)},  # at the boundary
            {"visit_id": 2, "last_activity_at": NOW - timedelta(hours=24) + S},  # one second before
            {"visit_id": 3, "last_activity_at": NOW - timedelta(hours=24) - S},  # one second after
            {"visit_id": 4, "last_activity_at": NOW - 30 * DAY},
        ]
    )
    assert only(overdue(shop, policy, NOW)) == {"visit-data": {1: 0, 3: 1, 4: 29 * 86400}}


# --- RET-2 -----------------------------------------------------------------------------------


def test_deleted_account_and_its_data_expire_two_calendar_years_after_deletion(policy):
    deleted = datetime(2024, 2, 29, 12, 0, tzinfo=UTC)
    shop = Snapshot(
        accounts=[account(1, deleted_at=deleted), account(2, deleted_at=None), account(3, deleted_at=deleted + S)],
        calendar_events=[
            {"event_id": 10, "account_id": 1},
            {"event_id": 11, "account_id": 2},
            {"event_id": 12, "account_id": 3},
        ],
        saved_products=[
            {"saved_product_id": 20, "account_id": 1, "saved_at": deleted - DAY},
            {"saved_product_id": 21, "account_id": 2, "saved_at": deleted - DAY},
        ],
    )
    boundary = datetime(2026, 2, 28, 12, 0, tzinfo=UTC)  # 2024-02-29 + P2Y
    assert only(overdue(shop, policy, boundary - S)) == {}
    assert only(overdue(shop, policy, boundary)) == {
        "deleted-accounts": {1: 0},
        "deleted-account-calendar-events": {10: 0},
        "deleted-account-saved-products": {20: 0},
    }
    assert only(overdue(shop, policy, boundary + S)) == {
        "deleted-accounts": {1: 1, 3: 0},
        "deleted-account-calendar-events": {10: 1, 12: 0},
        "deleted-account-saved-products": {20: 1},
    }


# --- RET-3 -----------------------------------------------------------------------------------


def test_order_records_follow_the_customers_last_order(policy):
    shop = Snapshot(
        accounts=[account(1), account(2)],
        orders=[
            # account 1: an old order kept alive by a recent one
            order(1, NOW - 3 * 365 * DAY, account_id=1, email="a@example.no"),
            order(2, NOW - 365 * DAY, account_id=1, email="a@example.no"),
            # account 2: last order exactly two years ago -> both overdue by 0 s
            order(3, TWO_YEARS_AGO - 30 * DAY, account_id=2, email="b@example.no"),
            order(4, TWO_YEARS_AGO, account_id=2, email="b@example.no"),
            # guests: the same person by trimmed, case-insensitive e-mail; the recent order keeps both
            order(5, NOW - 4 * 365 * DAY, email="Kari.Nordmann@Example.NO "),
            order(6, NOW - 100 * DAY, email=" kari.nordmann@example.no"),
            # a guest one second short of the window
            order(7, TWO_YEARS_AGO + S, email="ola@example.no"),
            # a guest order under the e-mail of account 1 is not the account's: a customer of its own
            order(8, TWO_YEARS_AGO - S, email="a@example.no"),
            # already anonymised (RET-8): never selected again
            order(9, NOW - 5 * 365 * DAY, email=None, anonymised_at=NOW - 365 * DAY),
        ],
    )
    assert only(overdue(shop, policy, NOW)) == {"order-records": {3: 0, 4: 0, 8: 1}}


def test_an_anonymised_order_does_not_keep_the_customers_other_orders(policy):
    placed = NOW - 3 * 365 * DAY
    shop = Snapshot(
        orders=[
            order(1, placed, email="x@example.no"),
            order(2, NOW - DAY, email=None, anonymised_at=NOW - DAY),
        ]
    )
    expected = int((NOW - Window.parse("P2Y").expires_at(placed)).total_seconds())
    assert expected == 364 * 86400  # 2023-11-26 + P2Y = 2025-11-26
    assert only(overdue(shop, policy, NOW)) == {"order-records": {1: expected}}


# --- RET-4 -----------------------------------------------------------------------------------


def test_communication_is_renewed_by_people_not_by_bulk_sends(policy):
    old = NOW - 3 * 365 * DAY
    shop = Snapshot(
        contact_messages=[
            {"message_id": 1, "email": "Per@Example.no", "sent_at": old},  # Per: only bulk sends since
            {"message_id": 2, "email": "liv@example.no ", "sent_at": old},  # Liv: opened a newsletter lately
            {"message_id": 3, "email": "eva@example.no", "sent_at": TWO_YEARS_AGO},  # Eva: exactly at the boundary
            {"message_id": 4, "email": "eva@example.no", "sent_at": old},
            {"message_id": 5, "email": "tor@example.no", "sent_at": old},  # Tor: confirmed a sign-up lately
        ],
        newsletter_subscriptions=[
            {
                "subscription_id": 10,
                "email": " per@example.no",
                "account_id": None,
                "subscribed_at": old,
                "confirmed_at": old,
            },
            {
                "subscription_id": 11,
                "email": "LIV@example.no",
                "account_id": None,
                "subscribed_at": old,
                "confirmed_at": None,
            },
            {
                "subscription_id": 12,
                "email": "tor@example.no",
                "account_id": None,
                "subscribed_at": old,
                "confirmed_at": NOW - 10 * DAY,
            },
        ],
        newsletter_events=[
            {"subscription_id": 10, "kind": "send", "occurred_at": NOW - DAY},
            {"subscription_id": 10, "kind": "send", "occurred_at": NOW - 7 * DAY},
            {"subscription_id": 11, "kind": "send", "occurred_at": NOW - DAY},
            {"subscription_id": 11, "kind": "open", "occurred_at": NOW - 2 * DAY},
        ],
    )
    result = only(overdue(shop, policy, NOW))
    per_overdue = int((NOW - (old + Window.parse("P2Y").relativedelta)).total_seconds())
    assert result == {
        "contact-messages": {1: per_overdue, 3: 0, 4: 0},
        "newsletter-subscriptions": {10: per_overdue},
    }


def test_a_click_renews_and_a_reply_to_the_person_renews(policy):
    old = NOW - 3 * 365 * DAY
    shop = Snapshot(
        contact_messages=[
            {"message_id": 1, "email": "a@example.no", "sent_at": old},
            {"message_id": 2, "email": "A@EXAMPLE.NO", "sent_at": NOW - DAY},
        ],  # outbound reply
        newsletter_subscriptions=[
            {
                "subscription_id": 5,
                "email": "b@example.no",
                "account_id": None,
                "subscribed_at": old,
                "confirmed_at": old,
            }
        ],
        newsletter_events=[{"subscription_id": 5, "kind": "click", "occurred_at": TWO_YEARS_AGO + S}],
    )
    assert only(overdue(shop, policy, NOW)) == {}
    assert only(overdue(shop, policy, NOW + S)) == {"newsletter-subscriptions": {5: 0}}


# --- RET-5a..d and RET-10 ----------------------------------------------------------------------


def test_uploads_latest_expiry_wins(policy):
    shop = Snapshot(
        accounts=[account(1), account(2), account(3)],
        orders=[
            order(100, NOW - 100 * DAY, account_id=1, email="a@example.no"),
            order(101, NOW - 60 * DAY, account_id=2, email="b@example.no"),
            order(102, NOW - 200 * DAY, email="guest@example.no"),
            order(103, NOW - 365 * DAY, account_id=3, email="c@example.no"),
        ],
        order_lines=[
            {"order_line_id": 1000, "order_id": 100},
            {"order_line_id": 1001, "order_id": 101},
            {"order_line_id": 1002, "order_id": 102},
        ],
        saved_products=[
            {"saved_product_id": 50, "account_id": 1, "saved_at": NOW - 365 * DAY},
            {"saved_product_id": 51, "account_id": 3, "saved_at": NOW - 3 * 365 * DAY},  # renewed by order 103
            {"saved_product_id": 52, "account_id": 2, "saved_at": NOW - 3 * 365 * DAY},  # order 101 renews it too
        ],
        uploads=[
            {"upload_id": 1, "account_id": 1, "uploaded_at": NOW - 400 * DAY},  # ordered (expired) + saved (not)
            {"upload_id": 2, "account_id": 2, "uploaded_at": NOW - 95 * DAY},  # ordered, at the boundary; RET-5d
            # (expired 5 days ago) loses
            {"upload_id": 3, "account_id": None, "uploaded_at": NOW - 90 * DAY - S},  # guest, 1 s past
            {"upload_id": 4, "account_id": 2, "uploaded_at": NOW - 89 * DAY},  # account, never saved: kept
            {"upload_id": 5, "account_id": 3, "uploaded_at": NOW - 3 * 365 * DAY},  # saved, renewed by order
            {"upload_id": 6, "account_id": None, "uploaded_at": NOW - 300 * DAY},  # guest, in an order: order wins
            {"upload_id": 7, "account_id": 2, "uploaded_at": NOW - 91 * DAY},  # account, never saved: 1 day past
        ],
        order_line_uploads=[
            {"order_line_id": 1000, "upload_id": 1},
            {"order_line_id": 1001, "upload_id": 2},
            {"order_line_id": 1002, "upload_id": 6},
        ],
        saved_product_uploads=[{"saved_product_id": 50, "upload_id": 1}, {"saved_product_id": 51, "upload_id": 5}],
    )
    assert only(overdue(shop, policy, NOW)) == {
        "ordered-uploads": {2: 0, 6: 140 * 86400},
        "guest-uploads": {3: 1},
        "unsaved-account-uploads": {7: 86400},
    }


def test_saved_upload_expires_two_years_after_the_save_without_later_orders(policy):
    saved_at = datetime(2024, 2, 29, 8, 0, tzinfo=UTC)
    shop = Snapshot(
        accounts=[account(1)],
        orders=[order(1, saved_at - DAY, account_id=1, email="a@example.no")],  # before the save: no renewal
        saved_products=[{"saved_product_id": 1, "account_id": 1, "saved_at": saved_at}],
        uploads=[{"upload_id": 9, "account_id": 1, "uploaded_at": saved_at - DAY}],
        saved_product_uploads=[{"saved_product_id": 1, "upload_id": 9}],
    )
    boundary = datetime(2026, 2, 28, 8, 0, tzinfo=UTC)
    assert overdue(shop, policy, boundary - S)["saved-uploads"] == {}
    assert overdue(shop, policy, boundary)["saved-uploads"] == {9: 0}
    assert overdue(shop, policy, boundary + S)["saved-uploads"] == {9: 1}


# --- RET-6 -----------------------------------------------------------------------------------


def test_cookie_preferences_use_the_decision_window(policy):
    given = datetime(2025, 11, 25, 12, 0, tzinfo=UTC)
    shop = Snapshot(
        cookie_preferences=[
            {"preference_id": 1, "account_id": None, "given_at": given},
            {"preference_id": 2, "account_id": None, "given_at": given + S},
        ]
    )
    assert only(overdue(shop, policy, NOW)) == {"cookie-preferences": {1: 0}}

    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    data["decisions"]["RET-6"]["window"] = "P6M"  # a deployment's decision, never code
    shorter = parse_policy(data)
    assert only(overdue(shop, shorter, NOW)) == {
        "cookie-preferences": {
            1: int((NOW - datetime(2026, 5, 25, 12, tzinfo=UTC)).total_seconds()),
            2: int((NOW - datetime(2026, 5, 25, 12, 0, 1, tzinfo=UTC)).total_seconds()),
        },
    }


# --- RET-8: legal holds ---------------------------------------------------------------------


def test_legal_holds_keep_exactly_what_they_name(policy):
    old = NOW - 5 * 365 * DAY
    shop = Snapshot(
        visits=[{"visit_id": i, "last_activity_at": NOW - 2 * DAY} for i in (1, 2)],
        accounts=[account(1, email="held@example.no")],
        orders=[
            order(1, old, account_id=1, email="held@example.no"),  # person hold on the account
            order(2, old, email=" HELD@example.no"),  # person hold by e-mail pseudonym
            order(3, old, email="free@example.no"),  # not held
            order(4, old, email="lifted@example.no"),  # its hold was lifted before now
            order(5, old, email="expired@example.no"),  # its hold ended before now
            order(6, old, email="future@example.no"),  # its hold starts after now
        ],
        cookie_preferences=[{"preference_id": 1, "account_id": None, "given_at": old}],
        legal_holds=[
            hold("record", table_name="shop.visits", record_key="2"),
            hold("person", account_id=1),
            hold("person", email_sha256=email_pseudonym("held@example.no")),
            hold("person", email_sha256=email_pseudonym("lifted@example.no"), lifted_at=NOW - DAY),
            hold("person", email_sha256=email_pseudonym("expired@example.no"), ends_at=NOW),
            hold("person", email_sha256=email_pseudonym("future@example.no"), set_at=NOW + S),
            hold("rule", rule_id="cookie-preferences"),
        ],
    )
    result = only(overdue(shop, policy, NOW))
    assert set(result) == {"visit-data", "order-records"}
    assert set(result["visit-data"]) == {1}
    assert set(result["order-records"]) == {3, 4, 5, 6}


def test_a_hold_on_any_rule_that_applies_keeps_an_upload(policy):
    shop = Snapshot(
        accounts=[account(1)],
        orders=[order(1, NOW - 3 * 365 * DAY, account_id=1, email="a@example.no")],
        order_lines=[{"order_line_id": 1, "order_id": 1}],
        saved_products=[{"saved_product_id": 1, "account_id": 1, "saved_at": NOW - 3 * 365 * DAY}],
        uploads=[
            {"upload_id": 1, "account_id": 1, "uploaded_at": NOW - 3 * 365 * DAY},
            {"upload_id": 2, "account_id": None, "uploaded_at": NOW - 365 * DAY},
        ],
        order_line_uploads=[{"order_line_id": 1, "upload_id": 1}],
        saved_product_uploads=[{"saved_product_id": 1, "upload_id": 1}],
    )
    assert only(overdue(shop, policy, NOW))["saved-uploads"] == {
        1: int((NOW - (NOW - 3 * 365 * DAY + Window.parse("P2Y").relativedelta)).total_seconds())
    }
    held = Snapshot(**{**shop.__dict__, "legal_holds": [hold("rule", rule_id="ordered-uploads")]})
    result = only(overdue(held, policy, NOW))
    assert "saved-uploads" not in result and result["guest-uploads"] == {2: 275 * 86400}


# --- RET-9: the copies a data-subject request makes -------------------------------------------


def request(request_id, state, closed_at=None):
    return {"request_id": request_id, "state": state, "closed_at": closed_at}


def test_an_export_archive_goes_7_days_after_it_was_written(policy):
    """RET-9 (decision RET-9-exports, P7D): the archive outlives its download link by nothing."""
    shop = Snapshot(
        subject_requests=[request(1, "completed", NOW - 20 * DAY)],
        request_exports=[
            {"export_id": 10, "request_id": 1, "created_at": NOW - 7 * DAY},  # at the boundary: expired
            {"export_id": 11, "request_id": 1, "created_at": NOW - 7 * DAY + S},  # one second before: kept
            {"export_id": 12, "request_id": 1, "created_at": NOW - 7 * DAY - S},  # one second past
            {"export_id": 13, "request_id": 1, "created_at": NOW - 30 * DAY},
        ],
    )
    assert only(overdue(shop, policy, NOW)) == {"request-exports": {10: 0, 12: 1, 13: 23 * 86400}}
    assert only(overdue(shop, policy, NOW - S)) == {"request-exports": {12: 0, 13: 23 * 86400 - 1}}


def test_an_answer_address_goes_30_days_after_the_request_closed_and_never_while_it_is_open(policy):
    """RET-9 (decision RET-9-contacts, P30D): closed = completed, refused or withdrawn (REQ-1)."""
    long_ago = NOW - 400 * DAY
    states = ["received", "verified", "in_progress", "completed", "refused", "withdrawn", "completed"]
    closed = [None, None, None, NOW - 30 * DAY, NOW - 30 * DAY - S, NOW - 31 * DAY, NOW - 30 * DAY + S]
    shop = Snapshot(
        subject_requests=[request(n, state, at) for n, (state, at) in enumerate(zip(states, closed, strict=True))],
        request_contacts=[
            {"request_id": n, "reply_to": f"kunde{n}@example.no", "created_at": long_ago} for n in range(len(states))
        ],
    )
    assert only(overdue(shop, policy, NOW)) == {"request-contacts": {3: 0, 4: 1, 5: 86400}}


def test_holds_keep_a_requests_copies(policy):
    """RET-8: a record hold keeps an archive or an address; a person hold keeps the person's answer
    address (theirs, or their account's, typed in any case); the archive has no person column yet."""
    shop = Snapshot(
        accounts=[account(7, email="held@example.no")],
        subject_requests=[request(n, "completed", NOW - 100 * DAY) for n in (1, 2, 3, 4)],
        request_contacts=[
            {"request_id": 1, "reply_to": "record@example.no"},
            {"request_id": 2, "reply_to": " HELD@example.no"},  # the held account's address
            {"request_id": 3, "reply_to": "Guest@Example.no "},  # the held address, typed otherwise
            {"request_id": 4, "reply_to": "free@example.no"},
        ],
        request_exports=[
            {"export_id": 20, "request_id": 1, "created_at": NOW - 100 * DAY},
            {"export_id": 21, "request_id": 2, "created_at": NOW - 100 * DAY},
        ],
        legal_holds=[
            hold("record", table_name="governance.request_contacts", record_key="1"),
            hold("record", table_name="governance.request_exports", record_key="20"),
            hold("person", account_id=7),
            hold("person", email_sha256=email_pseudonym("guest@example.no")),
        ],
    )
    seventy_days = 70 * 86400
    assert only(overdue(shop, policy, NOW)) == {
        "request-contacts": {4: seventy_days},
        "request-exports": {21: 93 * 86400},
    }
    shop.legal_holds.append(hold("rule", rule_id="request-exports"))
    assert only(overdue(shop, policy, NOW)) == {"request-contacts": {4: seventy_days}}
