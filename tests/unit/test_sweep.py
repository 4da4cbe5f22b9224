"""Pure logic of the sweep: stage order, lock keys, the index bound of a window, clock-view shapes,
result arithmetic. Fixed answers, and a property for the bound (RET-10 calendar arithmetic)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from governance.policy import DEFAULT_POLICY_PATH, PolicyError, load_policy, parse_policy
from governance.sweep import RuleResult, sweep_stages
from governance.sweep.selection import _plain_clock_column, index_bound, lock_key
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
    assert len(stages) == 2 and sum(map(len, stages)) == 12
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
    assert len(keys) == 12 and all(-(2**31) <= k < 2**31 for k in keys)


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


@pytest.mark.parametrize(
    "viewdef, expected",
    [
        (
            " SELECT v.visit_id AS record_id,\n    v.last_activity_at AS clock\n   FROM shop.visits v;",
            "last_activity_at",
        ),
        ("SELECT visit_id AS record_id, last_activity_at AS clock FROM shop.visits;", "last_activity_at"),
        ("SELECT visits.visit_id AS record_id, visits.last_activity_at AS clock FROM shop.visits", "last_activity_at"),
        (
            " SELECT a.account_id AS record_id,\n    a.deleted_at AS clock\n   FROM shop.accounts a\n  WHERE a.deleted_at IS NOT NULL;",
            None,
        ),
        ("SELECT v.visit_id AS record_id, v.started_at + '1 day'::interval AS clock FROM shop.visits v;", None),
        ("SELECT v.session_id AS record_id, v.last_activity_at AS clock FROM shop.visits v;", None),  # not the key
        ("SELECT v.visit_id AS record_id, x.last_activity_at AS clock FROM shop.visits v;", None),
        ("SELECT v.visit_id AS record_id, v.last_activity_at AS clock FROM other.visits v;", None),
    ],
)
def test_a_clock_is_a_column_only_for_plain_projections(viewdef, expected):
    assert _plain_clock_column(viewdef, "shop.visits", "visit_id") == expected


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
