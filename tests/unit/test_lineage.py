"""Lineage (#14 item 4): the datasets a task reads and writes, derived from the shipped policy
(fixed answers, written from the policy file), and their OpenLineage/Airflow asset names."""

from __future__ import annotations

import pytest

from governance.errors import UnknownRule
from governance.policy import load_policy
from governance_airflow.lineage import Server, audience_lineage, audit_lineage, request_lineage, sweep_lineage

POLICY = load_policy()
HOLDS, EVIDENCE, REQUESTS = "governance.legal_holds", "governance.evidence", "governance.subject_requests"


def test_a_column_clock_rule_reads_and_writes_its_table_and_the_evidence():
    """RET-1: visits, a column clock, no objects."""
    lineage = sweep_lineage(POLICY, ["visit-data"])
    assert lineage.reads == ("shop.visits", HOLDS)
    assert lineage.writes == ("shop.visits", EVIDENCE)


def test_an_upload_rule_writes_the_photos_bucket_and_reads_its_clock_view():
    """RET-5c, CAT-5: the objects go with their rows."""
    lineage = sweep_lineage(POLICY, ["guest-uploads"])
    assert lineage.reads == ("shop.uploads", "governance_clocks.ret_5c_guest_uploads", HOLDS)
    assert lineage.writes == ("shop.uploads", "s3://shop-uploads", EVIDENCE)


def test_the_account_rule_names_the_rules_it_sweeps_first():
    """RET-2: `after` rules are swept in the account rule's own task, so they are its datasets too."""
    writes = sweep_lineage(POLICY, ["deleted-accounts"]).writes
    assert writes == ("shop.calendar_events", "shop.saved_products", "shop.accounts", EVIDENCE)


def test_a_dry_run_writes_nothing():
    lineage = sweep_lineage(POLICY, ["request-exports"], dry_run=True)
    assert lineage.writes == () and lineage.reads == ("governance.request_exports", HOLDS)
    assert sweep_lineage(POLICY, ["request-exports"]).writes[1] == "s3://governance-exports"  # RET-9


def test_settling_every_rule_names_each_dataset_once():
    lineage = sweep_lineage(POLICY, [rule.id for rule in POLICY.rules])
    assert len(set(lineage.writes)) == len(lineage.writes)
    assert {rule.table for rule in POLICY.rules} < set(lineage.writes)
    assert lineage.writes.count("shop.uploads") == 1


def test_an_unknown_rule_is_refused():
    with pytest.raises(UnknownRule):
        sweep_lineage(POLICY, ["no-such-rule"])


def test_the_audit_reads_every_rule_table_and_bucket_and_writes_only_evidence():
    lineage = audit_lineage(POLICY)
    assert {rule.table for rule in POLICY.rules} <= set(lineage.reads)
    assert {HOLDS, REQUESTS, "s3://shop-uploads", "s3://governance-exports"} <= set(lineage.reads)
    assert lineage.writes == (EVIDENCE,)


def test_an_export_writes_the_exports_bucket_and_no_store():
    """ACC-1, POR-1: reads the person's stores and photos; writes the archive and the ledger."""
    for kind in ("access", "portability"):
        lineage = request_lineage(POLICY, kind)
        assert lineage.writes == ("s3://governance-exports", REQUESTS, EVIDENCE)
        assert {"shop.accounts", "shop.orders", "shop.uploads", "s3://shop-uploads"} <= set(lineage.reads)


def test_an_erasure_writes_every_store_its_buckets_the_ledger_bucket_and_the_notices():
    """ERA-1, RET-7, TP-5."""
    writes = set(request_lineage(POLICY, "erasure").writes)
    assert {"shop.accounts", "shop.orders", "shop.uploads", "s3://shop-uploads"} <= writes
    assert {"s3://governance-erasure-ledger", "governance.recipient_outbox", REQUESTS, EVIDENCE} <= writes
    assert request_lineage(POLICY, "account_deletion") == request_lineage(POLICY, "erasure")


def test_a_processing_request_writes_the_register_and_the_switched_off_tables():
    """RES-1 (a person hold), OBJ-1."""
    objection = set(request_lineage(POLICY, "objection").writes)
    assert {"governance.processing_register", "shop.newsletter_subscriptions"} <= objection
    assert HOLDS not in objection and HOLDS in request_lineage(POLICY, "restriction").writes
    assert "shop.orders" not in objection


def test_an_audience_export_writes_the_partners_drop_and_reads_who_may_be_in_it():
    """TP-1: what leaves the shop shows in the catalog; consents, switch-offs and notices decide who."""
    lineage = audience_lineage(POLICY, "meta-customers")
    assert lineage.writes == ("s3://advertising-audiences", "governance.audience_files", EVIDENCE)
    assert {"shop.accounts", "shop.marketing_consents", "governance.processing_register"} <= set(lineage.reads)
    assert "governance.audience_notices" in lineage.reads  # TP-3: told before being sent
    with pytest.raises(KeyError):
        audience_lineage(POLICY, "no-such-audience")


def test_asset_uris_follow_the_providers_naming():
    server = Server("db.internal", 5432, "shop")
    assert server.uri("shop.visits") == "postgres://db.internal:5432/shop/shop/visits"
    assert server.uri("s3://shop-uploads") == "s3://shop-uploads/"


def test_a_unix_socket_host_is_this_machine(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_LINEAGE_SOCKET", '{"conn_type": "postgres", "host": "/var/run/postgresql", "schema": "shop"}'
    )
    assert Server.of("lineage_socket") == Server("localhost", 5432, "shop")


def test_nothing_is_collected_while_openlineage_is_not_configured(monkeypatch):
    """Off by default: without a transport the provider registers no reader, the collector is a
    no-op, and a report neither collects nor needs a connection (none is defined here)."""
    from airflow.providers.openlineage import conf
    from airflow.sdk import lineage as hook_lineage

    from governance_airflow.lineage import enabled, report

    if not conf.is_disabled():
        pytest.skip("OpenLineage is configured in this environment")
    monkeypatch.delenv("AIRFLOW_CONN_GOVERNANCE_DB", raising=False)
    assert not enabled()
    report(sweep_lineage(POLICY, ["visit-data"]))
    assert not hook_lineage.get_hook_lineage_collector().collected_assets.inputs
