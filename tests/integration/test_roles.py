"""SEC-4 on a real PostgreSQL: `governance roles apply` makes one NOLOGIN group role per duty, login
users in each are refused what their duty does not need, and they can do their job: the actual
audit as the auditor, the actual sweep of a rule as the sweeper. A rerun changes nothing; a
privilege granted by hand is revoked."""

from __future__ import annotations

import uuid
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import errors, sql
from psycopg2.extensions import make_dsn, parse_dsn

from governance.audit import run_audit
from governance.audit.rights import load_checks
from governance.cli import main as cli_main
from governance.db import connect
from governance.person import resolve_subject
from governance.person.reading import person_tables, read_counts, read_objects
from governance.person.records import count_records, person_objects
from governance.policy import RoleNames, load_policy
from governance.roles import apply_roles, current_grants
from governance.roles.plan import Grant
from governance.sweep import sweep_rule
from governance_dev.loader import ensure_store_buckets, seed

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
DUTIES = ("sweeper", "auditor", "request_worker", "reviewer")
TAG = f"t{uuid.uuid4().hex[:8]}"
POLICY = load_policy().model_copy(update={"roles": RoleNames(**{d: f"{TAG}_{d}" for d in DUTIES})})


def as_user(db_url: str, user: str) -> str:
    params = parse_dsn(db_url)
    params.update(user=user, password="pw-" + user)
    return make_dsn(**params)


@pytest.fixture(scope="module")
def logins(db_url, s3_endpoint):
    """The roles applied to a seeded shop, and one LOGIN user in each; all dropped afterwards."""
    import requests

    from governance.objectstore import make_client
    from governance.settings import resolve

    requests.post(f"{s3_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    admin = connect(db_url)
    seed(admin, make_client(resolve(None, s3_endpoint)), POLICY, NOW, customers=120, max_objects=30)
    apply_roles(admin, POLICY)
    users = {duty: f"{TAG}_{duty}_login" for duty in DUTIES}
    with admin.cursor() as cur:
        cur.execute("CREATE TABLE shop.suppliers (supplier_id int PRIMARY KEY, contact text)")  # unrelated
        for duty, user in users.items():
            cur.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s IN ROLE {}").format(
                    sql.Identifier(user), sql.Identifier(getattr(POLICY.roles, duty))
                ),
                ("pw-" + user,),
            )
    admin.commit()
    yield {duty: as_user(db_url, user) for duty, user in users.items()}
    admin.rollback()
    with admin.cursor() as cur:
        for role in [*users.values(), *(getattr(POLICY.roles, d) for d in DUTIES)]:
            cur.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(sql.Identifier(role)))
            cur.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            cur.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    admin.commit()
    admin.close()


