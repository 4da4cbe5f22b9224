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


# --- the data map's links (#10: ACC-1, POR-1, ERA-1 find a person's records through them) ---


def store_of(data: dict[str, Any], table: str) -> dict[str, Any]:
    return next(s for c in data["categories"] for s in c["stores"] if s["table"] == table)


def test_the_shipped_data_map_links_reach_a_person():
    policy = load_policy()
    lines = policy.store("shop.order_lines")
    assert lines.person is None and [(k.column, k.to, k.to_column) for k in lines.links] == [
        ("order_id", "shop.orders", "order_id")
    ]
    assert "order_id" in lines.columns()  # the database check looks for the link column too
    uploads = policy.store("shop.uploads")
    assert uploads.person is not None and [k.via.table for k in uploads.links if k.via] == [
        "shop.order_line_uploads",
        "shop.saved_product_uploads",
    ]
    assert policy.join_tables() == ["shop.order_line_uploads", "shop.saved_product_uploads"]
    assert policy.store("shop.visits").unidentifiable


def test_a_link_to_a_table_outside_the_data_map(tmp_path):
    message = broken(tmp_path, lambda d: store_of(d, "shop.order_lines")["links"][0].update(to="shop.order"))
    assert "category 'CAT-3', store 'shop.order_lines', field 'links[0].to'" in message
    assert "'shop.order' is not a store of the data map" in message and "shop.orders" in message


def test_a_store_naming_no_person_and_linking_nowhere(tmp_path):
    message = broken(tmp_path, lambda d: store_of(d, "shop.order_lines").pop("links"))
    assert (
        "category 'CAT-3', store 'shop.order_lines': store shop.order_lines names no person and no link reaches one; "
        "add person: or links:"
    ) in message
    assert "1 problem(s)" in message


def test_a_link_only_to_an_unidentifiable_store_reaches_no_person(tmp_path):
    def change(data):
        store_of(data, "shop.newsletter_events")["links"] = [
            {"column": "event_id", "to": "shop.visits", "to_column": "visit_id"}
        ]

    message = broken(tmp_path, change)
    assert "store shop.newsletter_events names no person and no link reaches one" in message


def test_links_that_form_a_cycle(tmp_path):
    def change(data):
        store_of(data, "shop.order_lines")["links"] = [
            {"column": "order_line_id", "to": "shop.newsletter_events", "to_column": "event_id"}
        ]
        store_of(data, "shop.newsletter_events")["links"] = [
            {"column": "event_id", "to": "shop.order_lines", "to_column": "order_line_id"}
        ]

    message = broken(tmp_path, change)
    assert (
        "field 'links': links form a cycle (shop.order_lines -> shop.newsletter_events -> shop.order_lines)" in message
    )
    # ... and neither reaches a person
    assert "store shop.order_lines names no person" in message
    assert "store shop.newsletter_events names no person" in message


def test_a_store_linking_to_itself_is_a_cycle(tmp_path):
    def change(data):
        store_of(data, "shop.uploads")["links"].append(
            {"column": "upload_id", "to": "shop.uploads", "to_column": "upload_id"}
        )

    message = broken(tmp_path, change)
    assert (
        "category 'CAT-5', store 'shop.uploads', field 'links': links form a cycle (shop.uploads -> shop.uploads)"
        in message
    )
    assert "names no person" not in message  # it names one itself


def test_unidentifiable_contradicts_person_columns(tmp_path):
    message = broken(tmp_path, lambda d: store_of(d, "shop.orders").update(unidentifiable="guests"))
    assert "category 'CAT-3' (categories[2]), field 'stores[0]'" in message
    assert "store 'shop.orders': 'unidentifiable' contradicts 'person'/'links'" in message


@pytest.mark.parametrize(
    ("link", "field", "expected"),
    [
        ({"column": "order_id", "to": "shop.orders"}, "stores[1].links[0].to_column", "required field is missing"),
        (
            {"column": "order_id", "to": "shop.orders", "to_column": "order_id", "target": "x"},
            "stores[1].links[0].target",
            "unknown key",
        ),
        ({"column": "Order", "to": "shop.orders", "to_column": "order_id"}, "stores[1].links[0].column", "'Order'"),
        ({"column": "order_id", "to": "orders", "to_column": "order_id"}, "stores[1].links[0].to", "schema-qualified"),
        (
            {"column": "order_id", "to": "shop.orders", "to_column": "order_id", "via": {"table": "shop.x"}},
            "stores[1].links[0].via.column",
            "required field is missing",
        ),
    ],
)
def test_a_malformed_link_names_the_category_and_the_field(tmp_path, link, field, expected):
    message = broken(tmp_path, lambda d: store_of(d, "shop.order_lines").update(links=[link]))
    assert f"category 'CAT-3' (categories[2]), field '{field}'" in message
    assert expected in message


def test_the_reports_bucket_needs_a_decision_with_a_window(tmp_path):
    """#13, RET-9: the daily reports are a copy with a window; a bucket without one is refused."""
    assert str(load_policy().reports_window()) == "P90D"
    message = broken(tmp_path, lambda d: d["object_store"].pop("keep_reports"))
    assert "field 'keep_reports'" in message and "governance-reports" in message and "RET-9" in message
    message = broken(tmp_path, lambda d: d["object_store"].update(keep_reports={"decision": "RET-8"}))
    assert "decision 'RET-8' has none" in message
