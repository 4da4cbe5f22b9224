"""A bad policy file is refused where it is loaded, naming the file, the rule and the field.

Each case starts from the photo shop's policy, breaks one thing, writes the copy to a temporary
file and loads it: the PolicyError must say which file, which rule (or category) and which field,
in words a person can act on (CONTRIBUTING.md habit 3: "Validate configuration where it is loaded").
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from governance.policy import DEFAULT_POLICY_PATH, PolicyError, load_policy

BASE = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())


def rule_of(data: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(r for r in data["rules"] if r["id"] == rule_id)


def broken(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> str:
    """Load a broken copy of the policy; return the PolicyError's text."""
    data = copy.deepcopy(BASE)
    change(data)
    path = tmp_path / "broken_policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(PolicyError) as excinfo:
        load_policy(path)
    message = str(excinfo.value)
    assert str(path) in message, message
    assert excinfo.value.path == str(path)
    return message


def test_the_shipped_policy_is_valid():
    policy = load_policy()
    assert len(policy.rules) == 14 and len(policy.categories) == 7
    assert len(policy.version) == 64


def test_unknown_key(tmp_path):
    message = broken(tmp_path, lambda d: rule_of(d, "visit-data").update(retention="PT24H"))
    assert "rule 'visit-data'" in message
    assert "field 'retention'" in message
    assert "unknown key" in message


def test_unknown_key_nested_in_the_action(tmp_path):
    message = broken(tmp_path, lambda d: rule_of(d, "deleted-accounts")["action"].update(cascade=True))
    assert "rule 'deleted-accounts'" in message and "cascade" in message and "unknown key" in message


@pytest.mark.parametrize("window", ["2 years", "P2", "730", "P0D", "p2y"])
def test_malformed_duration(tmp_path, window):
    message = broken(tmp_path, lambda d: rule_of(d, "order-records").update(window=window))
    assert "rule 'order-records'" in message
    assert "field 'window'" in message
    assert repr(window) in message
    assert "ISO 8601" in message or "zero-length" in message


def test_malformed_duration_in_a_decision(tmp_path):
    message = broken(tmp_path, lambda d: d["decisions"]["RET-6"].update(window="12 months"))
    assert "decisions.RET-6.window" in message and "'12 months'" in message


def test_rule_without_requirement_id(tmp_path):
    message = broken(tmp_path, lambda d: rule_of(d, "cookie-preferences").update(requirements=[]))
    assert "rule 'cookie-preferences'" in message
    assert "field 'requirements'" in message
    assert "at least 1 item" in message


def test_rule_with_requirements_missing(tmp_path):
    message = broken(tmp_path, lambda d: rule_of(d, "cookie-preferences").pop("requirements"))
    assert "rule 'cookie-preferences'" in message
    assert "field 'requirements'" in message
    assert "required field is missing" in message


def test_rule_citing_something_that_is_not_a_requirement_id(tmp_path):
    message = broken(tmp_path, lambda d: rule_of(d, "guest-uploads").update(requirements=["retention", "RET-5c"]))
    assert "rule 'guest-uploads'" in message
    assert "field 'requirements'" in message
    assert "'retention'" in message and "docs/requirements.md" in message


def test_category_without_rule(tmp_path):
    def add_category(data):
        data["categories"].append(
            {
                "id": "CAT-8",
                "name": "Reviews",
                "legal_basis": "consent",
                "stores": [{"table": "shop.reviews", "key": "review_id", "personal_columns": ["body"]}],
            }
        )

    message = broken(tmp_path, add_category)
    assert "CAT-8 has no retention rule" in message
    assert "'category: CAT-8'" in message  # says which field of which new rule would fix it


def test_unknown_strategy_name_lists_the_valid_ones(tmp_path):
    def change(data):
        rule_of(data, "order-records")["action"]["columns"]["email"] = {"strategy": "scramble"}

    message = broken(tmp_path, change)
    assert "rule 'order-records'" in message
    assert "field 'action.anonymise.columns'" in message
    assert "unknown strategy 'scramble'" in message
    assert "valid strategies: fixed_value, set_null" in message


def test_duplicated_rule_id(tmp_path):
    message = broken(tmp_path, lambda d: d["rules"].append(copy.deepcopy(rule_of(d, "visit-data"))))
    assert "rule id 'visit-data' is used twice" in message


