"""How a rule's clock is declared decides how it is swept (issue #8): ``clock: {column: ...}`` is
evaluated on each row (partition drops on a table range-partitioned on it), ``clock: {view, sql}``
goes through the view, whatever its SQL text says. check_policy refuses a column clock that is not
a timestamptz column of the rule's table, naming file, rule and field."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from governance.policy import DEFAULT_POLICY_PATH, PolicyError, load_policy, parse_policy
from governance.sweep import check_policy, plan, sweep_rule
from tests.integration import sweep_support as s

NOW = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


def policy_with_visit_clock(clock: dict, name: str = "clocks.yaml"):
    data = copy.deepcopy(yaml.safe_load(DEFAULT_POLICY_PATH.read_text()))
    next(rule for rule in data["rules"] if rule["id"] == "visit-data")["clock"] = clock
    return parse_policy(data, name)


@pytest.mark.parametrize(
    "column, problem",
    [
        ("last_seen_at", "column 'last_seen_at' does not exist in shop.visits"),
        ("visit_id", "column 'visit_id' is bigint"),
    ],
)
def test_a_column_clock_that_is_missing_or_not_timestamptz_is_refused(conn, s3, column, problem):
    s.empty_shop(conn)
    with conn.cursor() as cur:
        visit_id = s.visit(cur, NOW - timedelta(days=5))
    conn.commit()
    policy = policy_with_visit_clock({"column": column}, "bad-clock.yaml")
    for call in (
        lambda: check_policy(conn, policy),
        lambda: plan(conn, policy, NOW),
        lambda: sweep_rule(conn, s3, policy, "visit-data", NOW, "bad-clock"),
    ):
        with pytest.raises(PolicyError) as error:
            call()
        message = str(error.value)
        assert "bad-clock.yaml" in message and "rule 'visit-data', field 'clock.column'" in message
        assert problem in message and "timestamp with time zone" in message
    with conn.cursor() as cur:
        assert s.exists(cur, "shop.visits", "visit_id", visit_id)
    conn.rollback()


def test_a_column_clock_on_a_partitioned_table_drops_partitions(conn, s3):
    s.empty_shop(conn)
    expired = (NOW - timedelta(hours=30)).replace(minute=0)
    with conn.cursor() as cur:
        cur.execute("SELECT governance.ensure_hourly_partitions('shop.visits', %s, %s)", (expired, NOW))
        gone = [s.visit(cur, expired + timedelta(minutes=m)) for m in (1, 2, 3)]
        kept = s.visit(cur, NOW - timedelta(hours=1))
    conn.commit()
    policy = load_policy()
    assert [p.strategy for p in plan(conn, policy, NOW, ["visit-data"])] == ["partitions"]
    result = sweep_rule(conn, s3, policy, "visit-data", NOW, "column-clock")
    assert result.strategy == "partitions" and result.partitions_dropped >= 1 and result.deleted == 3
    with conn.cursor() as cur:
        assert not any(s.exists(cur, "shop.visits", "visit_id", v) for v in gone)
        assert s.exists(cur, "shop.visits", "visit_id", kept)
        cur.execute(
            "SELECT DISTINCT details->>'strategy' FROM governance.evidence WHERE run_id = 'column-clock' "
            "AND kind = 'sweep_batch' AND step LIKE 'drop %%'"
        )
        assert cur.fetchall() == [("partitions",)]
    conn.rollback()


def test_the_strategy_follows_the_policy_not_the_text_of_a_view(conn, s3):
    """A view, however it is written, is swept through the view; a column clock never looks at one."""
    s.empty_shop(conn)
    with conn.cursor() as cur:
        due = s.visit(cur, NOW - timedelta(days=3))
        # A plain projection, written the way pg_get_viewdef would print it, and a reformatted one.
        cur.execute(
            "CREATE OR REPLACE VIEW governance_clocks.test_visits_plain AS "
            "SELECT v.visit_id AS record_id, v.last_activity_at AS clock FROM shop.visits v"
        )
        cur.execute(
            "CREATE OR REPLACE VIEW governance_clocks.test_visits_reformatted AS "
            "WITH v AS (SELECT * FROM shop.visits) SELECT v.visit_id AS record_id, v.last_activity_at AS clock FROM v"
        )
    conn.commit()
    try:
        strategies = {}
        for view in ("governance_clocks.test_visits_plain", "governance_clocks.test_visits_reformatted"):
            policy = policy_with_visit_clock({"view": view, "sql": "clocks/ret_3_orders.sql"})
            [p] = plan(conn, policy, NOW, ["visit-data"])
            strategies[view] = (p.strategy, p.due)
        assert set(strategies.values()) == {("work", 1)}
        [p] = plan(conn, load_policy(), NOW, ["visit-data"])
        assert (p.strategy, p.due) == ("partitions", 1)
        result = sweep_rule(conn, s3, policy, "visit-data", NOW, "view-clock")
        assert (result.strategy, result.deleted) == ("work", 1)
        with conn.cursor() as cur:
            assert not s.exists(cur, "shop.visits", "visit_id", due)
        conn.rollback()
    finally:
        with conn.cursor() as cur:
            cur.execute(
                "DROP VIEW IF EXISTS governance_clocks.test_visits_plain, governance_clocks.test_visits_reformatted"
            )
        conn.commit()
