"""The audit's report, message and query text: pure logic, fixed answers (no I/O).

What on-call reads when the audit fails must name each rule over, its count and the oldest
overdue age, say what to do next, and carry no personal data; the JSON for scripts has one
agreed shape.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from governance import errors
from governance.audit import (
    GX_CHECK,
    OBJECT_STORE_CHECK,
    OBJECT_STORE_REQUIREMENTS,
    OBJECT_STORE_RULE,
    AuditError,
    AuditFailed,
    AuditInconsistent,
    AuditReport,
    Counted,
    GxOutcome,
    RuleAudit,
    cross_checked,
    human_duration,
    object_store_rule_id,
    parameter_name,
    sqlalchemy_url,
)
from governance.errors import GovernanceError, UnknownRule
from governance.policy import load_policy

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def report(*rules: RuleAudit) -> AuditReport:
    return AuditReport(run_id="audit-test-1", now=NOW, policy_version="abc", rules=list(rules))


VISITS_OVER = RuleAudit("visit-data", ["RET-1"], overdue=37, oldest_overdue_seconds=86400 + 23 * 3600 + 59, held=2)
ORDERS_CLEAN = RuleAudit("order-records", ["RET-3", "RET-8"], overdue=0, oldest_overdue_seconds=None, held=1)
OBJECTS_OVER = RuleAudit(
    OBJECT_STORE_RULE,
    list(OBJECT_STORE_REQUIREMENTS),
    overdue=1,
    oldest_overdue_seconds=59,
    held=0,
    check=OBJECT_STORE_CHECK,
)


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0, "0s"),
        (42, "42s"),
        (60, "1m"),
        (61, "1m 1s"),
        (3600, "1h"),
        (3661, "1h 1m"),
        (86400, "1d"),
        (86400 + 60, "1d"),
        (86400 + 23 * 3600 + 59 * 60 + 59, "1d 23h"),
        (730 * 86400 + 5 * 3600, "730d 5h"),
        (-90, "-1m 30s"),
    ],
)
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


def test_failure_message_names_each_rule_over_its_count_and_oldest_age():
    message = report(VISITS_OVER, ORDERS_CLEAN, OBJECTS_OVER).failure_message()
    assert "visit-data (RET-1): 37 records overdue, oldest by 1d 23h" in message
    assert (
        f"{OBJECT_STORE_RULE} (CAT-5, RET-5a, RET-5b, RET-5c, RET-5d, RET-9): 1 object overdue, oldest by 59s"
        in message
    )
    assert "order-records" not in message
    assert "38 overdue in 2 rule(s)" in message
    assert "retention sweep" in message and "docs/runbook.md" in message
    assert "2026-11-25T12:00:00Z" in message and "audit-test-1" in message


def test_raise_if_overdue():
    with pytest.raises(AuditFailed) as excinfo:
        report(VISITS_OVER, ORDERS_CLEAN).raise_if_overdue()
    assert "visit-data (RET-1): 37 records overdue" in str(excinfo.value)
    assert excinfo.value.report.overdue_total == 37
    report(ORDERS_CLEAN).raise_if_overdue()  # clean: nothing raised


def test_json_shape_for_scripts():
    data = report(VISITS_OVER, ORDERS_CLEAN).to_json()
    assert data["overdue_total"] == 37
    assert data["rules"] == [
        {"rule": "visit-data", "requirements": ["RET-1"], "overdue": 37, "oldest_overdue_seconds": 169259, "held": 2},
        {
            "rule": "order-records",
            "requirements": ["RET-3", "RET-8"],
            "overdue": 0,
            "oldest_overdue_seconds": None,
            "held": 1,
        },
    ]
    assert data["now"] == "2026-11-25T12:00:00Z" and data["run_id"] == "audit-test-1"


def test_json_round_trip_keeps_what_enforcement_needs():
    original = report(VISITS_OVER, ORDERS_CLEAN, OBJECTS_OVER)
    again = AuditReport.from_json(original.to_json())
    assert again.to_json() == original.to_json()
    assert again.failure_message() == original.failure_message()
    assert again.rule(OBJECT_STORE_RULE).check == OBJECT_STORE_CHECK


def test_every_stores_object_store_check_reads_as_objects_after_a_round_trip():
    """RET-9: the exports bucket has its own check, reported (and rebuilt from an XCom) as objects."""
    exports = RuleAudit(
        object_store_rule_id("governance.request_exports"),
        ["CAT-7", "RET-9", "ACC-1", "POR-1"],
        overdue=2,
        oldest_overdue_seconds=3600,
        held=0,
        check=OBJECT_STORE_CHECK,
    )
    again = AuditReport.from_json(report(exports, VISITS_OVER).to_json())
    assert [r.check for r in again.rules] == [OBJECT_STORE_CHECK, GX_CHECK]
    assert "request-exports-object-store (CAT-7, RET-9, ACC-1, POR-1): 2 objects overdue" in again.failure_message()


def test_table_for_people():
    table = report(VISITS_OVER, ORDERS_CLEAN).format_table()
    lines = table.splitlines()
    assert lines[1].split() == ["rule", "requirements", "overdue", "oldest", "overdue", "held"]
    assert lines[3].split() == ["visit-data", "RET-1", "37", "1d", "23h", "2"]
    assert lines[4].split() == ["order-records", "RET-3,", "RET-8", "0", "-", "1"]
    assert lines[-1] == "OVERDUE: 37 in 1 rule(s)"
    assert report(ORDERS_CLEAN).format_table().splitlines()[-1] == "nothing is past its window"


def test_parameter_names_follow_the_audit_sql_contract():
    assert parameter_name("deleted-account-calendar-events") == "window__deleted_account_calendar_events"
    assert object_store_rule_id("shop.uploads") == OBJECT_STORE_RULE == "uploads-object-store"
    assert object_store_rule_id("governance.request_exports") == "request-exports-object-store"


@pytest.mark.parametrize(
    "given, expected",
    [
        (
            "postgresql://postgres@127.0.0.1:5432/shop",
            "postgresql+psycopg2://postgres@127.0.0.1:5432/shop?options=-c+TimeZone%3DUTC",
        ),
        (
            "host=127.0.0.1 port=5433 user=gov password=s3cr%t dbname=shop",
            "postgresql+psycopg2://gov:s3cr%25t@127.0.0.1:5433/shop?options=-c+TimeZone%3DUTC",
        ),
        (
            "host=/var/run/postgresql port=5432 user=gov dbname=shop",
            "postgresql+psycopg2://gov@/shop?host=%2Fvar%2Frun%2Fpostgresql&options=-c+TimeZone%3DUTC&port=5432",
        ),
        (
            "postgresql://gov@%2Ftmp/shop?sslmode=disable",
            "postgresql+psycopg2://gov@/shop?host=%2Ftmp&options=-c+TimeZone%3DUTC&sslmode=disable",
        ),
    ],
)
def test_sqlalchemy_url_for_gx(given, expected):
    assert sqlalchemy_url(given) == expected


def test_an_unknown_rule_is_named_with_the_rules_the_report_has():
    with pytest.raises(
        UnknownRule, match=r"no rule 'visit-date' in policy of audit audit-test-1; rules: visit-data, order-records"
    ):
        report(VISITS_OVER, ORDERS_CLEAN).rule("visit-date")
    assert report(VISITS_OVER).rule("visit-data") is VISITS_OVER


def test_the_audit_errors_live_in_governance_errors_under_the_one_base():
    assert (AuditError, AuditInconsistent, AuditFailed) == (
        errors.AuditError,
        errors.AuditInconsistent,
        errors.AuditFailed,
    )
    assert issubclass(AuditInconsistent, AuditError) and issubclass(AuditError, GovernanceError)
    assert issubclass(AuditFailed, GovernanceError) and not issubclass(AuditFailed, AuditError)
    assert AuditInconsistent.retryable and not AuditError.retryable  # the data changed: run it again


VISITS = load_policy().rule("visit-data")


@pytest.mark.parametrize(
    "outcome, counted",
    [
        (GxOutcome(success=True, count=0, oldest=None), Counted(0, None, 4)),
        (GxOutcome(success=False, count=3, oldest=90), Counted(3, 120, 0)),  # GX's 200 rows: a lower bound
        (GxOutcome(success=False, count=3, oldest=120), Counted(3, 120, 1)),
    ],
)
def test_gx_and_the_cross_check_agreeing_give_the_rule_result(outcome, counted):
    result = cross_checked(VISITS, outcome, counted)
    assert (result.rule, result.requirements, result.check) == ("visit-data", list(VISITS.requirements), GX_CHECK)
    assert (result.overdue, result.oldest_overdue_seconds, result.held) == counted
    assert result.gx_success is outcome.success


@pytest.mark.parametrize(
    "outcome, counted, message",
    [
        (GxOutcome(False, 4, 120), Counted(3, 120, 0), "GX counted 4 overdue"),
        (GxOutcome(False, 3, 121), Counted(3, 120, 0), r"GX counted 3 overdue \(oldest 121s\)"),
        (GxOutcome(False, 0, 5), Counted(0, None, 0), "GX counted 0 overdue"),
        (GxOutcome(False, 3, None), Counted(3, 120, 0), "GX counted 3 overdue"),
        (GxOutcome(True, 3, 120), Counted(3, 120, 0), "GX success=True with 3 overdue"),
        (GxOutcome(False, 0, None), Counted(0, None, 0), "GX success=False with 0 overdue"),
    ],
)
def test_gx_and_the_cross_check_disagreeing_is_inconsistent(outcome, counted, message):
    with pytest.raises(AuditInconsistent, match=f"rule visit-data: {message}"):
        cross_checked(VISITS, outcome, counted)
