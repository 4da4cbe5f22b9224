"""#9 guards in pure logic: bounded windows and instants, the "now" guard, DSN redaction, the
``--wait-lock`` flag, and SQL paths that must stay inside include/sql/ (RET-10, SEC-1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml

from governance.cli import build_parser
from governance.errors import PolicyError
from governance.guards import NowRefused, check_now, now_problem
from governance.policy import DEFAULT_POLICY_PATH, base, load_policy
from governance.policy.loading import parse_policy
from governance.settings import redact
from governance.windows import Window, WindowError, parse_instant


def raw_policy() -> dict:
    return yaml.safe_load(DEFAULT_POLICY_PATH.read_text())


WALL = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SECRET = "S3cret-Pass"


@pytest.mark.parametrize("text", ["P99999999999Y", "P101Y", "P1201M", "P36526D", "PT876601H", "P" + "9" * 5000 + "D"])
def test_windows_over_a_century_are_refused_at_parse(text):
    with pytest.raises(WindowError, match="longer than any retention window"):
        Window.parse(text)


def test_a_century_is_the_longest_window():
    assert Window.parse("P100Y").years == 100 and Window.parse("P1200M").months == 1200


def test_a_policy_with_a_huge_window_is_refused_at_load():
    data = raw_policy()
    data["rules"][0]["window"] = "P99999999999Y"
    with pytest.raises(PolicyError, match=r"rule 'visit-data' \(rules\[0\]\), field 'window'.*at most 100 years"):
        parse_policy(data)


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00"])
def test_instants_outside_the_platforms_range_are_refused(text):
    with pytest.raises(WindowError, match="outside the instants"):
        parse_instant(text)


def test_now_guard_bounds():
    policy = load_policy()
    assert now_problem(WALL + timedelta(minutes=5), policy, wall_clock=WALL) is None
    assert "ahead of the wall clock" in now_problem(WALL + timedelta(minutes=6), policy, wall_clock=WALL)
    assert "before the policy photo-shop-no applies (2024-04-01T00:00:00Z)" in now_problem(
        datetime(2024, 3, 31, 23, 59, tzinfo=UTC), policy, wall_clock=WALL
    )
    assert now_problem(datetime(2024, 4, 1, tzinfo=UTC), policy, wall_clock=WALL) is None
    with pytest.raises(NowRefused, match="--allow-now-override REASON"):
        check_now(WALL + timedelta(days=1), policy, wall_clock=WALL, how="pass --allow-now-override")
    problem = check_now(WALL + timedelta(days=1), policy, override="test", wall_clock=WALL, how="x")
    assert problem and "ahead" in problem


def test_effective_from_overrides_last_updated_and_is_validated():
    data = raw_policy()
    data["policy"]["effective_from"] = "2025-06-01T00:00:00Z"
    assert parse_policy(data).policy.starts == datetime(2025, 6, 1, tzinfo=UTC)
    data["policy"]["effective_from"] = "someday"
    with pytest.raises(PolicyError, match="effective_from"):
        parse_policy(data)


@pytest.mark.parametrize(
    "text",
    [
        f"postgresql://astrid:{SECRET}@db.internal:5432/shop",
        f"postgres://astrid:{SECRET}@db.internal/shop?sslmode=require",
        f"postgresql://astrid@db.internal/shop?password={SECRET}&sslmode=require",
        f"host=db.internal password={SECRET} user=astrid dbname=shop",
        f"host=db.internal password='{SECRET} x\\' y' user=astrid",
        f'host=db.internal password = "{SECRET}" user=astrid',
        f'{{"conn_type": "postgres", "password": "{SECRET}"}}',
        f"postgresql+psycopg2://astrid:{SECRET}@db.internal/shop",
    ],
)
def test_redact_every_dsn_form(text):
    redacted = redact(f"error: cannot reach {text} (from --db-url)")
    assert SECRET not in redacted and "***" in redacted
    assert ("db.internal" in redacted) == ("db.internal" in text)  # the target itself stays readable


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "1e9"])
def test_wait_lock_must_be_a_finite_non_negative_number(value, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["sweep", "--wait-lock", value])
    assert exc.value.code == 2 and "--wait-lock" in capsys.readouterr().err


@pytest.mark.parametrize("field", ["clock", "audit"])
@pytest.mark.parametrize("path", ["../../../outside.sql", "/etc/passwd", "clocks/../../policies/photo_shop.yaml"])
def test_sql_paths_stay_inside_include_sql(field, path):
    data = raw_policy()
    rule = next(rule for rule in data["rules"] if "view" in rule["clock"])
    if field == "clock":
        rule["clock"] = {"view": rule["clock"]["view"], "sql": path}
    else:
        rule["audit"] = path
    with pytest.raises(PolicyError, match=r"is outside .*include/sql"):
        parse_policy(data)


def test_a_symlink_leading_out_of_include_sql_is_refused(tmp_path, monkeypatch):
    sql_dir = tmp_path / "sql"
    (sql_dir / "clocks").mkdir(parents=True)
    outside = tmp_path / "outside.sql"
    outside.write_text("SELECT 1")
    (sql_dir / "clocks" / "escape.sql").symlink_to(outside)
    (sql_dir / "clocks" / "inside.sql").write_text("SELECT 1")
    monkeypatch.setattr(base, "SQL_DIR", sql_dir)
    assert base.sql_file("clocks/inside.sql", "clock") == "clocks/inside.sql"
    with pytest.raises(ValueError, match="is outside"):
        base.sql_file("clocks/escape.sql", "clock")