def refused(url: str, statement: str) -> None:
    """The statement fails with insufficient_privilege (and nothing changes)."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur, pytest.raises(errors.InsufficientPrivilege):
            cur.execute(statement)
    finally:
        conn.rollback()
        conn.close()


def test_roles_are_nologin_groups_and_a_rerun_changes_nothing(logins, db_url):
    admin = connect(db_url)
    try:
        with admin.cursor() as cur:
            names = [getattr(POLICY.roles, d) for d in DUTIES]
            cur.execute("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY(%s)", (names,))
            groups = dict(cur.fetchall())
        assert groups == {getattr(POLICY.roles, d): False for d in DUTIES}
        again = apply_roles(admin, POLICY)
        assert not again.changed, again
    finally:
        admin.close()


def test_a_privilege_no_longer_wanted_is_revoked(logins, db_url):
    auditor = POLICY.roles.auditor
    admin = connect(db_url)
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("GRANT SELECT ON shop.suppliers TO {}").format(sql.Identifier(auditor)))
            cur.execute(sql.SQL("GRANT SELECT (password_hash) ON shop.accounts TO {}").format(sql.Identifier(auditor)))
        admin.commit()
        changes = apply_roles(admin, POLICY)
        assert sorted(changes.revoked[auditor]) == [
            "SELECT ON table shop.suppliers",
            "SELECT(password_hash) ON column shop.accounts",
        ]
        with admin.cursor() as cur:
            have = current_grants(cur, auditor)
        assert Grant("table", "shop.suppliers", "SELECT") not in have
    finally:
        admin.rollback()
        admin.close()


def test_the_auditor_reads_only_the_columns_the_audit_needs_and_cannot_change_anything(logins):
    url = logins["auditor"]
    for statement in (
        # ERA-1: the rights check erased_persons_left.sql scans the personal text columns of every
        # identifiable store for an erased person's address (ids only reach the audit's output), so
        # the auditor reads those; never a hash, nor the unidentifiable visits
        "SELECT password_hash FROM shop.accounts",
        "SELECT * FROM shop.accounts",
        "SELECT ip_address FROM shop.visits",
        "SELECT session_key FROM shop.visits",
        "SELECT contact FROM shop.suppliers",
        "DELETE FROM shop.visits",
        "UPDATE shop.orders SET anonymised_at = now()",
        "UPDATE governance.evidence SET kind = 'x'",
        "DELETE FROM governance.evidence",
        "DELETE FROM governance.legal_holds",
        "DELETE FROM governance.request_contacts",  # RET-9: the audit reads (its addresses, ERA-1), never changes
        "DELETE FROM governance.request_exports",
    ):
        refused(url, statement)


def test_the_auditor_runs_the_actual_audit(logins, s3):
    url = logins["auditor"]
    ensure_store_buckets(s3, POLICY)  # moto is emptied before each test
    conn = connect(url)
    try:
        report = run_audit(conn, s3, POLICY, NOW, f"audit-{TAG}", db_url=url)
    finally:
        conn.close()
    assert report.overdue_total > 0  # the seeded shop straddles every window: the audit found them
    assert {r.rule for r in report.rules} >= {r.id for r in POLICY.rules}
    # the rights checks (ERA-1, TP-5) run as the auditor too: it reads what they read, no more
    assert {r.check for r in report.rights} == {c.id for c in load_checks()} and report.rights


def test_the_reviewer_reads_evidence_and_aggregates_only(logins):
    url = logins["reviewer"]
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM governance.audit_history")
            cur.execute("SELECT count(*) FROM governance.evidence")
            cur.execute("SELECT count(*) FROM governance.verify_evidence()")
            assert cur.fetchone() == (0,)
    finally:
        conn.close()
    for statement in (
        "SELECT count(*) FROM shop.accounts",
        "SELECT count(*) FROM shop.visits",
        "SELECT count(*) FROM governance.legal_holds",
        "SELECT governance.append_evidence('x', 'r', '', '', '{}', now(), '', '{}', '{}')",
        "UPDATE governance.evidence SET kind = 'x'",
    ):
        refused(url, statement)


def test_the_sweeper_sweeps_a_rule_and_drops_partitions_but_cannot_touch_evidence_or_other_tables(logins, s3):
    url = logins["sweeper"]
    conn = connect(url)
    try:
        visits = sweep_rule(conn, s3, POLICY, "visit-data", NOW, f"sweep-{TAG}")
        accounts = sweep_rule(conn, s3, POLICY, "deleted-accounts", NOW, f"sweep-{TAG}")
        contacts = sweep_rule(conn, s3, POLICY, "request-contacts", NOW, f"sweep-{TAG}")  # RET-9, governance schema
        exports = sweep_rule(conn, s3, POLICY, "request-exports", NOW, f"sweep-{TAG}")
    finally:
        conn.close()
    assert visits.partitions_dropped > 0  # the sweeper's role owns shop.visits and its partitions
    assert accounts.deleted > 0 and contacts.deleted > 0 and exports.deleted > 0
    for statement in (
        "UPDATE governance.evidence SET kind = 'x'",
        "DELETE FROM governance.evidence",
        "TRUNCATE governance.evidence",
        "SELECT * FROM shop.suppliers",
        "INSERT INTO governance.legal_holds (scope, rule_id, reason, set_by) VALUES ('rule', 'x', 'r', 's')",
        "CREATE SCHEMA sweeper_owned",
        "UPDATE governance.subject_requests SET opened_by = 'x'",  # the ledger is not the sweeper's
    ):
        refused(url, statement)


def test_the_request_worker_reads_the_stores_and_works_requests_but_changes_no_shop_data(logins):
    """REQ-1 under SEC-4: the request worker opens, verifies and starts a request (ledger, contact,
    evidence), and may not delete a request or touch the shop's data, except the personal columns a
    rectification corrects (REC-1) and what an erasure removes or masks (ERA-1: the next test)."""
    from governance import requests

    url = logins["request_worker"]
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM shop.accounts")
            cur.execute("SELECT count(*) FROM shop.orders")
            # #10: a person's records and objects, through the links' join tables too.
            cur.execute(
                "SELECT o.account_id FROM shop.orders o JOIN shop.order_lines USING (order_id) "
                "JOIN shop.order_line_uploads USING (order_line_id) WHERE o.account_id IS NOT NULL LIMIT 1"
            )
            subject = resolve_subject(cur, POLICY, account_id=cur.fetchone()[0], email=None)
            assert count_records(cur, POLICY, subject)["shop.uploads"] >= 1
            assert list(person_objects(cur, POLICY, subject))
            tables = person_tables(cur, POLICY, subject)  # the export's way: columns, bounded reads
            assert sum(len(list(table.rows)) for table in tables) == sum(read_counts(tables).values()) > 0
            assert list(read_objects(cur, POLICY, subject, tables)) == list(person_objects(cur, POLICY, subject))
            cur.execute("SELECT min(account_id) FROM shop.accounts")
            (account_id,) = cur.fetchone()
        conn.rollback()
        opened = requests.open_request(
            conn, POLICY, kind="access", account_id=account_id, channel="support_tool", opened_by="support", now=NOW
        )
        requests.verify(conn, POLICY, opened.request_id, verified_by="support", method="signed_in_account", now=NOW)
        assert requests.start(conn, POLICY, opened.request_id, now=NOW).state == "in_progress"
        with conn.cursor() as cur:  # #11 REC-1: exactly the columns a rectification may correct
            cur.execute("UPDATE shop.orders SET phone = phone, delivery_street = delivery_street WHERE false")
            cur.execute("UPDATE shop.accounts SET last_name = last_name WHERE false")
            cur.execute("SELECT count(*) FROM governance.recipient_outbox")
            cur.execute("DELETE FROM governance.request_corrections WHERE false")
        conn.rollback()
    finally:
        conn.close()
    for statement in (
        "UPDATE shop.orders SET total_amount = 0 WHERE false",  # not personal data
        "UPDATE shop.orders SET placed_at = now() WHERE false",  # the RET-3 clock: neither corrected nor masked
        "UPDATE shop.accounts SET created_at = now() WHERE false",  # an account's own clock
        "DELETE FROM governance.recipient_outbox",  # a notice is delivered or dead, never deleted (#12)
        "DELETE FROM shop.orders",  # ERA-1: order records are anonymised (RET-8), never deleted
        "DELETE FROM shop.order_lines",  # kept with their anonymised order
        "DELETE FROM shop.visits",  # no request reaches a visit (unidentifiable)
        "SELECT * FROM shop.suppliers",
        "UPDATE governance.evidence SET kind = 'x'",
        "DELETE FROM governance.subject_requests",  # (an erasure deletes a closed request's contact: ERA-1)
    ):
        refused(url, statement)


def test_the_request_worker_rectifies_with_its_notices(logins, monkeypatch):
    """REC-1 and TP-5 under SEC-4: a rectification (the UPDATE, the outbox, the evidence, the
    corrections' removal) runs entirely in the request worker's role."""
    from governance import requests
    from governance.notices import PSEUDONYM_KEY_ENV
    from governance.requests.corrections import record_corrections
    from governance.requests.rectification import answer_rectification

    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "roles-test-pseudonym-key-0123456789abcdef")
    conn = connect(logins["request_worker"])
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT max(account_id) FROM shop.accounts WHERE deleted_at IS NULL")
            (account_id,) = cur.fetchone()
        conn.rollback()
        opened = requests.open_request(
            conn, POLICY, kind="rectification", account_id=account_id, channel="web_form", opened_by="web", now=NOW
        )
        requests.verify(conn, POLICY, opened.request_id, verified_by="support", method="signed_in_account", now=NOW)
        record_corrections(conn, POLICY, opened.request_id, {"shop.accounts": {"last_name": "Berg"}}, now=NOW)
        done = answer_rectification(conn, POLICY, opened.request_id, now=NOW)
        assert done.state == "completed" and done.outcome["rows_rectified"] == 1 and done.outcome["notices"] == 3
    finally:
        conn.close()


def test_the_request_worker_answers_and_lifts_a_restriction(logins, monkeypatch):
    """RES-1 under SEC-4: the register, the switched-off columns, the person holds and their lifting
    run entirely in the request worker's role; other columns of those tables stay out of reach."""
    from governance import requests
    from governance.notices import PSEUDONYM_KEY_ENV
    from governance.processing import lift_restriction, switch_off

    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "roles-test-pseudonym-key-0123456789abcdef")
    url = logins["request_worker"]
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT min(account_id) FROM shop.accounts WHERE deleted_at IS NULL")
            (account_id,) = cur.fetchone()
        conn.rollback()
        opened = requests.open_request(
            conn, POLICY, kind="restriction", account_id=account_id, channel="web_form", opened_by="web", now=NOW
        )
        requests.verify(conn, POLICY, opened.request_id, verified_by="support", method="signed_in_account", now=NOW)
        done = switch_off(conn, POLICY, opened.request_id, now=NOW)
        assert done.state == "completed" and done.outcome["holds_added"] >= 1
        lifted = lift_restriction(conn, POLICY, opened.request_id, by="dpo", now=NOW)
        assert lifted.holds == done.outcome["holds_added"]
    finally:
        conn.close()
    for statement in (
        "UPDATE shop.cookie_preferences SET given_at = now() WHERE false",  # not a switch_off column
        "UPDATE governance.legal_holds SET reason = 'x' WHERE false",  # a hold's reason never changes
        "DELETE FROM governance.processing_register",
        "DELETE FROM governance.legal_holds",
    ):
        refused(url, statement)


