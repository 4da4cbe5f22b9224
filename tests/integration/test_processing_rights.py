"""Restriction (RES-1), objection (OBJ-1, MKT-1) and withdrawal of consent (CON-1) on a real
PostgreSQL: the processing register rows, the policy's switch_off changes on the person's rows
(newsletter subscriptions under two spellings of the address, cookie preferences) and nobody
else's, the RES-1 decision (a restriction's person hold keeps the person's expired records from the
sweep until it is lifted; a policy choosing otherwise places none), the recipients' notices with no
personal data, evidence with counts only, reruns that add nothing, refusals naming what to fix."""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from governance import requests
from governance.errors import RequestError
from governance.notices import PSEUDONYM_KEY_ENV
from governance.policy import DEFAULT_POLICY_PATH, load_policy, parse_policy
from governance.processing import entries, lift_restriction, switch_off
from governance.requests.handlers import HANDLERS
from governance.sweep import sweep

pytestmark = [pytest.mark.integration]

POLICY = load_policy()
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
EXPIRED = NOW - timedelta(days=400)  # cookie preferences given 13 months ago: overdue under RET-6 (P12M)


def variant(edit) -> object:
    data = copy.deepcopy(yaml.safe_load(DEFAULT_POLICY_PATH.read_text()))
    edit(data)
    return parse_policy(data, "variant.yaml")


def _no_hold_decision(data):
    data["decisions"]["RES-1"] = {"restriction_holds_records": False}


def _newsletter_recipient(data):
    for purpose in data["purposes"]:
        if purpose["id"] == "newsletter":
            purpose["recipients"] = ["software-vendor"]


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "processing-test-key-0123456789abcdef")


@pytest.fixture
def kari(conn):
    """Kari: an account, a newsletter subscription from it and one as a guest under another
    spelling of her address, cookie preferences (analytics and marketing on), given 13 months ago,
    a consent to advertising audiences (TP-1, CON-1) and one to another purpose the policy does not
    name (the switch_off's ``where: {purpose: ...}`` must leave it);
    Ola: the same, all his own, which must not change."""
    people = {}
    with conn.cursor() as cur:
        for who in ("kari", "ola"):
            address = f"{who.title()}.{uuid.uuid4().hex[:8]}@Example.no"
            cur.execute(
                "INSERT INTO shop.accounts (email, password_hash, first_name, created_at) "
                "VALUES (%s, 'x', 'Kari', %s) RETURNING account_id",
                (address, NOW - timedelta(days=800)),
            )
            account = cur.fetchone()[0]
            subscriptions = []
            for account_id, spelling in ((account, address.lower()), (None, f"  {address.upper()} ")):
                cur.execute(
                    "INSERT INTO shop.newsletter_subscriptions (account_id, email, first_name, subscribed_at) "
                    "VALUES (%s, %s, 'Kari', %s) RETURNING subscription_id",
                    (account_id, spelling, NOW - timedelta(days=30)),
                )
                subscriptions.append(cur.fetchone()[0])
            cur.execute(
                "INSERT INTO shop.cookie_preferences (visitor_key, account_id, analytics, marketing, given_at) "
                "VALUES (%s, %s, true, true, %s) RETURNING preference_id",
                (str(uuid.uuid4()), account, EXPIRED),
            )
            preference = cur.fetchone()[0]
            cur.execute(
                "INSERT INTO shop.marketing_consents (account_id, purpose, given_at) "
                "VALUES (%s, 'advertising_audiences', %s), (%s, 'partner_offers', %s) RETURNING consent_id",
                (account, NOW - timedelta(days=100), account, NOW - timedelta(days=100)),
            )
            consents = [row[0] for row in cur.fetchall()]
            people[who] = {
                "email": address,
                "account": account,
                "subscriptions": subscriptions,
                "cookie": preference,
                "consents": consents,
            }
    conn.commit()
    return people


