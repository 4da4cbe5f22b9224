"""retention_sweep with ``shards=3`` (#14) through Airflow's ``dag.test()`` on a seeded shop: the
rules that can be cut run as three mapped shard tasks each, every rule is finished, and the effect
(every table's rows, the orders anonymised) and the cut rules' summaries equal an in-process
unsharded sweep of an identically seeded shop; the independent audit finds nothing overdue, and a
rerun changes and records nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests

from governance.db import connect
from governance.policy import load_policy
from governance_dev.loader import seed
from tests.integration import sweep_support as s
from tests.integration.test_sweep_dag import states, sweep_dag  # noqa: F401  (the fixture)

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# order-records keeps its RET-3 clock per customer (clock.kept, ADR 0011): one whole shard
CUT = {"visit-data": "partitions", "cookie-preferences": "blocks"}
SHOP = {
    "shop.visits": "visit_id",
    "shop.accounts": "account_id",
    "shop.calendar_events": "event_id",
    "shop.saved_products": "saved_product_id",
    "shop.orders": "order_id",
    "shop.uploads": "upload_id",
    "shop.newsletter_subscriptions": "subscription_id",
    "shop.contact_messages": "message_id",
    "shop.cookie_preferences": "preference_id",
    "governance.request_contacts": None,
    "governance.request_exports": None,
}


def shop_state(conn) -> dict[str, object]:
    """Per table: the rows left (count and a digest of their keys); the orders anonymised (RET-8)."""
    out: dict[str, object] = {}
    with conn.cursor() as cur:
        for table, key in SHOP.items():
            digest = f"md5(coalesce(string_agg({key}::text, ',' ORDER BY {key}), ''))" if key else "''"
            cur.execute(f"SELECT count(*), {digest} FROM {table}")
            out[table] = cur.fetchone()
        cur.execute("SELECT array_agg(order_id ORDER BY order_id) FROM shop.orders WHERE anonymised_at IS NOT NULL")
        out["anonymised"] = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM governance.evidence")
        out["evidence"] = cur.fetchone()[0]
    conn.rollback()
    return out


def test_a_sharded_run_equals_the_unsharded_sweep(sweep_dag, airflow_connections, make_database, s3, s3_url):  # noqa: F811
    from governance.audit import run_audit
    from governance.sweep import sweep

    policy = load_policy()
    reference = connect(make_database())
    try:
        seed(reference, s3, policy, NOW, customers=100, seed=3)
        sweep(reference, s3, policy, NOW, "reference")
        with reference.cursor() as cur:
            expected = s.latest_summaries(cur, "reference")
            expected_batches = s.evidence_totals(cur, "reference")
        reference.rollback()
        expected_shop = {k: v for k, v in shop_state(reference).items() if k != "evidence"}
    finally:
        reference.close()
    requests.post(f"{s3_url}/moto-api/reset", timeout=10).raise_for_status()

    conn = connect(airflow_connections["db_url"])
    report = seed(conn, s3, policy, NOW, customers=100, seed=3)
    assert sum(report.expected_overdue.values()) > 100
    run = sweep_dag.test(logical_date=NOW, run_after=NOW, run_conf={"dry_run": False, "shards": 3})
    run_states = states(run)
    assert str(run.state) == "success", run_states
    stage_1 = len(policy.rules) - 1
    assert run_states["sweep_stage_1"] == ["success"] * (stage_1 + 2 * len(CUT))  # three shards of each cut rule
    assert run_states["finish_stage_1"] == ["success"] * stage_1 and run_states["mark_swept"] == ["success"]
    labels = sorted(ti.rendered_map_index for ti in run.get_task_instances() if ti.task_id == "sweep_stage_1")
    for rule in CUT:
        assert [label for label in labels if label.startswith(f"{rule} ")] == [f"{rule} {k}/3" for k in range(3)]
    assert [label for label in labels if label.startswith("order-records")] == ["order-records"]

    run_id = f"retention_sweep/{run.run_id}"
    with conn.cursor() as cur:
        summaries = s.latest_summaries(cur, run_id)
        batches = s.evidence_totals(cur, run_id)
        shard_totals = s.evidence_totals(cur, run_id, "sweep_shard")
        cur.execute(
            "SELECT rule_id, count(*) FROM governance.evidence WHERE run_id = %s AND kind = 'sweep_shard' GROUP BY 1",
            (run_id,),
        )
        shard_entries = dict(cur.fetchall())
        cur.execute("SELECT count(*) FROM governance.verify_evidence()")
        assert cur.fetchone()[0] == 0
    conn.rollback()
    # The rules cut into shards: the same totals as the unsharded sweep, rule by rule. Across all
    # rules the same records go; which of the four CAT-5 upload rules counts an upload depends on
    # the order the stage's tasks ran in (a saved product removed before or after), sharded or not.
    for rule in CUT:
        assert summaries[rule] == expected[rule] and batches[rule] == expected_batches[rule], rule
    assert set(summaries) == set(expected)

    def removed(totals: dict) -> int:
        return sum(c.get("deleted", 0) + c.get("anonymised", 0) for c in totals.values())

    assert removed(batches) == removed(expected_batches) > 100
    assert set(shard_entries) <= set(CUT) and all(n <= 3 for n in shard_entries.values())
    for rule, totals in shard_totals.items():  # the shards' own summaries add up to the rule's
        assert {k: v for k, v in totals.items() if k != "held"} == batches[rule], rule
    after = shop_state(conn)
    assert {k: v for k, v in after.items() if k != "evidence"} == expected_shop
    audit = run_audit(conn, s3, policy, NOW, "shards-audit", db_url=airflow_connections["db_url"], record=False)
    assert audit.overdue_total == 0, audit.format_table()

    rerun = sweep_dag.test(logical_date=NOW, run_after=NOW, run_conf={"dry_run": False, "shards": 3})
    assert str(rerun.state) == "success", states(rerun)
    assert shop_state(conn) == after  # nothing changed, nothing recorded twice
    conn.close()