def _verified(conn, kind: str, account_id: int, **extra) -> int:
    from governance import requests

    opened = requests.open_request(
        conn, POLICY, kind=kind, account_id=account_id, channel="web_form", opened_by="web", now=NOW, **extra
    )
    requests.verify(conn, POLICY, opened.request_id, verified_by="support", method="signed_in_account", now=NOW)
    return opened.request_id


def test_the_request_worker_erases_and_deletes_accounts_with_their_notices(logins, s3, monkeypatch):
    """ERA-1, RET-7, TP-5 under SEC-4: an erasure (deletes, RET-8 anonymisation, object purges, the
    independent check, the notices) and an account deletion keeping the account (marked deleted) run
    entirely in the request worker's role; what it may change comes from the erasure's plan."""
    from governance.erasure import answer_erasure
    from governance.notices import PSEUDONYM_KEY_ENV

    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "roles-test-pseudonym-key-0123456789abcdef")
    conn = connect(logins["request_worker"])
    try:
        with conn.cursor() as cur:  # two accounts with orders and photos, not yet deleted
            cur.execute(
                "SELECT a.account_id FROM shop.accounts a WHERE a.deleted_at IS NULL AND EXISTS "
                "(SELECT 1 FROM shop.orders o WHERE o.account_id = a.account_id AND o.anonymised_at IS NULL) "
                "AND EXISTS (SELECT 1 FROM shop.uploads u WHERE u.account_id = a.account_id) ORDER BY 1 LIMIT 2"
            )
            erased, deleting = (row[0] for row in cur.fetchall())
        conn.rollback()
        outcome = answer_erasure(conn, s3, POLICY, _verified(conn, "erasure", erased), now=NOW)
        assert outcome["shop.accounts.deleted"] == 1 and outcome["check.objects_left"] == 0 and outcome["notices"] > 0
        keep_account = {"CAT-2": "keep", "CAT-3": "delete", "CAT-4": "delete", "CAT-5": "delete", "CAT-6": "delete"}
        rid = _verified(conn, "account_deletion", deleting, choices=keep_account)
        outcome = answer_erasure(conn, s3, POLICY, rid, now=NOW)
        assert outcome["shop.accounts.marked_deleted"] == 1
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM shop.accounts WHERE account_id = %s", (erased,))
            assert cur.fetchone()[0] == 0
            cur.execute("SELECT deleted_at FROM shop.accounts WHERE account_id = %s", (deleting,))
            assert cur.fetchone()[0] == NOW
        conn.rollback()
    finally:
        conn.close()


