"""The request model (REQ-1): one calendar month to answer (month ends and leap years), at most two
more months, the kinds and the rights they exercise, days left, and nothing personal in a repr or
in the JSON form. The state machine here is the one the SQL trigger enforces, pair by pair."""

from __future__ import annotations

import re
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from governance.requests.model import (
    CLOSED_STATES,
    COLUMNS,
    KIND_REQUIREMENTS,
    KINDS,
    OPEN_STATES,
    TRANSITIONS,
    Contact,
    SubjectRequest,
    due_at,
    extended_due_at,
)
from governance.windows import Window

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "include" / "sql" / "schema" / "040_requests.sql"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (utc(2026, 1, 15, 9, 30), utc(2026, 2, 15, 9, 30)),
        (utc(2027, 1, 31, 23, 59), utc(2027, 2, 28, 23, 59)),  # no 31 February: the month's last day
        (utc(2028, 1, 31, 8), utc(2028, 2, 29, 8)),  # leap year
        (utc(2028, 2, 29, 8), utc(2028, 3, 29, 8)),
        (utc(2026, 3, 31), utc(2026, 4, 30)),
        (utc(2026, 12, 31, 12), utc(2027, 1, 31, 12)),
    ],
)
def test_a_request_is_due_one_calendar_month_after_receipt(received, due):
    assert due_at(received) == due


def test_receipt_in_another_offset_is_counted_in_utc():
    from datetime import timezone

    oslo = timezone(timedelta(hours=1))
    # 1 February 00:30 in Oslo is 31 January 23:30 UTC: due the last day of February.
    assert due_at(datetime(2027, 2, 1, 0, 30, tzinfo=oslo)) == utc(2027, 2, 28, 23, 30)


@pytest.mark.parametrize(
    ("received", "months", "due"),
    [
        (utc(2027, 1, 31), 1, utc(2027, 3, 31)),
        (utc(2027, 1, 31), 2, utc(2027, 4, 30)),  # 3 months from receipt, not 2 from 28 February
        (utc(2028, 11, 30), 2, utc(2029, 2, 28)),
    ],
)
def test_an_extension_counts_further_calendar_months_from_receipt(received, months, due):
    assert extended_due_at(received, months) == due


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_the_deadline_is_the_policy_windows_one_month(received):
    due = due_at(received)
    assert due == Window.parse("P1M").expires_at(received)
    assert timedelta(days=28) <= due - received <= timedelta(days=31)
    assert due.day == min(received.day, due.day) and due.time() == received.time()
    assert extended_due_at(received, 2) > extended_due_at(received, 1) > due


def test_every_kind_cites_req_1_and_a_right_documented_in_requirements():
    text = (ROOT / "docs" / "requirements.md").read_text()
    assert set(KIND_REQUIREMENTS) == set(KINDS)
    for kind, ids in KIND_REQUIREMENTS.items():
        assert ids[0] == "REQ-1" and len(ids) >= 2, kind
        for requirement in ids:
            assert f"| {requirement} |" in text or f"### {requirement}:" in text, (kind, requirement)
    assert KIND_REQUIREMENTS["access"] == ["REQ-1", "ACC-1"]
    assert KIND_REQUIREMENTS["portability"] == ["REQ-1", "POR-1"]


def test_kinds_channels_and_states_are_the_schemas():
    from governance.requests.model import CHANNELS, VERIFICATION_METHODS

    schema = SCHEMA.read_text()
    for value in (*KINDS, *CHANNELS, *VERIFICATION_METHODS, *OPEN_STATES, *CLOSED_STATES):
        assert f"'{value}'" in schema, value


def test_the_state_machine_is_the_triggers():
    body = SCHEMA.read_text().split("CREATE OR REPLACE FUNCTION governance.subject_request_transition()")[1]
    allowed = body.split("NOT IN (", 1)[1].split("THEN", 1)[0]
    pairs = set(re.findall(r"\('(\w+)', '(\w+)'\)", allowed))
    assert pairs == {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert all(not TRANSITIONS[state] for state in CLOSED_STATES)


def sample(**changes) -> SubjectRequest:
    values = dict.fromkeys(COLUMNS)
    values |= {
        "request_id": 7,
        "kind": "access",
        "email_sha256": "ab" * 32,
        "channel": "email",
        "opened_by": "support",
        "received_at": utc(2026, 11, 1),
        "opened_at": utc(2026, 11, 1),
        "due_at": utc(2026, 12, 1),
        "extension_months": 0,
        "state": "received",
        "subject_found": True,
        "outcome": {},
        "purposes": [],
        "choices": {},
    }
    return SubjectRequest(**(values | changes))


def test_the_row_has_one_field_per_column():
    assert COLUMNS == tuple(f.name for f in fields(SubjectRequest))
    schema = SCHEMA.read_text().split("CREATE TABLE IF NOT EXISTS governance.subject_requests (")[1].split(");")[0]
    declared = [
        m.group(1)
        for m in re.finditer(r"^    (\w+)\s+(?:bigserial|text|bigint|timestamptz|integer|boolean|jsonb)", schema, re.M)
    ]
    added = re.findall(
        r"ALTER TABLE governance.subject_requests ADD COLUMN IF NOT EXISTS (\w+)",
        (SCHEMA.parent / "060_processing.sql").read_text(),
    )
    assert (*declared, *added) == COLUMNS


@pytest.mark.parametrize(
    ("now", "left", "late"),
    [
        (utc(2026, 11, 23, 23), 8, 0),  # 7 days and an hour: 8
        (utc(2026, 11, 24), 7, 0),
        (utc(2026, 11, 30, 23), 1, 0),
        (utc(2026, 12, 1), 0, 0),  # at the deadline: late
        (utc(2026, 12, 2, 12), -1, 1),
        (utc(2026, 12, 11), -10, 10),
    ],
)
def test_days_left_round_up_and_days_late_count_whole_days(now, left, late):
    request = sample()
    assert request.days_left(now) == left
    assert request.days_late(now) == late


def test_the_deadline_is_the_extended_one_when_there_is_one():
    assert sample().deadline == utc(2026, 12, 1)
    extended = sample(extended_due_at=utc(2027, 2, 1), extension_months=2, extension_reason="complex")
    assert extended.deadline == utc(2027, 2, 1)
    assert extended.days_left(utc(2026, 12, 1)) == 62


def test_the_json_form_shows_the_pseudonym_prefix_only_and_iso_instants():
    data = sample().to_dict(utc(2026, 11, 24))
    assert "email_sha256" not in data and data["email_sha256_prefix"] == "ab" * 6
    assert data["due_at"] == data["deadline"] == "2026-12-01T00:00:00Z"
    assert data["days_left"] == 7
    assert "ab" * 7 not in str(data)
    assert sample(state="completed", closed_at=utc(2026, 11, 20)).to_dict(utc(2026, 11, 24))["days_left"] is None


def test_a_contact_never_shows_its_addresses():
    contact = Contact(reply_to="kari.nordmann@example.no", subject_email="Kari@Example.no")
    for text in (repr(contact), str(contact), f"{contact!r}", repr([contact])):
        assert "@" not in text and "kari" not in text.lower()
    assert contact.reply_to == "kari.nordmann@example.no"