def open_verified(conn, policy, email, kind, purposes=None) -> int:
    request = requests.open_request(
        conn,
        policy,
        kind=kind,
        email=email,
        channel="email",
        opened_by="support",
        purposes=purposes,
        now=NOW - timedelta(days=1),
    )
    requests.verify(
        conn, policy, request.request_id, verified_by="support", method="id_document", now=NOW - timedelta(hours=20)
    )
    return request.request_id


def one(conn, query, params=()):
    with conn.cursor() as cur:
        cur.execute(query, params)
        row = cur.fetchone()
    conn.rollback()
    return row


def subscriptions(conn, person) -> list:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT unsubscribed_at FROM shop.newsletter_subscriptions WHERE subscription_id = ANY(%s) "
            "ORDER BY subscription_id",
            (person["subscriptions"],),
        )
        found = [row[0] for row in cur.fetchall()]
    conn.rollback()
    return found


def cookie(conn, person) -> tuple | None:
    return one(
        conn, "SELECT analytics, marketing FROM shop.cookie_preferences WHERE preference_id = %s", (person["cookie"],)
    )


def consents(conn, person) -> list:
    """withdrawn_at of the person's consents: advertising audiences, then the purpose not in the policy."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT withdrawn_at FROM shop.marketing_consents WHERE consent_id = ANY(%s) ORDER BY consent_id",
            (person["consents"],),
        )
        found = [row[0] for row in cur.fetchall()]
    conn.rollback()
    return found


def register_rows(conn, request_id) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT purpose, effect, account_ids, email_sha256s, starts_at, lifted_at FROM "
            "governance.processing_register WHERE request_id = %s ORDER BY purpose",
            (request_id,),
        )
        found = cur.fetchall()
    conn.rollback()
    return found


def evidence_of(conn, request_id, kind=None) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT kind, counts, details FROM governance.evidence WHERE run_id = %s AND (%s::text IS NULL OR kind = %s) "
            "ORDER BY entry_id",
            (f"request-{request_id}", kind, kind),
        )
        found = cur.fetchall()
    conn.rollback()
    return found


def notices_of(conn, request_id) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT recipient_id, event, row_to_json(o)::text FROM governance.recipient_outbox o "
            "WHERE request_id = %s ORDER BY notice_id",
            (request_id,),
        )
        found = cur.fetchall()
    conn.rollback()
    return found


def holds_of(conn, request_id) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT scope, account_id, email_sha256, lifted_at FROM governance.legal_holds WHERE request_id = %s "
            "ORDER BY hold_id",
            (request_id,),
        )
        found = cur.fetchall()
    conn.rollback()
    return found


def pseudonym(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def assert_untouched(conn, person) -> None:
    assert subscriptions(conn, person) == [None, None]
    assert cookie(conn, person) == (True, True)
    assert consents(conn, person) == [None, None]


def assert_no_personal_data(conn, request_id, person) -> None:
    """Evidence and outbox rows of the request name no address, in any spelling."""
    text = json.dumps([list(map(str, row)) for row in evidence_of(conn, request_id) + notices_of(conn, request_id)])
    for spelling in (person["email"], person["email"].lower(), person["email"].upper()):
        assert spelling not in text


def test_an_objection_without_purposes_stops_the_newsletter_and_marketing_cookies_not_analytics(conn, kari):
    """OBJ-1, MKT-1: no purpose named means every purpose of direct marketing, stopped at once:
    the newsletter, marketing cookies and advertising audiences (TP-1: the consent is withdrawn, the
    advertising partner told, TP-5)."""
    request_id = open_verified(conn, POLICY, kari["kari"]["email"], "objection")
    request = switch_off(conn, POLICY, request_id, now=NOW)

    marketing = ["advertising_audiences", "marketing_cookies", "newsletter"]
    assert marketing == sorted(p.id for p in POLICY.purposes if p.direct_marketing)
    assert request.state == "completed" and request.purposes == marketing
    assert subscriptions(conn, kari["kari"]) == [NOW, NOW]  # both spellings of the address
    assert cookie(conn, kari["kari"]) == (True, False)  # analytics stays: not direct marketing
    assert consents(conn, kari["kari"]) == [NOW, None]  # the other purpose's consent is not this one
    assert_untouched(conn, kari["ola"])
    rows = register_rows(conn, request_id)
    assert [(r[0], r[1]) for r in rows] == [(purpose, "objected") for purpose in marketing]
    assert all(r[2] == [kari["kari"]["account"]] and r[3] == [pseudonym(kari["kari"]["email"])] for r in rows)
    assert all(r[4] == NOW and r[5] is None for r in rows)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT purpose FROM governance.processing_off_at(%s) WHERE account_id = %s",
            (NOW, kari["kari"]["account"]),
        )
        assert {r[0] for r in cur.fetchall()} == set(marketing)
        cur.execute(
            "SELECT count(*) FROM governance.processing_off_at(%s) WHERE account_id = %s", (NOW, kari["ola"]["account"])
        )
        assert cur.fetchone()[0] == 0
    conn.rollback()
    assert request.outcome == {"purposes": 3, "rows_switched_off": 4, "held_rows": 0, "holds_added": 0, "notices": 1}
    [(_, counts, details)] = evidence_of(conn, request_id, "processing_switched_off")
    assert counts["rows"] == 4 and details["purposes"] == marketing
    assert details["rows_by_purpose"] == {
        "newsletter": {"shop.newsletter_subscriptions": 2},
        "marketing_cookies": {"shop.cookie_preferences": 1},
        "advertising_audiences": {"shop.marketing_consents": 1},
    }
    # TP-5: the only recipient the purposes name, about the person's records in its categories
    # (CAT-2, CAT-4), cookie preferences (CAT-6) not among them
    [(recipient, event, row)] = notices_of(conn, request_id)
    assert (recipient, event) == ("advertising-partner", "objection")
    notice = json.loads(row)
    assert notice["tables"] == ["shop.accounts", "shop.marketing_consents", "shop.newsletter_subscriptions"]
    assert notice["record_counts"] == {
        "shop.accounts": 1,
        "shop.marketing_consents": 2,
        "shop.newsletter_subscriptions": 2,
    }
    assert holds_of(conn, request_id) == []  # an objection keeps nothing from the sweep
    assert_no_personal_data(conn, request_id, kari["kari"])


def test_a_rerun_of_a_completed_request_changes_nothing(conn, kari):
    request_id = open_verified(conn, POLICY, kari["kari"]["email"], "objection", ["newsletter"])
    first = switch_off(conn, POLICY, request_id, now=NOW)
    before = (register_rows(conn, request_id), evidence_of(conn, request_id), notices_of(conn, request_id))
    later = NOW + timedelta(hours=1)
    again = HANDLERS["objection"](conn, None, None, POLICY, request_id, now=later)
    assert again == first.outcome
    assert (register_rows(conn, request_id), evidence_of(conn, request_id), notices_of(conn, request_id)) == before
    assert subscriptions(conn, kari["kari"]) == [NOW, NOW]


def test_an_objection_notifies_the_purposes_recipients_only(conn, kari):
    """TP-5 for an objection: the recipients the purposes name, about the person's categories they
    receive; pseudonyms, never the address."""
    policy = variant(_newsletter_recipient)
    request_id = open_verified(conn, policy, kari["kari"]["email"], "objection", ["newsletter"])
    request = switch_off(conn, policy, request_id, now=NOW)
    assert request.outcome["notices"] == 1
    [(recipient, event, row)] = notices_of(conn, request_id)
    assert (recipient, event) == ("software-vendor", "objection")
    notice = json.loads(row)
    # the person's records in the vendor's categories (CAT-2, CAT-3, CAT-4)
    assert notice["tables"] == ["shop.accounts", "shop.marketing_consents", "shop.newsletter_subscriptions"]
    assert notice["record_counts"] == {
        "shop.accounts": 1,
        "shop.marketing_consents": 2,
        "shop.newsletter_subscriptions": 2,
    }
    assert len(notice["subject_pseudonyms"]) >= 1
    assert_no_personal_data(conn, request_id, kari["kari"])
    # a rerun after the commit queues nothing again
    switch_off(conn, policy, request_id, now=NOW + timedelta(minutes=5))
    assert len(notices_of(conn, request_id)) == 1


def test_a_consent_withdrawal_of_analytics_cookies_switches_off_only_that(conn, kari):
    """CON-1: withdrawing one consent leaves the others as they were."""
    request_id = open_verified(conn, POLICY, kari["kari"]["email"], "consent_withdrawal", ["analytics_cookies"])
    request = switch_off(conn, POLICY, request_id, now=NOW)
    assert request.state == "completed" and request.outcome["rows_switched_off"] == 1
    assert cookie(conn, kari["kari"]) == (False, True)
    assert subscriptions(conn, kari["kari"]) == [None, None]
    assert consents(conn, kari["kari"]) == [None, None]
    assert_untouched(conn, kari["ola"])
    assert [(r[0], r[1]) for r in register_rows(conn, request_id)] == [("analytics_cookies", "withdrawn")]
    assert notices_of(conn, request_id) == []  # the purpose names no recipient
    assert_no_personal_data(conn, request_id, kari["kari"])


def test_a_restriction_keeps_the_persons_expired_records_from_the_sweep_until_it_is_lifted(conn, kari):
    """RES-1: the restriction's person hold (decision RES-1) keeps Kari's overdue cookie
    preferences from the sweep while Ola's go; lifting it lets the next sweep remove them."""
    request_id = open_verified(conn, POLICY, kari["kari"]["email"], "restriction")
    request = switch_off(conn, POLICY, request_id, now=NOW)
    assert request.purposes == sorted(p.id for p in POLICY.purposes)
    assert request.purposes == ["advertising_audiences", "analytics_cookies", "marketing_cookies", "newsletter"]
    assert consents(conn, kari["kari"]) == [NOW, None]
    assert request.outcome["holds_added"] == 2  # the account and the address's pseudonym
    assert [(h[0], h[1], h[2], h[3]) for h in holds_of(conn, request_id)] == [
        ("person", kari["kari"]["account"], None, None),
        ("person", None, pseudonym(kari["kari"]["email"]), None),
    ]
    assert {r[1] for r in register_rows(conn, request_id)} == {"restricted"}
    notices = notices_of(conn, request_id)
    assert {event for _, event, _ in notices} == {"restriction"}
    assert {r for r, _, _ in notices} == {"cloud-hosting", "software-vendor", "advertising-partner"}
    assert_no_personal_data(conn, request_id, kari["kari"])

    sweep(conn, None, POLICY, NOW + timedelta(hours=1), f"restricted-{request_id}", ["cookie-preferences"])
    assert cookie(conn, kari["kari"]) == (False, False)  # kept (switched off, not deleted)
    assert cookie(conn, kari["ola"]) is None  # nobody else's is kept

    lifted = lift_restriction(
        conn, POLICY, request_id, by="dpo", reason="accuracy verified", now=NOW + timedelta(days=1)
    )
    assert (lifted.entries, lifted.holds, lifted.notices) == (4, 2, 3)  # an entry per purpose
    assert all(h[3] == NOW + timedelta(days=1) for h in holds_of(conn, request_id))
    assert {e for _, e, _ in notices_of(conn, request_id)} == {"restriction", "restriction_lifted"}
    [(_, counts, details)] = evidence_of(conn, request_id, "restriction_lifted")
    assert counts == {"entries_lifted": 4, "holds_lifted": 2, "notices": 3} and "reason_sha256" in details
    assert_no_personal_data(conn, request_id, kari["kari"])
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM governance.processing_off_at(%s) WHERE request_id = %s",
            (NOW + timedelta(days=2), request_id),
        )
        assert cur.fetchone()[0] == 0
    conn.rollback()

    sweep(conn, None, POLICY, NOW + timedelta(days=2), f"lifted-{request_id}", ["cookie-preferences"])
    assert cookie(conn, kari["kari"]) is None

    with pytest.raises(RequestError, match="already lifted"):
        lift_restriction(conn, POLICY, request_id, by="dpo", now=NOW + timedelta(days=3))