def test_the_cli_applies_and_reports_nothing_to_change(logins, db_url, tmp_path, capsys):
    policy_file = tmp_path / "policy.yaml"
    text = Path(load_policy().source_path).read_text()
    for duty in DUTIES:
        text = text.replace(f"  {duty}: governance_{duty}", f"  {duty}: {TAG}_{duty}")
    policy_file.write_text(text)
    assert cli_main(["roles", "apply", "--db-url", db_url, "--policy", str(policy_file)]) == 0
    assert "nothing changed" in capsys.readouterr().out


def test_the_audit_dag_connects_as_the_auditor_when_its_connection_is_defined(logins, db_url, monkeypatch):
    """SEC-4 in Airflow: `governance_db_audit` (a login in the auditor role) is what the audit task
    opens when it exists; without it the audit falls back to `governance_db`."""
    import json

    import governance_airflow

    params = parse_dsn(db_url)
    base = {"conn_type": "postgres", "host": params.get("host", "127.0.0.1"), "port": int(params.get("port", 5432))}
    base["schema"] = params["dbname"]
    monkeypatch.setenv("AIRFLOW_CONN_GOVERNANCE_DB", json.dumps({**base, "login": params.get("user", "postgres")}))
    monkeypatch.delenv("AIRFLOW_CONN_GOVERNANCE_DB_AUDIT", raising=False)
    assert governance_airflow.audit_conn_id() == "governance_db"
    auditor = f"{TAG}_auditor_login"
    monkeypatch.setenv(
        "AIRFLOW_CONN_GOVERNANCE_DB_AUDIT", json.dumps({**base, "login": auditor, "password": "pw-" + auditor})
    )
    conn_id = governance_airflow.audit_conn_id()
    assert conn_id == "governance_db_audit"
    with closing(governance_airflow.db_connection(conn_id)) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_user")
        assert cur.fetchone()[0] == auditor
        with pytest.raises(errors.InsufficientPrivilege):
            cur.execute("SELECT password_hash FROM shop.accounts LIMIT 1")
    assert f"user={auditor}" in governance_airflow.db_dsn(conn_id)
