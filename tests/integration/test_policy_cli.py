"""`governance policy check` and the database check of a rule's clock (RET-10: a clock is an
instant): a column clock must be a ``timestamp with time zone`` column of the rule's own table.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from governance.cli import main
from governance.policy import DEFAULT_POLICY_PATH, PolicyError, load_policy, require_database_match

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def no_ambient_settings(monkeypatch):
    for name in ("GOVERNANCE_DB_URL", "GOVERNANCE_S3_ENDPOINT_URL", "GOVERNANCE_POLICY"):
        monkeypatch.delenv(name, raising=False)


def with_visit_clock(tmp_path: Path, clock: dict[str, str]) -> Path:
    data = copy.deepcopy(yaml.safe_load(DEFAULT_POLICY_PATH.read_text()))
    next(r for r in data["rules"] if r["id"] == "visit-data")["clock"] = clock
    path = tmp_path / "clock_policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_timestamptz_column_clock_matches_the_database(db_url, tmp_path, capsys):
    path = with_visit_clock(tmp_path, {"column": "last_activity_at"})
    assert main(["policy", "check", "--policy", str(path), "--db-url", db_url]) == 0
    assert "every table, column and clock view the policy names exists" in capsys.readouterr().out


def test_a_column_clock_that_does_not_exist_is_named(db_url, tmp_path, capsys):
    path = with_visit_clock(tmp_path, {"column": "last_seen_at"})
    assert main(["policy", "check", "--policy", str(path), "--db-url", db_url]) == 1
    out = capsys.readouterr().out
    assert str(path) in out
    assert "rule 'visit-data', field 'clock.column': column 'last_seen_at' does not exist in shop.visits" in out


def test_a_column_clock_that_is_not_an_instant_is_refused(conn, tmp_path):
    policy = load_policy(with_visit_clock(tmp_path, {"column": "country"}))
    with pytest.raises(PolicyError) as error:
        require_database_match(policy, conn)
    message = str(error.value)
    assert str(tmp_path / "clock_policy.yaml") in message
    assert "rule 'visit-data', field 'clock.column': shop.visits.country is text, not timestamp with time zone" in (
        message
    )


def test_the_shipped_policy_matches_the_database(conn):
    require_database_match(load_policy(), conn)


def test_every_side_of_a_link_must_exist_in_the_database(conn, tmp_path):
    """#10: a person's records are found through the links, so the check names a missing link
    column, target column, join table or join-table column, by category, store and field."""
    data = copy.deepcopy(yaml.safe_load(DEFAULT_POLICY_PATH.read_text()))
    stores = {s["table"]: s for c in data["categories"] for s in c["stores"]}
    stores["shop.order_lines"]["links"] = [{"column": "order_ref", "to": "shop.orders", "to_column": "order_key"}]
    ordered, saved = stores["shop.uploads"]["links"]
    ordered["via"]["table"] = "shop.order_line_photos"
    saved["via"]["column"] = "photo_id"
    saved["via"]["to_column"] = "product_id"
    path = tmp_path / "link_policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(PolicyError) as error:
        require_database_match(load_policy(path), conn)
    assert error.value.problems == [
        "category 'CAT-3', store 'shop.order_lines': column 'order_ref' does not exist in shop.order_lines",
        "category 'CAT-3', store 'shop.order_lines', field 'links[0].to_column': column 'order_key' does not exist "
        "in shop.orders",
        "category 'CAT-5', store 'shop.uploads', field 'links[0].via.table': table 'shop.order_line_photos' does not "
        "exist in the database",
        "category 'CAT-5', store 'shop.uploads', field 'links[1].via.column': column 'photo_id' does not exist in "
        "shop.saved_product_uploads",
        "category 'CAT-5', store 'shop.uploads', field 'links[1].via.to_column': column 'product_id' does not exist "
        "in shop.saved_product_uploads",
    ]
