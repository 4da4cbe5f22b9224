"""`governance audit` and `governance policy check` as people and scripts use them (real services).

Exit codes: 0 clean, 1 overdue (or a policy that does not match the database), 2 configuration.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from governance.cli import main
from governance.policy import DEFAULT_POLICY_PATH, load_policy
from governance_dev.loader import ensure_store_buckets
from governance_dev.reference import Snapshot
from tests.integration.test_audit_properties import empty_shop, insert_snapshot

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NOW_ARG = "2026-11-25T12:00:00Z"
GOVERNANCE = str(Path(sys.executable).parent / "governance")


@pytest.fixture(autouse=True)
def no_ambient_settings(monkeypatch):
    for name in ("GOVERNANCE_DB_URL", "GOVERNANCE_S3_ENDPOINT_URL", "GOVERNANCE_POLICY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def shop_with_overdue_visits(conn, s3):
    empty_shop(conn)
    insert_snapshot(
        conn,
        Snapshot(
            visits=[
                {"visit_id": 1, "last_activity_at": NOW - timedelta(hours=24)},
                {"visit_id": 2, "last_activity_at": NOW - timedelta(hours=71, minutes=30)},
                {"visit_id": 3, "last_activity_at": NOW - timedelta(hours=1)},
            ]
        ),
    )
    ensure_store_buckets(s3, load_policy())  # the uploads and the request exports (RET-9)


def test_audit_json_and_exit_code_1_when_overdue(db_url, s3_url, shop_with_overdue_visits, capsys):
    code = main(
        ["audit", "--json", "--db-url", db_url, "--s3-endpoint-url", s3_url, "--now", NOW_ARG, "--run-id", "cli-json-1"]
    )
    out, err = capsys.readouterr()
    assert code == 1
    data = json.loads(out)
    assert data["overdue_total"] == 2
    visits = next(r for r in data["rules"] if r["rule"] == "visit-data")
    assert visits == {
        "rule": "visit-data",
        "requirements": ["RET-1", "RET-10", "CAT-1"],
        "overdue": 2,
        "oldest_overdue_seconds": 47 * 3600 + 1800,
        "held": 0,
    }
    assert {"rule", "requirements", "overdue", "oldest_overdue_seconds"} <= set(data["rules"][0])
    assert [r["rule"] for r in data["rules"]][-2:] == ["uploads-object-store", "request-exports-object-store"]
    assert "visit-data (RET-1, RET-10, CAT-1): 2 records overdue, oldest by 1d 23h" in err


def test_audit_table_for_people(db_url, s3_url, shop_with_overdue_visits, capsys):
    code = main(["audit", "--db-url", db_url, "--s3-endpoint-url", s3_url, "--now", NOW_ARG])
    out, err = capsys.readouterr()
    assert code == 1
    line = next(x for x in out.splitlines() if x.startswith("visit-data"))
    assert line.split() == ["visit-data", "RET-1,", "RET-10,", "CAT-1", "2", "1d", "23h", "0"]
    assert "oldest overdue" in out and "held" in out
    assert "retention sweep" in err


def test_audit_exit_code_0_when_clean_and_now_decides(db_url, s3_url, shop_with_overdue_visits, capsys):
    earlier = "2026-11-23T12:29:59Z"  # a second before the oldest visit (71 h 30 min old) expired
    code = main(["audit", "--json", "--db-url", db_url, "--s3-endpoint-url", s3_url, "--now", earlier])
    out, _ = capsys.readouterr()
    assert code == 0
    assert json.loads(out)["overdue_total"] == 0


def test_audit_without_an_s3_endpoint_is_a_configuration_error(db_url, capsys):
    code = main(["audit", "--db-url", db_url, "--now", NOW_ARG])
    _, err = capsys.readouterr()
    assert code == 2
    assert "--s3-endpoint-url" in err and "GOVERNANCE_S3_ENDPOINT_URL" in err


def test_audit_without_a_database_is_a_configuration_error(s3_url, capsys):
    code = main(["audit", "--s3-endpoint-url", s3_url, "--now", NOW_ARG])
    _, err = capsys.readouterr()
    assert code == 2 and "--db-url" in err and "GOVERNANCE_DB_URL" in err


def test_console_script_exit_code_and_environment(db_url, s3_url, shop_with_overdue_visits):
    env = {**os.environ, "GOVERNANCE_DB_URL": db_url, "GOVERNANCE_S3_ENDPOINT_URL": s3_url}
    result = subprocess.run(
        [GOVERNANCE, "audit", "--json", "--now", NOW_ARG], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["overdue_total"] == 2


def broken_policy(tmp_path, change) -> Path:
    data = copy.deepcopy(yaml.safe_load(DEFAULT_POLICY_PATH.read_text()))
    change(data)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_policy_check_names_a_table_that_does_not_exist(db_url, tmp_path, capsys):
    def rename(data):
        store = next(c for c in data["categories"] if c["id"] == "CAT-6")["stores"][0]
        store["table"] = "shop.cookie_choices"
        next(r for r in data["rules"] if r["id"] == "cookie-preferences")["table"] = "shop.cookie_choices"
        for switch in (w for p in data.get("purposes", []) for w in p.get("switch_off", [])):  # RES-1, OBJ-1
            if switch["table"] == "shop.cookie_preferences":
                switch["table"] = "shop.cookie_choices"

    code = main(["policy", "check", "--policy", str(broken_policy(tmp_path, rename)), "--db-url", db_url])
    out, _ = capsys.readouterr()
    assert code == 1
    assert "table 'shop.cookie_choices' does not exist" in out
    assert "category 'CAT-6'" in out


def test_policy_check_names_a_column_that_does_not_exist(db_url, tmp_path, capsys):
    def misspell(data):
        store = next(c for c in data["categories"] if c["id"] == "CAT-1")["stores"][0]
        store["personal_columns"].append("ip_adress")
        rule = next(r for r in data["rules"] if r["id"] == "order-records")
        rule["action"]["columns"]["delivery_streat"] = {"strategy": "set_null"}

    code = main(["policy", "check", "--policy", str(broken_policy(tmp_path, misspell)), "--db-url", db_url])
    out, _ = capsys.readouterr()
    assert code == 1
    assert "column 'ip_adress' does not exist in shop.visits" in out
    assert "rule 'order-records'" in out and "column 'delivery_streat' does not exist in shop.orders" in out


def test_policy_check_passes_on_the_shipped_policy(db_url, capsys):
    assert main(["policy", "check", "--db-url", db_url]) == 0
    assert "every table, column and clock view the policy names exists" in capsys.readouterr().out
