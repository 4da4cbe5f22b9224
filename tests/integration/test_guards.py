"""#9 guards end to end on real PostgreSQL and S3: a "now" ahead of the wall clock or before the
policy applies is refused by every command unless overridden (and the override is evidenced);
policy check refuses a clock view over another table; infrastructure errors are messages with exit
code 4; an S3 outage does not stop rules that never touch objects (RET-10, SEC-1, CAT-5)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from governance.cli import main
from governance.db import connect
from governance.policy import DEFAULT_POLICY_PATH
from governance.windows import iso

FUTURE = iso(datetime.now(UTC) + timedelta(days=1))
BEFORE_POLICY = "2020-01-01T00:00:00Z"
PAST = "2026-03-01T12:00:00Z"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def evidence(conn, kind: str | None = None) -> list[dict]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT kind, step, details FROM governance.evidence WHERE %(kind)s::text IS NULL OR kind = %(kind)s",
            {"kind": kind},
        )
        rows = [{"kind": k, "step": s, "details": d} for k, s, d in cur.fetchall()]
    conn.rollback()
    return rows


@pytest.fixture
def args(db_url, s3_url, s3):
    return ["--db-url", db_url, "--s3-endpoint-url", s3_url]


@pytest.mark.parametrize("now", [FUTURE, BEFORE_POLICY])
@pytest.mark.parametrize(
    "command",
    [
        ["sweep", "--rule", "visit-data"],
        ["plan"],
        ["audit"],
        ["hold", "add", "--scope", "rule", "--rule", "visit-data", "--reason", "court order", "--set-by", "legal"],
        ["hold", "list"],
    ],
)
def test_every_command_refuses_a_now_it_must_not_decide_for(capsys, conn, args, command, now):
    before = evidence(conn)
    code, out, err = run(capsys, *command, *args, "--now", now)
    assert code == 2, (out, err)
    assert "refused, nothing was run" in err and "--allow-now-override REASON" in err
    assert 'A "now" was refused' in err
    assert "in force" not in out and out == ""
    assert evidence(conn) == before  # no clean audit, no hold, no sweep recorded


def test_audit_at_year_one_is_refused_and_records_nothing(capsys, conn, args):
    before = evidence(conn)
    with pytest.raises(SystemExit) as exc:
        main(["audit", *args, "--now", "0001-01-01T00:00:00Z"])
    assert exc.value.code == 2 and "outside the instants" in capsys.readouterr().err
    assert evidence(conn) == before


def test_an_override_lets_the_now_through_and_is_evidenced(capsys, conn, args):
    code, out, err = run(
        capsys, "plan", "--json", *args, "--now", FUTURE, "--allow-now-override", "what-if for ticket GOV-12"
    )
    assert code == 0, err
    assert json.loads(out)["now"] == FUTURE and "recorded as evidence" in err
    (entry,) = evidence(conn, "now_override")
    assert entry["step"] == "plan"
    assert (
        entry["details"]["reason"] == "what-if for ticket GOV-12"
        and "ahead of the wall clock" in (entry["details"]["problem"])
    )


def test_override_without_now_is_refused(capsys, args):
    code, _, err = run(capsys, "plan", *args, "--allow-now-override", "why")
    assert code == 2 and "give --now too" in err


def test_policy_check_refuses_a_clock_view_over_another_table(capsys, db_url, tmp_path):
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    rules = {rule["id"]: rule for rule in data["rules"]}
    rules["contact-messages"]["clock"] = dict(rules["deleted-accounts"]["clock"])  # accounts' clock on messages
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(data))
    code, out, _ = run(capsys, "policy", "check", "--db-url", db_url)
    assert code == 0 and "every table, column and clock view" in out  # the shipped policy passes
    code, out, _ = run(capsys, "policy", "check", "--db-url", db_url, "--policy", str(policy))
    assert code == 1
    assert (
        "rule 'contact-messages', field 'clock.view': governance_clocks.ret_2_accounts does not select from the "
        "rule's table shop.contact_messages nor a table referencing it"
    ) in out


@pytest.mark.parametrize(
    ("db_url", "code", "expected"),
    [
        ("not a url", 2, "is not a PostgreSQL URL or DSN"),
        ("postgresql://governance@127.0.0.1:1/shop", 4, "database: cannot reach postgresql://governance@127.0.0.1:1"),
    ],
)
def test_database_errors_are_messages_with_their_exit_code(capsys, db_url, code, expected):
    returned, _, err = run(capsys, "plan", "--db-url", db_url, "--now", PAST)
    assert returned == code
    assert expected in err and "Database or S3 unreachable" in err and "Traceback" not in err


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:1", "not a url"])
def test_an_s3_outage_does_not_stop_rules_that_never_touch_objects(capsys, db_url, monkeypatch, endpoint):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    conn = connect(db_url)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO shop.visits (session_key, ip_address, country, started_at, last_activity_at) "
            "VALUES (gen_random_uuid(), '10.0.0.1', 'NO', '2025-01-01T10:00Z', '2025-01-01T11:00Z')"
        )
    conn.commit()
    code, out, err = run(
        capsys,
        "sweep",
        "--json",
        "--rule",
        "visit-data",
        "--db-url",
        db_url,
        "--s3-endpoint-url",
        "http://127.0.0.1:1",
        "--now",
        PAST,
    )
    assert code == 0, err
    assert {r["rule"]: r["deleted"] for r in json.loads(out)["rules"]}["visit-data"] == 1
    conn.close()


def test_an_s3_outage_fails_only_the_rules_that_purge_objects(capsys, make_database, s3, monkeypatch):
    from governance.policy import load_policy
    from governance_dev.loader import seed

    db_url = make_database()
    conn = connect(db_url)
    report = seed(conn, s3, load_policy(), datetime(2026, 3, 1, 12, tzinfo=UTC), customers=100, seed=11)
    code, out, err = run(
        capsys, "sweep", "--json", "--db-url", db_url, "--s3-endpoint-url", "http://127.0.0.1:1", "--now", PAST
    )
    conn.close()
    result = json.loads(out)
    purging = {rule.id for rule in load_policy().rules if rule.action.type == "purge_objects"}
    assert code == 1 and set(result["errors"]) <= purging and result["errors"], err
    done = {r["rule"]: r["deleted"] + r["anonymised"] for r in result["rules"]}
    expected = report.expected_overdue
    for rule_id in ("visit-data", "order-records", "contact-messages", "cookie-preferences"):
        assert done[rule_id] == expected[rule_id]
