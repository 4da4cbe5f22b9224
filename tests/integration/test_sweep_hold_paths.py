"""Holds cannot be bypassed (RET-8): every path that removes a record checks the holds in force.

- An upload left 'purging' by a sweep whose object deletion failed is held afterwards (by a record
  hold, or by a person hold on its owner): the rerun that finishes the 'purging' rows must keep its
  row and its object, and count it as held; settling (plan -> sweep) must not loop on it.
- A person hold by account id keeps the person's contact messages (CAT-4, linked by e-mail only):
  the sweep keeps them, the audit counts them as held, and after the sweep nothing is overdue.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from governance.policy import load_policy
from governance.sweep import ObjectPurgeFailed, plan, sweep, sweep_rule
from tests.integration import sweep_support as s
from tests.integration.test_audit_properties import audit_sql_past

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _failed_purge(conn, s3, run: str) -> tuple[int, int, int]:
    """Two accounts' overdue uploads whose objects are locked: a sweep leaves them 'purging'.
    Returns (account id, locked upload of that account, locked upload of the other account)."""
    s.empty_shop(conn)
    s.create_locked_bucket(s3)
    with conn.cursor() as cur:
        owner = s.account(cur, NOW - timedelta(days=900))
        other = s.account(cur, NOW - timedelta(days=900))
        mine = s.upload(cur, NOW - timedelta(days=400), owner, s3, key="uploads/mine.jpg")
        theirs = s.upload(cur, NOW - timedelta(days=400), other, s3, key="uploads/theirs.jpg")
    conn.commit()
    for key in ("uploads/mine.jpg", "uploads/theirs.jpg"):
        s3.put_object_legal_hold(Bucket=s.BUCKET, Key=key, LegalHold={"Status": "ON"})
    with pytest.raises(ObjectPurgeFailed):
        sweep_rule(conn, s3, load_policy(), "unsaved-account-uploads", NOW, run)
    with conn.cursor() as cur:
        cur.execute("SELECT upload_id, state FROM shop.uploads ORDER BY 1")
        assert cur.fetchall() == [(mine, "purging"), (theirs, "purging")]
    conn.commit()
    return owner, mine, theirs


def _lift_object_locks(s3) -> None:
    for key in ("uploads/mine.jpg", "uploads/theirs.jpg"):
        s3.put_object_legal_hold(Bucket=s.BUCKET, Key=key, LegalHold={"Status": "OFF"})


@pytest.mark.parametrize("hold_by", ["record", "person-account", "person-email"])
def test_a_held_purging_upload_is_not_finished(conn, s3, hold_by):
    owner, mine, theirs = _failed_purge(conn, s3, f"purging-{hold_by}")
    with conn.cursor() as cur:
        if hold_by == "record":
            s.hold(cur, "record", NOW, table_name="shop.uploads", record_key=str(mine))
        elif hold_by == "person-account":
            s.hold(cur, "person", NOW, account_id=owner)
        else:  # by the owner's address: the account store links it to the upload's account
            cur.execute("SELECT governance.email_pseudonym(email) FROM shop.accounts WHERE account_id = %s", (owner,))
            s.hold(cur, "person", NOW, email_sha256=cur.fetchone()[0])
    conn.commit()
    _lift_object_locks(s3)
    policy = load_policy()
    [planned] = plan(conn, policy, NOW, ["unsaved-account-uploads"])
    assert (planned.purging, planned.held) == (1, 1)

    results = sweep(conn, s3, policy, NOW, f"purging-{hold_by}-rerun")  # every rule, then settle
    result = {r.rule: r for r in results}["unsaved-account-uploads"]
    assert (result.deleted, result.held) == (1, 1)
    with conn.cursor() as cur:
        cur.execute("SELECT upload_id, state FROM shop.uploads ORDER BY 1")
        assert cur.fetchall() == [(mine, "purging")]  # kept, still a tombstone for when the hold goes
    conn.commit()
    assert s.object_keys(s3) == {"uploads/mine.jpg"}  # its object too; the other one went

    with conn.cursor() as cur:  # the hold is lifted: the next sweep finishes it
        cur.execute("UPDATE governance.legal_holds SET lifted_at = %s", (NOW,))
    conn.commit()
    sweep_rule(conn, s3, policy, "unsaved-account-uploads", NOW + timedelta(seconds=1), "purging-after-lift")
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM shop.uploads")
        assert cur.fetchone()[0] == 0
    conn.commit()
    assert s.object_keys(s3) == set()


def test_a_rule_hold_keeps_purging_uploads_of_that_rule(conn, s3):
    _, mine, theirs = _failed_purge(conn, s3, "purging-rule")
    with conn.cursor() as cur:
        s.hold(cur, "rule", NOW, rule_id="unsaved-account-uploads")
    conn.commit()
    _lift_object_locks(s3)
    result = sweep_rule(conn, s3, load_policy(), "unsaved-account-uploads", NOW, "purging-rule-rerun")
    assert (result.deleted, result.held) == (0, 2)
    assert s.object_keys(s3) == {"uploads/mine.jpg", "uploads/theirs.jpg"}


def test_a_person_hold_by_account_keeps_their_contact_messages(conn):
    s.empty_shop(conn)
    old = NOW - timedelta(days=3 * 365)
    with conn.cursor() as cur:
        held_account = s.account(cur, NOW - timedelta(days=2000), email="Held.Person@Example.invalid")
        s.account(cur, NOW - timedelta(days=2000), email="free@example.invalid")
        kept = s.message(cur, "  held.person@example.INVALID ", old)  # the same address, normalised
        gone = s.message(cur, "free@example.invalid", old)
        s.hold(cur, "person", NOW, account_id=held_account)
    conn.commit()
    policy = load_policy()
    overdue, held = audit_sql_past(conn, NOW)
    assert (set(overdue["contact-messages"]), set(held["contact-messages"])) == ({gone}, {kept})

    [result] = sweep(conn, None, policy, NOW, "held-messages", ["contact-messages"])
    assert (result.deleted, result.held) == (1, 1)
    with conn.cursor() as cur:
        assert s.exists(cur, "shop.contact_messages", "message_id", kept)
        assert not s.exists(cur, "shop.contact_messages", "message_id", gone)
    conn.rollback()
    overdue, held = audit_sql_past(conn, NOW)
    assert overdue["contact-messages"] == {} and set(held["contact-messages"]) == {kept}


def test_a_person_hold_by_email_keeps_the_accounts_cookie_preferences(conn):
    """The other way: a hold by address keeps records linked to the account only (sweep and audit)."""
    s.empty_shop(conn)
    with conn.cursor() as cur:
        account = s.account(cur, NOW - timedelta(days=2000), email="someone@example.invalid")
        kept = s.cookie(cur, NOW - timedelta(days=3 * 365), account)
        gone = s.cookie(cur, NOW - timedelta(days=3 * 365))
        cur.execute("SELECT governance.email_pseudonym(' SomeOne@example.invalid')")
        s.hold(cur, "person", NOW, email_sha256=cur.fetchone()[0])
    conn.commit()
    overdue, held = audit_sql_past(conn, NOW)
    assert (set(overdue["cookie-preferences"]), set(held["cookie-preferences"])) == ({gone}, {kept})
    [result] = sweep(conn, None, load_policy(), NOW, "held-cookies", ["cookie-preferences"])
    assert (result.deleted, result.held) == (1, 1)
    assert audit_sql_past(conn, NOW)[0]["cookie-preferences"] == {}
