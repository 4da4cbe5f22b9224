"""Pure logic of the sweep: stage order, lock keys, the index bound of a window, how a clock is
declared, result arithmetic, the strategy and action registries. Fixed answers, and a property for the bound (RET-10 calendar arithmetic)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from governance.policy import DEFAULT_POLICY_PATH, PolicyError, load_policy, parse_policy
from governance.sweep import RuleResult, sweep_stages
from governance.sweep.selection import index_bound
from governance.sweep.target import lock_key
from governance.windows import Window


def policy_with_after(changes: dict[str, list[str]]):
    data = copy.deepcopy(yaml.safe_load(DEFAULT_POLICY_PATH.read_text()))
    for rule in data["rules"]:
        if rule["id"] in changes:
            rule["after"] = changes[rule["id"]]
    return parse_policy(data, "test.yaml")


def test_stages_put_deleted_accounts_after_its_dependents():
    stages = sweep_stages(load_policy())
    assert stages[1] == ["deleted-accounts"]
    assert {"deleted-account-calendar-events", "deleted-account-saved-products"} <= set(stages[0])
    assert len(stages) == 2 and sum(map(len, stages)) == 14
    assert stages[0][0] == "visit-data"  # policy order within a stage


def test_stages_follow_chains():
    policy = policy_with_after({"cookie-preferences": ["deleted-accounts"], "visit-data": ["cookie-preferences"]})
    stages = sweep_stages(policy)
    assert stages[1:] == [["deleted-accounts"], ["cookie-preferences"], ["visit-data"]]


def test_a_cycle_of_after_is_a_policy_error_naming_the_rules():
    with pytest.raises(PolicyError) as error:  # refused by the policy model, at load
        policy_with_after({"deleted-account-calendar-events": ["deleted-accounts"]})
    message = str(error.value)
    assert "test.yaml" in message and "field 'after'" in message
    assert "deleted-account-calendar-events -> deleted-accounts -> deleted-account-calendar-events" in message


def test_lock_keys_are_stable_and_32_bit():
    assert lock_key("visit-data") == lock_key("visit-data")
    assert lock_key("visit-data") == -963632176  # first 4 bytes of sha256("visit-data"), signed
    keys = {lock_key(r.id) for r in load_policy().rules}
    assert len(keys) == 14 and all(-(2**31) <= k < 2**31 for k in keys)


NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)


def test_index_bound_fixed_answers():
    assert index_bound(NOW, Window.parse("PT24H")) == NOW - timedelta(hours=24)  # exact for fixed windows
    assert index_bound(NOW, Window.parse("P90D")) == NOW - timedelta(days=90)
    # months clamp the day: 2026-02-28 + P1M = 2026-03-28 expires before 03-31 though > 03-31 - P1M
    assert index_bound(NOW, Window.parse("P1M")) == datetime(2026, 3, 4, 12, tzinfo=UTC)


@settings(max_examples=300)
@given(
    clock=st.datetimes(min_value=datetime(2019, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)),
    now=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC)),
    window=st.sampled_from(["PT24H", "P60D", "P90D", "P12M", "P2Y", "P1M", "P1Y2M3DT4H", "P1W"]),
)
def test_every_expired_clock_is_within_the_index_bound(clock, now, window):
    """The bound only helps the planner: it must never leave out a record that has expired."""
    w = Window.parse(window)
    if w.has_expired(clock, now):
        assert clock <= index_bound(now, w)


ORDERS_VIEW = {"view": "governance_clocks.ret_3_orders", "sql": "clocks/ret_3_orders.sql"}


def policy_with_clock(clock: dict):
    data = copy.deepcopy(yaml.safe_load(DEFAULT_POLICY_PATH.read_text()))
    next(rule for rule in data["rules"] if rule["id"] == "visit-data")["clock"] = clock
    return parse_policy(data, "test.yaml")


@pytest.mark.parametrize(
    "clock, problem",
    [
        ({"column": "last_activity_at"}, None),
        (ORDERS_VIEW, None),
        ({}, "a clock needs"),
        ({"column": "last_activity_at", **ORDERS_VIEW}, "not both"),
        ({"view": ORDERS_VIEW["view"]}, "a clock view needs 'sql'"),
        ({"sql": ORDERS_VIEW["sql"]}, "needs 'view'"),
        ({"column": "last_activity_at", "sql": ORDERS_VIEW["sql"]}, "not both"),
        ({"column": "Last Activity"}, "not a plain lower-case column name"),
        ({"column": "last_activity_at; DROP TABLE x"}, "not a plain lower-case column name"),
    ],
)
def test_a_clock_is_declared_as_a_column_or_as_a_view_with_its_sql(clock, problem):
    """The strategy follows from the policy, never from a view's SQL text: exactly one of the two."""
    if problem is None:
        assert policy_with_clock(clock).rule("visit-data").clock.column == clock.get("column")
        return
    with pytest.raises(PolicyError) as error:
        policy_with_clock(clock)
    message = str(error.value)
    assert "test.yaml" in message and "visit-data" in message and problem in message