def test_several_problems_are_reported_together(tmp_path):
    def change(data):
        rule_of(data, "visit-data").update(window="a day")
        rule_of(data, "contact-messages").update(colour="blue")

    message = broken(tmp_path, change)
    assert "2 problem(s)" in message
    assert "rule 'visit-data'" in message and "rule 'contact-messages'" in message


def test_the_exports_bucket_must_be_a_bucket_of_the_data_map(tmp_path):
    """RET-9: exports written to a bucket no store names would never be purged nor audited."""
    message = broken(tmp_path, lambda d: d["object_store"].update(exports_bucket="other-exports"))
    assert "field 'exports_bucket': 'other-exports' is in no store's 'objects.buckets'" in message


@pytest.mark.parametrize("rule_id", ["uploads-object-store", "request-exports-object-store", "data-location"])
def test_a_rule_may_not_take_the_id_of_one_of_the_audits_own_checks(tmp_path, rule_id):
    message = broken(tmp_path, lambda d: rule_of(d, "visit-data").update(id=rule_id))
    assert f"{rule_id!r} is the id of one of the audit's own checks" in message


def test_a_rule_on_a_table_outside_the_data_map(tmp_path):
    message = broken(tmp_path, lambda d: rule_of(d, "visit-data").update(table="shop.sessions"))
    assert "rule 'visit-data'" in message and "field 'table'" in message and "shop.sessions" in message


def test_unreadable_and_non_yaml_files(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError, match="cannot read the file") as excinfo:
        load_policy(missing)
    assert str(missing) in str(excinfo.value)
    garbage = tmp_path / "garbage.yaml"
    garbage.write_text("rules: [unclosed\n")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(garbage)


def test_a_cycle_of_after_is_refused_at_load_naming_the_rules(tmp_path):
    def change(data):
        rule_of(data, "deleted-account-saved-products")["after"] = ["deleted-accounts"]

    message = broken(tmp_path, change)
    assert "rule 'deleted-account-saved-products', field 'after'" in message
    assert "deleted-account-saved-products -> deleted-accounts -> deleted-account-saved-products" in message


def test_a_rule_after_itself_is_a_cycle(tmp_path):
    message = broken(tmp_path, lambda d: rule_of(d, "visit-data").update(after=["visit-data"]))
    assert "rule 'visit-data', field 'after': rules form a cycle (visit-data -> visit-data)" in message


def test_after_naming_an_unknown_rule(tmp_path):
    message = broken(tmp_path, lambda d: rule_of(d, "deleted-accounts").update(after=["deleted-account-photos"]))
    assert "rule 'deleted-accounts', field 'after': 'deleted-account-photos' is not a rule id" in message
    assert "cycle" not in message


def test_a_clock_may_be_a_column_of_the_rules_table(tmp_path):
    data = copy.deepcopy(BASE)
    rule_of(data, "visit-data")["clock"] = {"column": "last_activity_at"}
    path = tmp_path / "column_clock.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    policy = load_policy(path)
    clock = policy.rule("visit-data").clock
    assert (clock.column, clock.view, clock.sql) == ("last_activity_at", None, None)
    assert "clocks/ret_1_visits.sql" not in policy.clock_sql_files()
    assert "clocks/ret_2_accounts.sql" in policy.clock_sql_files()


@pytest.mark.parametrize(
    ("clock", "expected"),
    [
        ({"column": "last_activity_at", "view": "governance_clocks.ret_1_visits"}, "not both"),
        ({"column": "last_activity_at", "sql": "clocks/ret_2_accounts.sql"}, "not both"),
        ({}, "a clock needs {column: NAME}"),
        ({"view": "governance_clocks.ret_1_visits"}, "a clock view needs 'sql'"),
        ({"sql": "clocks/ret_2_accounts.sql"}, "needs 'view'"),
        ({"column": "Last Activity"}, "'Last Activity' is not a plain lower-case column name"),
        ({"view": "ret_1_visits", "sql": "clocks/ret_2_accounts.sql"}, "schema-qualified"),
        ({"view": "governance_clocks.ret_1_visits", "sql": "clocks/nope.sql"}, "clock SQL file 'clocks/nope.sql'"),
    ],
)
def test_a_clock_is_exactly_one_of_a_column_or_a_view_with_its_sql(tmp_path, clock, expected):
    message = broken(tmp_path, lambda d: rule_of(d, "visit-data").update(clock=clock))
    assert "rule 'visit-data'" in message and "field 'clock" in message
    assert expected in message