def test_a_policy_choosing_otherwise_places_no_hold(conn, kari):
    """The RES-1 decision is the policy's: restriction_holds_records false lets the sweep go on."""
    policy = variant(_no_hold_decision)
    request_id = open_verified(conn, policy, kari["kari"]["email"], "restriction", ["newsletter"])
    request = switch_off(conn, policy, request_id, now=NOW)
    assert request.outcome["holds_added"] == 0 and holds_of(conn, request_id) == []
    assert subscriptions(conn, kari["kari"]) == [NOW, NOW]
    sweep(conn, None, policy, NOW + timedelta(hours=1), f"unheld-{request_id}", ["cookie-preferences"])
    assert cookie(conn, kari["kari"]) is None


def test_lifting_is_refused_for_what_is_not_a_completed_restriction(conn, kari):
    objection = open_verified(conn, POLICY, kari["kari"]["email"], "objection")
    switch_off(conn, POLICY, objection, now=NOW)
    with pytest.raises(RequestError, match="only a completed restriction can be lifted"):
        lift_restriction(conn, POLICY, objection, by="dpo", now=NOW)
    restriction = open_verified(conn, POLICY, kari["ola"]["email"], "restriction")
    with pytest.raises(RequestError, match="verified restriction"):
        lift_restriction(conn, POLICY, restriction, by="dpo", now=NOW)
    with pytest.raises(RequestError, match="personal data"):
        lift_restriction(conn, POLICY, restriction, by="dpo", reason="asked by ola@example.no", now=NOW)