def test_column_clocks_have_no_sql_file_to_apply():
    policy = load_policy()
    assert policy.rule("visit-data").clock.column == "last_activity_at"
    assert policy.rule("cookie-preferences").clock.column == "given_at"
    files = policy.clock_sql_files()
    assert files and all(f.startswith("clocks/") for f in files)
    assert "clocks/ret_1_visits.sql" not in files and "clocks/ret_6_cookie_preferences.sql" not in files


def test_results_add_up_and_keep_the_agreed_fields():
    a = RuleResult("r", ["RET-1"], "delete", deleted=3, batches=2, seconds=1.0, max_batch_seconds=0.2, held=1)
    b = RuleResult(
        "r", ["RET-1"], "delete", deleted=2, batches=1, seconds=0.5, max_batch_seconds=0.4, held=0, strategy="work"
    )
    m = a.merged(b)
    assert (m.deleted, m.batches, m.seconds, m.max_batch_seconds, m.held, m.strategy) == (5, 3, 1.5, 0.4, 0, "work")
    agreed = {
        "rule",
        "requirements",
        "action",
        "deleted",
        "anonymised",
        "objects_purged",
        "partitions_dropped",
        "batches",
        "seconds",
        "max_batch_seconds",
        "skipped_locked",
    }
    assert agreed <= set(m.to_dict())


def test_the_registries_name_the_valid_choices():
    from governance.errors import GovernanceError, UnknownChoice
    from governance.sweep.actions import action_named
    from governance.sweep.strategies import strategy_named

    assert strategy_named("blocks").name == "blocks" and action_named("anonymise").name == "anonymise"
    with pytest.raises(UnknownChoice) as error:
        strategy_named("rows")
    assert str(error.value) == "no sweep strategy 'rows'; valid: blocks, kept, partitions, work"
    with pytest.raises(GovernanceError, match="no sweep action 'shred'; valid: anonymise, delete, purge_objects"):
        action_named("shred")


def test_results_tally_batch_counts_by_their_evidence_keys():
    r = RuleResult("r", ["RET-5a"], "purge_objects")
    r.add_counts({"tombstoned": 3})
    r.add_counts({"deleted": 2, "objects_deleted": 5, "object_errors": 1})
    r.add_counts({"rows_estimated": 7, "partitions_dropped": 1})
    assert (r.tombstoned, r.deleted, r.objects_purged, r.object_errors) == (3, 2, 5, 1)
    assert (r.rows_estimated, r.partitions_dropped, r.records_changed) == (7, 1, 6)


def test_the_batch_retry_policy_backs_off_then_gives_up(monkeypatch):
    """Transient PostgreSQL errors: 3 retries after 0.2, 0.4, 0.8 s, then the caller's error."""
    import psycopg2.errors

    from governance.errors import BatchFailed
    from governance.retry import BATCH_RETRIES, retry_transient

    slept: list[float] = []
    monkeypatch.setattr("time.sleep", slept.append)
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise psycopg2.errors.LockNotAvailable()
        return "done"

    assert retry_transient(flaky, lambda exc: BatchFailed(type(exc).__name__)) == "done"
    assert slept == [0.2, 0.4] and len(calls) == 3

    def always() -> None:
        raise psycopg2.errors.SerializationFailure()

    slept.clear()
    with pytest.raises(BatchFailed, match="SerializationFailure") as error:
        retry_transient(always, lambda exc: BatchFailed(type(exc).__name__))
    assert error.value.retryable and slept == [0.2, 0.4, 0.8] and BATCH_RETRIES == 3

    def broken() -> None:
        raise psycopg2.errors.UndefinedTable()

    slept.clear()
    with pytest.raises(psycopg2.errors.UndefinedTable):  # not transient: no retry
        retry_transient(broken, lambda exc: BatchFailed(type(exc).__name__))
    assert slept == []
