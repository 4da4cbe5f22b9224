"""The audit's rights check ``objectors-excluded`` (#11 item 7; TP-1, MKT-1, OBJ-1, CON-1, RES-1): no
person who objected, withdrew or is restricted is in an advertising audience file or still
subscribed. Run by the audit itself (``run_audit``, ``governance audit``): its preparer reads the
files back from the object store (real S3 over HTTP) and the check must find planted violations (a
file listing an objector's hash, a file listing someone without consent, a stored file whose
object is gone, an active newsletter subscription of a person who objected by address) with the
CLI exiting 1; and pass on an honest export. Findings name ids only.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from governance.audiences import export_audience, tell
from governance.audit import run_audit
from governance.audit.predicates import audit_parameters
from governance.audit.rendering import render_markers
from governance.audit.rights import PREPARERS, load_checks
from governance.breach.mail import SmtpServer
from governance.cli import main
from governance.db import transaction
from governance.objectstore import ensure_bucket
from governance.policy import load_policy
from governance_dev.loader import ensure_store_buckets
from tests.integration import audience_support as aus

pytestmark = [pytest.mark.integration]

POLICY = load_policy()
AUDIENCE = POLICY.audience("meta-customers")
NOW = datetime(2026, 10, 1, 6, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=AUDIENCE.notice_days)
AUDITED = LATER + timedelta(hours=1)
CHECK = "objectors-excluded"


@pytest.fixture
def db_url(make_database):
    return make_database()


@pytest.fixture
def exported(conn, s3, smtp_inbox):
    settings = json.loads(os.environ["AIRFLOW_CONN_GOVERNANCE_SMTP"])
    ensure_bucket(s3, aus.BUCKET)
    ensure_store_buckets(s3, POLICY)  # every bucket the audit lists
    shop = aus.seed(conn, NOW)
    aus.switch_off(conn, POLICY, NOW, effect="objected", account_id=shop.accounts["objects_by_account"])
    tell(conn, SmtpServer(host=settings["host"], port=settings["port"]), POLICY, AUDIENCE, now=NOW, run_id="r")
    return shop, export_audience(conn, s3, POLICY, AUDIENCE, now=LATER)


def audited(conn, s3, db_url, run_id: str, now: datetime = AUDITED) -> int:
    """The check's findings in a recorded audit; its evidence says the same."""
    report = run_audit(conn, s3, POLICY, now, run_id, db_url=db_url)
    found = {r.check: r for r in report.rights}[CHECK]
    assert found.requirements == ["TP-1", "MKT-1", "OBJ-1", "CON-1", "RES-1"]
    with conn.cursor() as cur:
        cur.execute(
            "SELECT (counts->>'findings')::int FROM governance.evidence "
            "WHERE kind = 'audit_rights' AND run_id = %s AND rule_id = %s",
            (run_id, CHECK),
        )
        assert cur.fetchall() == [(found.findings,)]
    conn.rollback()
    return found.findings


def record_ids(conn, s3, now: datetime = AUDITED) -> set[str]:
    """The check's rows, as the audit evaluates them (its preparer, then its SQL): ids only."""
    check = next(c for c in load_checks() if c.id == CHECK)
    with transaction(conn) as cur:
        PREPARERS[check.file].declare(cur)
        PREPARERS[check.file].load(cur, s3)
        cur.execute(render_markers(cur, POLICY, check.file, check.text), audit_parameters(POLICY, now))
        rows = cur.fetchall()
    assert {r[0] for r in rows} <= {CHECK}
    return {r[1] for r in rows}


def test_an_honest_export_passes(conn, s3, db_url, exported):
    assert record_ids(conn, s3) == set()
    assert audited(conn, s3, db_url, "honest") == 0


def test_a_file_listing_an_objector_or_someone_without_consent_fails_the_audit(
    conn, s3, db_url, s3_url, exported, capsys
):
    shop, file = exported
    # An objection in force before the file was made, which the file ignores (a broken export).
    aus.switch_off(conn, POLICY, LATER - timedelta(days=1), effect="objected", address=shop.address("also_consents"))
    # And someone who never consented, written into the file by hand.
    body = s3.get_object(Bucket=aus.BUCKET, Key=file.object_key)["Body"].read()
    body += (aus.pseudonym(shop.address("never_consented")) + "\n").encode()
    s3.put_object(Bucket=aus.BUCKET, Key=file.object_key, Body=body)

    assert record_ids(conn, s3) == {
        f"audience-file:{file.file_id}:objected",
        f"audience-file:{file.file_id}:unconsented",
    }
    now_arg = AUDITED.isoformat()
    code = main(["audit", "--json", "--db-url", db_url, "--s3-endpoint-url", s3_url, "--now", now_arg])
    out, err = capsys.readouterr()
    assert code == 1, err
    assert {r["check"]: r["findings"] for r in json.loads(out)["rights"]}[CHECK] == 2
    assert f"rights check {CHECK} (TP-1, MKT-1, OBJ-1, CON-1, RES-1): 2 findings" in err
    assert "@" not in out + err and all(aus.pseudonym(a) not in out + err for a, _, _ in aus.PEOPLE.values())


def test_a_stored_file_whose_object_is_gone_is_a_finding(conn, s3, db_url, exported):
    _, file = exported
    s3.delete_object(Bucket=aus.BUCKET, Key=file.object_key)
    assert record_ids(conn, s3) == {f"audience-file:{file.file_id}:missing"}
    assert audited(conn, s3, db_url, "missing") == 1


def test_an_objection_after_the_file_was_made_is_not_the_files_fault(conn, s3, db_url, exported):
    shop, _ = exported
    aus.switch_off(conn, POLICY, LATER + timedelta(hours=1), effect="objected", address=shop.address("consents"))
    assert audited(conn, s3, db_url, "later", now=LATER + timedelta(hours=2)) == 0


def test_an_active_subscription_of_an_objector_is_found(conn, s3, db_url, exported):
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO shop.newsletter_subscriptions (email, subscribed_at) VALUES (%s, %s), (%s, %s) "
            "RETURNING subscription_id",
            ("SIRI.dahl@example.no", NOW, "per.olsen@example.no", NOW),
        )
        planted, _other = (r[0] for r in cur.fetchall())
    conn.commit()
    # The newsletter purpose is the policy's: the one whose switch_off names the subscriptions.
    aus.switch_off(conn, POLICY, LATER, effect="objected", address="siri.dahl@example.no", purpose="newsletter")
    assert record_ids(conn, s3) == {f"subscription:{planted}"}, "a subscriber who did not object is no finding"
    assert audited(conn, s3, db_url, "subscribed") == 1
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE shop.newsletter_subscriptions SET unsubscribed_at = %s WHERE subscription_id = %s", (LATER, planted)
        )
    conn.commit()
    assert audited(conn, s3, db_url, "unsubscribed") == 0, "ended: passes"


def test_hashes_in_the_file_are_what_the_check_compares(conn, s3, exported):
    shop, file = exported
    lines = aus.lines(s3, file.object_key)
    assert hashlib.sha256(b"per.olsen@example.no").hexdigest() in lines