def test_an_unverified_request_switches_nothing_off(conn, kari):
    request = requests.open_request(
        conn, POLICY, kind="objection", email=kari["kari"]["email"], channel="email", opened_by="support", now=NOW
    )
    with pytest.raises(RequestError, match="not verified"):
        switch_off(conn, POLICY, request.request_id, now=NOW)
    assert subscriptions(conn, kari["kari"]) == [None, None]
    assert register_rows(conn, request.request_id) == []


def test_a_switch_naming_a_missing_column_is_refused_before_anything_starts(conn, kari):
    def misspelt(data):
        for purpose in data["purposes"]:
            if purpose["id"] == "newsletter":
                purpose["switch_off"][0]["set"] = {"unsubscribed_on": "now"}

    policy = variant(misspelt)
    request_id = open_verified(conn, policy, kari["kari"]["email"], "objection", ["newsletter"])
    with pytest.raises(RequestError) as error:
        switch_off(conn, policy, request_id, now=NOW)
    message = str(error.value)
    assert "'newsletter'" in message and "shop.newsletter_subscriptions" in message and "'unsubscribed_on'" in message
    with conn.cursor() as cur:
        assert requests.fetch(cur, request_id).state == "verified"
    conn.rollback()
    assert subscriptions(conn, kari["kari"]) == [None, None] and register_rows(conn, request_id) == []


