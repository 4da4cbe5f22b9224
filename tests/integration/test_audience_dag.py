"""The advertising_audience DAG (TP-1, TP-3; MKT-1, OBJ-1, CON-1, RES-1) through Airflow's own
dag.test(): real PostgreSQL, moto's S3 server over HTTP, a real SMTP server (aiosmtpd).

The first run tells the consenting persons and exports an empty file (nobody told long enough);
a run ``notice_days`` later exports them; an objection in force by then leaves the objector out.
A rerun of a run overwrites the same key and adds no evidence; XComs carry counts only.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from governance.audiences import keys
from governance.objectstore import ensure_bucket
from governance.policy import load_policy
from tests.integration import audience_support as aus
from tests.integration import request_support as rs
from tests.integration.test_subject_requests_dag import states

pytestmark = [pytest.mark.integration, pytest.mark.slow]

POLICY = load_policy()
AUDIENCE = POLICY.audience("meta-customers")
NOW = datetime(2026, 11, 1, 5, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=AUDIENCE.notice_days)


@pytest.fixture
def db_url(make_database):
    return make_database()


@pytest.fixture
def dag(airflow_home, airflow_connections, smtp_inbox):
    return rs.loaded_dag("advertising_audience")


def xcoms(run) -> dict[str, list]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(
            XComModel.get_many(run_id=run.run_id, key="return_value", dag_ids="advertising_audience")
        )
        found: dict[str, list] = {}
        for row in rows:
            found.setdefault(row.task_id, []).append(XComModel.deserialize_value(row))
        return found


def evidence_count(conn) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM governance.evidence WHERE kind LIKE 'audience_%%'")
        count = cur.fetchone()[0]
    conn.rollback()
    return count


def test_the_dag_tells_first_then_exports_and_leaves_out_an_objector(dag, conn, s3, smtp_inbox):
    ensure_bucket(s3, aus.BUCKET)
    shop = aus.seed(conn, NOW)
    first = dag.test(logical_date=NOW)
    assert str(first.state) == "success", states(first)
    assert len(smtp_inbox) == 6, "the six consenting, live accounts are told"
    assert aus.lines(s3, keys(AUDIENCE, NOW)[0]) == ["email"], "nobody told long enough yet"

    aus.switch_off(conn, POLICY, LATER - timedelta(days=1), effect="objected", address=shop.address("consents"))
    second = dag.test(logical_date=LATER)
    assert str(second.state) == "success", states(second)
    listed = aus.lines(s3, keys(AUDIENCE, LATER)[0])
    assert aus.pseudonym(shop.address("consents")) not in listed and len(listed) == 1 + 5
    assert aus.pseudonym(shop.address("also_consents")) in listed

    pushed = xcoms(second)
    assert pushed["notify"] == [{"audience": AUDIENCE.id, "told": 0, "refused": 0}]
    (exported,) = pushed["export"]
    assert exported["persons"] == 5 and exported["excluded"]["objected"] == 1
    text = json.dumps([xcoms(first), pushed]).lower()
    assert "@" not in text and "audiences/" not in text
    assert not any(aus.pseudonym(a) in text for a, _, _ in aus.PEOPLE.values())

    before = evidence_count(conn)
    again = dag.test(logical_date=LATER)  # the same run again
    assert str(again.state) == "success", states(again)
    assert evidence_count(conn) == before and len(smtp_inbox) == 6
    assert aus.lines(s3, keys(AUDIENCE, LATER)[0]) == listed
