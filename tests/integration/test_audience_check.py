"""The audit's rights check (#11 item 7; TP-1, MKT-1, OBJ-1, CON-1, RES-1): no person who objected,
withdrew or is restricted is in an advertising audience file or still subscribed. It reads the
files back from the object store (real S3 over HTTP) and must find planted violations: a file that
lists an objector's hash, a file that lists someone without consent, an active newsletter
subscription of a person who objected by address; and pass on an honest export.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from governance.audiences import export_audience, tell
from governance.audit.audience_check import check_objectors_excluded
from governance.breach.mail import SmtpServer
from governance.objectstore import ensure_bucket
from governance.policy import load_policy
from tests.integration import audience_support as aus

pytestmark = [pytest.mark.integration]

POLICY = load_policy()
AUDIENCE = POLICY.audience("meta-customers")
NOW = datetime(2026, 10, 1, 6, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=AUDIENCE.notice_days)


@pytest.fixture
def db_url(make_database):
    return make_database()


@pytest.fixture
def exported(conn, s3, smtp_inbox):
    settings = json.loads(os.environ["AIRFLOW_CONN_GOVERNANCE_SMTP"])
    ensure_bucket(s3, aus.BUCKET)
    shop = aus.seed(conn, NOW)
    aus.switch_off(conn, POLICY, NOW, effect="objected", account_id=shop.accounts["objects_by_account"])
    tell(conn, SmtpServer(host=settings["host"], port=settings["port"]), POLICY, AUDIENCE, now=NOW, run_id="r")
    return shop, export_audience(conn, s3, POLICY, AUDIENCE, now=LATER)


def test_an_honest_export_passes(conn, s3, exported):
    result = check_objectors_excluded(conn, s3, POLICY, now=LATER + timedelta(hours=1))
    assert result.passed and result.files_read == 1, result.counts()


def test_a_file_listing_an_objector_or_someone_without_consent_is_found(conn, s3, exported):
    shop, file = exported
    # An objection in force before the file was made, which the file ignores (a broken export).
    aus.switch_off(conn, POLICY, LATER - timedelta(days=1), effect="objected", address=shop.address("also_consents"))
    # And someone who never consented, written into the file by hand.
    body = s3.get_object(Bucket=aus.BUCKET, Key=file.object_key)["Body"].read()
    body += (aus.pseudonym(shop.address("never_consented")) + "\n").encode()
    s3.put_object(Bucket=aus.BUCKET, Key=file.object_key, Body=body)

    result = check_objectors_excluded(conn, s3, POLICY, now=LATER + timedelta(hours=1))
    assert not result.passed
    found = {(f.check_id, f.record_id, f.offending) for f in result.findings}
    assert found == {("objectors-in-audience", file.file_id, 1), ("unconsented-in-audience", file.file_id, 1)}
    counts = json.dumps(result.counts())
    assert "@" not in counts and all(aus.pseudonym(a) not in counts for a, _, _ in aus.PEOPLE.values())


def test_an_objection_after_the_file_was_made_is_not_the_files_fault(conn, s3, exported):
    shop, _ = exported
    aus.switch_off(conn, POLICY, LATER + timedelta(hours=1), effect="objected", address=shop.address("consents"))
    assert check_objectors_excluded(conn, s3, POLICY, now=LATER + timedelta(hours=2)).passed


def test_an_active_subscription_of_an_objector_is_found(conn, s3, exported):
    shop, _ = exported
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO shop.newsletter_subscriptions (email, subscribed_at) VALUES (%s, %s), (%s, %s) "
            "RETURNING subscription_id",
            ("SIRI.dahl@example.no", NOW, "per.olsen@example.no", NOW),
        )
        planted, other = (r[0] for r in cur.fetchall())
    conn.commit()
    aus.switch_off(conn, POLICY, LATER, effect="objected", address="siri.dahl@example.no", purpose="newsletter")
    result = check_objectors_excluded(conn, s3, POLICY, now=LATER + timedelta(hours=1))
    assert [(f.check_id, f.record_id) for f in result.findings] == [("objectors-subscribed", planted)]
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE shop.newsletter_subscriptions SET unsubscribed_at = %s WHERE subscription_id = %s", (LATER, planted)
        )
    conn.commit()
    assert check_objectors_excluded(conn, s3, POLICY, now=LATER + timedelta(hours=1)).passed, "ended: passes"
    assert other not in {f.record_id for f in result.findings}, "a subscriber who did not object is no finding"


def test_hashes_in_the_file_are_what_the_check_compares(conn, s3, exported):
    shop, file = exported
    lines = aus.lines(s3, file.object_key)
    assert hashlib.sha256(b"per.olsen@example.no").hexdigest() in lines
