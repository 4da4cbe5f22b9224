"""The data-subject request ledger (REQ-1; ACC-1, POR-1) on a real PostgreSQL: intake and its
refusals, every transition and every illegal one (refused in Python and, for any other writer, by
the table's trigger), extensions within GDPR art. 12(3), duplicates (also when another writer wins
the race), "no data held", and the evidence each change commits with: one entry per transition,
the chain intact, and no address anywhere in it.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
from psycopg2 import errors

from governance import evidence, requests
from governance.db import connect, transaction
from governance.errors import RequestError, RequestNotFound
from governance.policy import load_policy
from governance.requests.model import KINDS, OPEN_STATES

pytestmark = [pytest.mark.integration]

POLICY = load_policy()
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
ADDRESSES: set[str] = set()  # every address a test used: none may reach the evidence


def address(name: str) -> str:
    value = f"{name}.{uuid.uuid4().hex[:8]}@example.no"
    ADDRESSES.add(value)
    return value


def sha(value: str) -> str:
    return hashlib.sha256(value.strip().lower().encode("utf-8")).hexdigest()


def new_account(conn, email: str | None = None) -> tuple[int, str]:
    email = email or address("kari")
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO shop.accounts (email, password_hash, created_at) VALUES (%s, 'x', %s) RETURNING account_id",
            (email, NOW - timedelta(days=400)),
        )
        (account_id,) = cur.fetchone()
    conn.commit()
    return account_id, email


def guest_order(conn, email: str) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO shop.orders (email, total_amount, placed_at) VALUES (%s, 10, %s)", (email, NOW - timedelta(1))
        )
    conn.commit()


def opened(conn, **kwargs):
    args = {"kind": "access", "channel": "email", "opened_by": "support", "now": NOW} | kwargs
    return requests.open_request(conn, POLICY, **args)


def entries(conn, request_id: int) -> list[evidence.Entry]:
    found = evidence.entries(conn, run_id=f"request-{request_id}")
    conn.rollback()
    return found


def contact_row(conn, request_id: int):
    with conn.cursor() as cur:
        cur.execute(
            "SELECT reply_to, subject_email FROM governance.request_contacts WHERE request_id = %s", (request_id,)
        )
        row = cur.fetchone()
    conn.rollback()
    return row


# --- intake -------------------------------------------------------------------------------------


def test_a_request_by_account_is_due_in_a_month_answered_at_the_accounts_address_and_evidenced(conn):
    account_id, email = new_account(conn)
    received = datetime(2026, 10, 31, 9, 0, tzinfo=UTC)
    request = opened(conn, account_id=account_id, received_at=received)
    assert (request.state, request.kind, request.account_id, request.email_sha256) == (
        "received",
        "access",
        account_id,
        None,
    )
    assert request.subject_found is True
    assert request.due_at == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # 31 October + 1 month
    assert (request.received_at, request.opened_at) == (received, NOW)
    assert contact_row(conn, request.request_id) == (email, None)
    [entry] = entries(conn, request.request_id)
    assert (entry.kind, entry.step, entry.requirements) == ("request_opened", "request_opened", ["REQ-1", "ACC-1"])
    assert entry.details["subject_found"] is True and entry.details["account_id"] == account_id
    assert entry.details["due_at"] == "2026-11-30T09:00:00Z" and entry.counts["accounts_found"] == 1


def test_a_guest_is_found_by_normalised_address_and_kept_as_a_pseudonym(conn):
    email = address("Guest.Person")
    guest_order(conn, f"  {email.upper()} ")
    request = opened(conn, kind="portability", email=email, channel="web_form")
    assert request.subject_found is True
    assert request.email_sha256 == sha(email) and request.account_id is None
    assert contact_row(conn, request.request_id) == (email, email)
    assert entries(conn, request.request_id)[0].requirements == ["REQ-1", "POR-1"]
    shown = json.dumps(request.to_dict(NOW))
    assert email.lower() not in shown.lower() and sha(email) not in shown and sha(email)[:12] in shown


def test_a_subject_nobody_matches_is_recorded_anyway_as_no_data_held(conn):
    reply = address("reply")
    request = opened(conn, email=address("nobody"), reply_to=reply)
    assert request.subject_found is False and request.state == "received"
    assert contact_row(conn, request.request_id)[0] == reply
    assert entries(conn, request.request_id)[0].details["subject_found"] is False


def test_the_answer_address_is_reply_to_first_then_the_subjects_then_the_accounts(conn):
    account_id, own = new_account(conn)
    given, reply = address("given"), address("reply")
    first = opened(conn, kind="erasure", account_id=account_id, email=given, reply_to=reply)
    second = opened(conn, kind="restriction", account_id=account_id, email=given)
    third = opened(conn, kind="objection", account_id=account_id)
    assert [contact_row(conn, r.request_id)[0] for r in (first, second, third)] == [reply, given, own]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"kind": "deletion"}, "unknown kind 'deletion'; give --kind one of: " + ", ".join(KINDS)),
        ({"channel": "fax"}, "unknown channel 'fax'"),
        ({"opened_by": "  "}, "missing who opens the request: give --by"),
        ({"account_id": None}, "needs the subject's account id or e-mail address"),
        ({"received_at": NOW + timedelta(minutes=1)}, "is after now"),
        ({"account_id": 0}, "is not an account id"),
    ],
)
def test_bad_input_is_refused_with_what_to_fix(conn, changes, expected):
    account_id, _ = new_account(conn)
    with pytest.raises(RequestError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        opened(conn, **({"account_id": account_id} | changes))


@pytest.mark.parametrize("flag", ["email", "reply_to"])
def test_a_malformed_address_is_refused_without_echoing_it(conn, flag):
    account_id, _ = new_account(conn)
    bad = "kari.nordmann at example.no"
    with pytest.raises(RequestError) as refused:
        opened(conn, account_id=account_id, **{flag: bad})
    assert "--" + flag.replace("_", "-") in str(refused.value) and "nordmann" not in str(refused.value)


def test_no_address_to_answer_to_asks_for_reply_to(conn):
    with pytest.raises(RequestError, match="give --reply-to ADDRESS"):
        opened(conn, account_id=987_654_321)  # no such account: no address of its own
    request = opened(conn, account_id=987_654_321, reply_to=address("reply"))
    assert request.subject_found is False


def test_a_duplicate_of_an_open_request_is_refused_naming_it_also_through_the_accounts_address(conn):
    account_id, own = new_account(conn)
    first = opened(conn, account_id=account_id)
    for duplicate in ({"account_id": account_id}, {"email": own.upper()}, {"account_id": account_id, "email": own}):
        with pytest.raises(RequestError, match=f"already open: request {first.request_id} \\(received"):
            opened(conn, **duplicate)
    other_kind = opened(conn, kind="portability", account_id=account_id)
    requests.withdraw(conn, POLICY, first.request_id, by="support", now=NOW)
    again = opened(conn, account_id=account_id)  # the first is closed: a new one may be opened
    assert len({first.request_id, other_kind.request_id, again.request_id}) == 3


def test_a_duplicate_another_writer_inserts_meanwhile_is_refused_by_the_unique_index(conn, db_url):
    """The intake's own check cannot see another writer's uncommitted row: the unique index does,
    and the UniqueViolation becomes a RequestError naming the request that won."""
    account_id, _ = new_account(conn)
    other = psycopg2.connect(db_url)
    try:
        with other.cursor() as cur:
            cur.execute(
                "INSERT INTO governance.subject_requests (kind, account_id, channel, opened_by, received_at, "
                "opened_at, due_at) VALUES ('access', %s, 'post', 'other', %s, %s, %s) RETURNING request_id",
                (account_id, NOW, NOW, NOW + timedelta(days=30)),
            )
            (winner,) = cur.fetchone()
        outcome: dict[str, BaseException] = {}

        def intake() -> None:
            second = connect(db_url)
            try:
                opened(second, account_id=account_id)
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                outcome["error"] = exc
            finally:
                second.close()

        thread = threading.Thread(target=intake)
        thread.start()
        thread.join(timeout=1.5)
        assert thread.is_alive(), "the intake should wait on the other writer's row"
        other.commit()
        thread.join(timeout=30)
    finally:
        other.close()
    assert isinstance(outcome.get("error"), RequestError)
    assert f"already open: request {winner} (received" in str(outcome["error"])


# --- transitions --------------------------------------------------------------------------------


def test_the_whole_way_received_verified_in_progress_completed_with_one_entry_each(conn):
    account_id, _ = new_account(conn)
    request = opened(conn, account_id=account_id)
    rid = request.request_id
    verified = requests.verify(conn, POLICY, rid, verified_by="support:anna", method="bankid", now=NOW)
    assert (verified.state, verified.verified_by, verified.verification_method) == (
        "verified",
        "support:anna",
        "bankid",
    )
    assert verified.verified_at == NOW
    later = NOW + timedelta(hours=1)
    started = requests.start(conn, POLICY, rid, now=later)
    assert (started.state, started.started_at) == ("in_progress", later)
    assert requests.start(conn, POLICY, rid, now=later + timedelta(hours=1)) == started  # a rerun resumes
    with transaction(conn) as cur:  # the work's own row and the completion commit together
        cur.execute(
            "INSERT INTO governance.request_exports (request_id, bucket, object_key, created_at, byte_size, sha256, "
            "file_count) VALUES (%s, 'exports', %s, %s, 10, %s, 3)",
            (rid, f"requests/{rid}.zip", later, "0" * 64),
        )
        done = requests.complete(cur, POLICY, rid, outcome={"records": 12, "files": 3}, now=later)
    assert (done.state, done.closed_at, done.outcome) == ("completed", later, {"records": 12, "files": 3})
    with transaction(conn, read_only=True) as cur:
        cur.execute("SELECT count(*) FROM governance.request_exports WHERE request_id = %s", (rid,))
        assert cur.fetchone() == (1,)
    found = entries(conn, rid)
    assert [e.kind for e in found] == ["request_opened", "request_verified", "request_started", "request_completed"]
    assert all(e.requirements == ["REQ-1", "ACC-1"] for e in found)
    assert found[1].details["method"] == "bankid" and found[1].details["from_state"] == "received"
    assert found[3].counts == {"records": 12, "files": 3}
    assert evidence.verify(conn).ok


def test_complete_rolls_back_with_the_callers_transaction(conn):
    account_id, _ = new_account(conn)
    rid = opened(conn, account_id=account_id).request_id
    requests.verify(conn, POLICY, rid, verified_by="support", method="id_document", now=NOW)
    requests.start(conn, POLICY, rid, now=NOW)
    with pytest.raises(RuntimeError), transaction(conn) as cur:
        requests.complete(cur, POLICY, rid, outcome={"records": 1}, now=NOW)
        raise RuntimeError("the export's upload failed")
    with transaction(conn, read_only=True) as cur:
        assert requests.fetch(cur, rid).state == "in_progress"
    assert [e.kind for e in entries(conn, rid)][-1] == "request_started"


def test_refused_and_withdrawn_from_every_open_state(conn):
    for state in OPEN_STATES:
        for close in ("refuse", "withdraw"):
            account_id, _ = new_account(conn)
            rid = opened(conn, account_id=account_id).request_id
            if state != "received":
                requests.verify(conn, POLICY, rid, verified_by="support", method="known_contact", now=NOW)
            if state == "in_progress":
                requests.start(conn, POLICY, rid, now=NOW)
            if close == "refuse":
                done = requests.refuse(conn, POLICY, rid, reason="identity not established", by="dpo", now=NOW)
                assert (done.state, done.refused_reason) == ("refused", "identity not established")
            else:
                done = requests.withdraw(conn, POLICY, rid, by="support", now=NOW)
                assert done.state == "withdrawn"
            assert done.closed_at == NOW
            last = entries(conn, rid)[-1]
            assert (last.kind, last.details["from_state"]) == (f"request_{done.state}", state)
            if close == "refuse":
                assert last.details["reason_sha256"] == hashlib.sha256(b"identity not established").hexdigest()
                assert "identity not established" not in json.dumps(last.details)


def closed_request(conn, state: str) -> int:
    account_id, _ = new_account(conn)
    rid = opened(conn, account_id=account_id).request_id
    if state == "withdrawn":
        requests.withdraw(conn, POLICY, rid, by="support", now=NOW)
        return rid
    if state == "refused":
        requests.refuse(conn, POLICY, rid, reason="manifestly unfounded", by="dpo", now=NOW)
        return rid
    requests.verify(conn, POLICY, rid, verified_by="support", method="id_document", now=NOW)
    requests.start(conn, POLICY, rid, now=NOW)
    with transaction(conn) as cur:
        requests.complete(cur, POLICY, rid, outcome={"records": 0}, now=NOW)
    return rid


ILLEGAL = {
    "verify": lambda conn, rid: requests.verify(conn, POLICY, rid, verified_by="s", method="bankid", now=NOW),
    "extend": lambda conn, rid: requests.extend(conn, POLICY, rid, months=1, reason="complex", now=NOW),
    "refuse": lambda conn, rid: requests.refuse(conn, POLICY, rid, reason="late ask", by="dpo", now=NOW),
    "withdraw": lambda conn, rid: requests.withdraw(conn, POLICY, rid, by="s", now=NOW),
    "start": lambda conn, rid: requests.start(conn, POLICY, rid, now=NOW),
}


@pytest.mark.parametrize("state", ["completed", "refused", "withdrawn"])
def test_a_closed_request_does_not_change(conn, state):
    rid = closed_request(conn, state)
    before = entries(conn, rid)
    for change in ILLEGAL.values():
        with pytest.raises(RequestError, match=f"request {rid} is {state} .*a closed request does not change"):
            change(conn, rid)
    with pytest.raises(RequestError), transaction(conn) as cur:
        requests.complete(cur, POLICY, rid, outcome={}, now=NOW)
    assert entries(conn, rid) == before


def test_illegal_moves_between_open_states_name_what_is_possible(conn):
    account_id, _ = new_account(conn)
    rid = opened(conn, account_id=account_id).request_id
    with pytest.raises(RequestError, match=f"request {rid} is not verified: nothing is disclosed, changed or deleted"):
        requests.start(conn, POLICY, rid, now=NOW)
    with pytest.raises(RequestError, match="is received, not in progress"), transaction(conn) as cur:
        requests.complete(cur, POLICY, rid, outcome={"records": 1}, now=NOW)
    requests.verify(conn, POLICY, rid, verified_by="support", method="signed_in_account", now=NOW)
    with pytest.raises(RequestError, match=r"is verified: only a request that is received can be verified \(from "):
        ILLEGAL["verify"](conn, rid)
    with pytest.raises(RequestError, match="is verified, not in progress"), transaction(conn) as cur:
        requests.complete(cur, POLICY, rid, outcome={"records": 1}, now=NOW)
    requests.start(conn, POLICY, rid, now=NOW)
    with pytest.raises(RequestError, match="counts only"), transaction(conn) as cur:
        requests.complete(cur, POLICY, rid, outcome={"records": "12", "files": -1}, now=NOW)  # type: ignore[dict-item]
    with pytest.raises(RequestError, match="unknown verification method 'passport_copy'"):
        requests.verify(conn, POLICY, rid, verified_by="support", method="passport_copy", now=NOW)
    assert [e.kind for e in entries(conn, rid)] == ["request_opened", "request_verified", "request_started"]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("received", "in_progress"),
        ("received", "completed"),
        ("verified", "completed"),
        ("verified", "received"),
        ("in_progress", "verified"),
        ("completed", "in_progress"),
        ("refused", "received"),
        ("withdrawn", "verified"),
    ],
)
def test_the_trigger_refuses_an_illegal_transition_whoever_writes(conn, before, after):
    account_id, _ = new_account(conn)
    rid = opened(conn, account_id=account_id).request_id
    with conn.cursor() as cur:  # bypass Python: set up the state, then try the move
        cur.execute("ALTER TABLE governance.subject_requests DISABLE TRIGGER subject_request_transition")
        cur.execute(
            "UPDATE governance.subject_requests SET state = %s, verified_at = %s, verified_by = 's', "
            "verification_method = 'bankid', started_at = %s, closed_at = %s, refused_reason = 'r' "
            "WHERE request_id = %s",
            (before, NOW, NOW, NOW if before in ("completed", "refused", "withdrawn") else None, rid),
        )
        cur.execute("ALTER TABLE governance.subject_requests ENABLE TRIGGER subject_request_transition")
        cur.execute("SAVEPOINT move")
        with pytest.raises(errors.CheckViolation, match=f"{before} -> {after} is not a transition"):
            cur.execute(
                "UPDATE governance.subject_requests SET state = %s, closed_at = %s WHERE request_id = %s",
                (after, NOW if after in ("completed", "refused", "withdrawn") else None, rid),
            )
    conn.rollback()


def test_the_trigger_refuses_any_change_to_a_closed_request(conn):
    rid = closed_request(conn, "completed")
    with conn.cursor() as cur, pytest.raises(errors.CheckViolation, match="a closed request does not change"):
        cur.execute(
            "UPDATE governance.subject_requests SET outcome = '{\"records\": 99}' WHERE request_id = %s", (rid,)
        )
    conn.rollback()


# --- extensions ---------------------------------------------------------------------------------


def test_extensions_add_up_to_two_months_from_receipt_and_clear_the_seven_day_mark(conn):
    account_id, _ = new_account(conn)
    received = datetime(2027, 1, 31, 10, tzinfo=UTC)
    now = received + timedelta(days=20)
    request = opened(conn, account_id=account_id, received_at=received, now=now)
    assert request.due_at == datetime(2027, 2, 28, 10, tzinfo=UTC)
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE governance.subject_requests SET due_soon_alerted_at = %s WHERE request_id = %s",
            (now, request.request_id),
        )
    conn.commit()
    one = requests.extend(conn, POLICY, request.request_id, months=1, reason="many systems to search", now=now)
    assert (one.extension_months, one.deadline, one.due_soon_alerted_at) == (
        1,
        datetime(2027, 3, 31, 10, tzinfo=UTC),
        None,
    )
    with pytest.raises(RequestError, match="already extended by 1 month\\(s\\).*give --months 1"):
        requests.extend(conn, POLICY, request.request_id, months=2, reason="more", now=now)
    two = requests.extend(conn, POLICY, request.request_id, months=1, reason="the archive is offline", now=now)
    assert (two.extension_months, two.deadline) == (2, datetime(2027, 4, 30, 10, tzinfo=UTC))
    assert two.extension_reason == "many systems to search; the archive is offline"
    with pytest.raises(RequestError, match="already extended by 2 month"):
        requests.extend(conn, POLICY, request.request_id, months=1, reason="again", now=now)
    found = [e for e in entries(conn, request.request_id) if e.kind == "request_extended"]
    assert [e.step for e in found] == ["request_extended:1", "request_extended:2"]
    assert found[1].details["extended_due_at"] == "2027-04-30T10:00:00Z"
    assert found[1].details["reason_sha256"] == hashlib.sha256(b"the archive is offline").hexdigest()


@pytest.mark.parametrize(
    ("months", "reason", "expected"),
    [
        (3, "complex", "an extension is 1 or 2 further months"),
        (0, "complex", "an extension is 1 or 2 further months"),
        (1, " ", "missing the reason: give --reason"),
        (1, "asked by kari@example.no", "looks like it holds personal data"),
        (1, "call +47 912 34 567", "looks like it holds personal data"),
    ],
)
def test_an_extension_needs_1_or_2_months_and_a_reason_naming_nobody(conn, months, reason, expected):
    account_id, _ = new_account(conn)
    rid = opened(conn, account_id=account_id).request_id
    with pytest.raises(RequestError, match=expected):
        requests.extend(conn, POLICY, rid, months=months, reason=reason, now=NOW)


def test_an_extension_after_the_first_month_is_refused(conn):
    account_id, _ = new_account(conn)
    request = opened(conn, account_id=account_id)
    with pytest.raises(RequestError, match="within one month of receipt"):
        requests.extend(conn, POLICY, request.request_id, months=1, reason="complex", now=request.due_at)


# --- reading ------------------------------------------------------------------------------------


def test_fetch_list_workable_and_contact(conn):
    account_id, own = new_account(conn)
    early = opened(conn, kind="portability", account_id=account_id, received_at=NOW - timedelta(days=10))
    late = opened(conn, kind="portability", email=address("guest"), reply_to=address("r"))
    pending = opened(conn, kind="portability", email=address("pending"), reply_to=address("r"))
    for rid in (late.request_id, early.request_id):
        requests.verify(conn, POLICY, rid, verified_by="support", method="id_document", now=NOW)
    requests.start(conn, POLICY, late.request_id, now=NOW)
    with transaction(conn, read_only=True) as cur:
        assert requests.fetch(cur, early.request_id).state == "verified"
        with pytest.raises(RequestNotFound, match="no request 99999999; see `governance request list`"):
            requests.fetch(cur, 99_999_999)
        ids = requests.workable(cur, ["portability"])
        assert ids.index(early.request_id) < ids.index(late.request_id)  # earliest deadline first
        assert pending.request_id not in ids  # not verified: nothing is done for it
        assert requests.workable(cur, ["rectification"]) == []
        listed = requests.list_requests(cur, states=["received"], kinds=["portability"])
        assert pending.request_id in [r.request_id for r in listed]
        assert {r.state for r in listed} == {"received"}
        assert len(requests.list_requests(cur, limit=2)) == 2
        found = requests.contact(cur, early.request_id)
        assert (found.reply_to, found.subject_email) == (own, None)
        assert own not in repr(found)
        with pytest.raises(RequestNotFound):
            requests.contact(cur, 99_999_999)
    with conn.cursor() as cur:  # the RET-9 sweep removes a closed request's contact
        cur.execute("DELETE FROM governance.request_contacts WHERE request_id = %s", (pending.request_id,))
        with pytest.raises(RequestError, match="has no contact any more"):
            requests.contact(cur, pending.request_id)
    conn.rollback()


def test_no_address_reaches_the_evidence_and_the_chain_is_intact(conn):
    """Runs last in this module: every address used above is absent from every entry."""
    with conn.cursor() as cur:
        cur.execute("SELECT kind, counts::text, details::text, run_id, step FROM governance.evidence")
        rows = cur.fetchall()
    conn.rollback()
    assert any(kind == "request_opened" for kind, *_ in rows)
    text = json.dumps(rows).lower()
    assert ADDRESSES and not [a for a in ADDRESSES if a.lower() in text or a.split("@")[0].lower() in text]
    assert "@" not in text
    assert evidence.verify(conn).ok