def test_the_request_register_is_listed_without_identifiers(conn, kari):
    request_id = open_verified(conn, POLICY, kari["kari"]["email"], "objection")
    switch_off(conn, POLICY, request_id, now=NOW)
    with conn.cursor() as cur:
        found = entries(cur, request_id=request_id)
        in_force = entries(cur, in_force_at=NOW)
    conn.rollback()
    assert [(e.purpose, e.accounts, e.pseudonyms, e.status(NOW)) for e in found] == [
        ("advertising_audiences", 1, 1, "in force"),
        ("marketing_cookies", 1, 1, "in force"),
        ("newsletter", 1, 1, "in force"),
    ]
    assert {e.entry_id for e in found} <= {e.entry_id for e in in_force}
    assert "@" not in json.dumps([e.to_dict(NOW) for e in found])


def test_the_cli_shows_lists_and_lifts_without_identifiers(conn, kari, db_url, capsys):
    """``request show`` names the purposes and the register state, ``processing list`` the entries
    in force (counts of identifiers, never one), ``request lift`` lifts; no address anywhere."""
    from governance.cli import main

    at = ["--db-url", db_url, "--now", "2026-11-20T13:00:00Z"]
    request_id = open_verified(conn, POLICY, kari["kari"]["email"], "restriction", ["newsletter"])
    switch_off(conn, POLICY, request_id, now=NOW)
    capsys.readouterr()

    assert main(["request", "show", str(request_id), *at]) == 0
    shown = capsys.readouterr().out
    assert "purposes" in shown and "newsletter" in shown
    assert "register  newsletter: restricted since 2026-11-20T12:00:00Z, in force" in shown
    assert main(["request", "show", str(request_id), "--json", *at]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["purposes"] == ["newsletter"]
    [entry] = data["processing_register"]
    assert (entry["purpose"], entry["effect"], entry["accounts"], entry["pseudonyms"]) == (
        "newsletter",
        "restricted",
        1,
        1,
    )

    assert main(["processing", "list", "--json", *at]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {(e["request_id"], e["purpose"], e["status"]) for e in listed} >= {(request_id, "newsletter", "in force")}
    assert main(["processing", "list", *at]) == 0
    assert f"  {request_id}  " in capsys.readouterr().out

    assert main(["request", "lift", str(request_id), "--by", "dpo", "--reason", "court decided", *at]) == 0
    assert "restriction lifted: 1 register entries, 2 hold(s) lifted" in capsys.readouterr().out
    assert main(["processing", "list", "--json", *at]) == 0
    assert request_id not in {e["request_id"] for e in json.loads(capsys.readouterr().out)}
    assert main(["request", "lift", str(request_id), "--by", "dpo", *at]) == 2
    out, err = capsys.readouterr()
    assert "already lifted" in err
    assert main(["processing", "list", "--all", *at]) == 0
    out += capsys.readouterr().out
    for spelling in (kari["kari"]["email"], kari["kari"]["email"].lower()):
        assert spelling not in out + err + shown


def test_a_value_the_table_refuses_changes_nothing_and_the_rerun_resumes(conn, kari):
    """One transaction: a switch the database refuses (a policy error) leaves no register row and
    no row switched off, the request in progress; with the policy fixed the rerun completes it."""

    def refused_value(data):
        for purpose in data["purposes"]:
            if purpose["id"] == "marketing_cookies":
                purpose["switch_off"][0]["set"] = {"marketing": "not-a-boolean"}

    broken = variant(refused_value)
    request_id = open_verified(conn, broken, kari["kari"]["email"], "objection")
    with pytest.raises(RequestError) as error:
        switch_off(conn, broken, request_id, now=NOW)
    assert "switch_off shop.cookie_preferences (marketing): the table refuses a value" in str(error.value)
    assert "not-a-boolean" not in str(error.value)
    assert_untouched(conn, kari["kari"])  # the newsletter and the consent, switched before, rolled back too
    assert register_rows(conn, request_id) == [] and evidence_of(conn, request_id, "processing_switched_off") == []
    assert notices_of(conn, request_id) == []
    with conn.cursor() as cur:
        assert requests.fetch(cur, request_id).state == "in_progress"
    conn.rollback()

    request = switch_off(conn, POLICY, request_id, now=NOW + timedelta(minutes=10))
    assert request.state == "completed" and cookie(conn, kari["kari"]) == (True, False)
    assert consents(conn, kari["kari"]) == [NOW + timedelta(minutes=10), None]
    assert len(register_rows(conn, request_id)) == 3  # advertising_audiences, marketing_cookies, newsletter
    assert len(evidence_of(conn, request_id, "processing_switched_off")) == 1
