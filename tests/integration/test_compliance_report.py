"""The period report (#13, ``governance report``; "What proof means here"): over two days of real
sweeps and audits on a seeded shop, the report's figures are the evidence's (summed here by the
test's own SQL, and equal to the effects the shop was built to have), the JSON validates against the
shipped schema (and a broken one does not), the PDF opens with the head hash, the rule ids and the
charts, and bad flags get a clear error naming the flag.

The evidence records the wall clock (``clock_timestamp()``), so "yesterday" is made by moving the
first day's entries back one day and re-chaining them, as a superuser on the test's own database
(the chain still verifies: the report's verification says intact).
"""

from __future__ import annotations

import copy
import io
import json
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest
from pypdf import PdfReader

from governance.cli import main
from governance.compliance import report as period_report
from governance.policy import load_policy
from governance_dev.loader import ensure_store_buckets
from governance_dev.reference import Snapshot
from tests.integration.test_audit_properties import empty_shop, insert_snapshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WALL = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)
NOW2 = WALL
NOW1 = WALL - timedelta(days=1)
DAY1, DAY2 = NOW1.date(), NOW2.date()


@pytest.fixture(autouse=True)
def no_ambient_settings(monkeypatch):
    for name in ("GOVERNANCE_DB_URL", "GOVERNANCE_S3_ENDPOINT_URL", "GOVERNANCE_POLICY"):
        monkeypatch.delenv(name, raising=False)


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def last_entry_id(conn) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT coalesce(max(entry_id), 0) FROM governance.evidence")
        (value,) = cur.fetchone()
    conn.commit()
    return int(value)


def backdate_since(conn, marker: int) -> None:
    """Move the entries after ``marker`` back one day and re-chain them (test-only time travel)."""
    with conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")
        cur.execute(
            "UPDATE governance.evidence SET recorded_at = recorded_at - interval '1 day' WHERE entry_id > %s",
            (marker,),
        )
        cur.execute(f"""
            DO $$ DECLARE r record; prev text; BEGIN
              SELECT coalesce((SELECT entry_hash FROM governance.evidence WHERE entry_id <= {int(marker)}
                               ORDER BY entry_id DESC LIMIT 1), repeat('0', 64)) INTO prev;
              FOR r IN SELECT * FROM governance.evidence WHERE entry_id > {int(marker)} ORDER BY entry_id LOOP
                UPDATE governance.evidence SET prev_hash = prev, entry_hash = encode(sha256(convert_to(prev ||
                    governance.evidence_payload(r.recorded_at, r.kind, r.run_id, r.rule_id, r.step, r.requirements,
                    r.as_of, r.policy_version, r.counts, r.details), 'UTF8')), 'hex')
                WHERE entry_id = r.entry_id RETURNING entry_hash INTO prev;
              END LOOP;
              UPDATE governance.evidence_head SET last_hash = prev,
                     last_entry_id = (SELECT max(entry_id) FROM governance.evidence) WHERE singleton;
            END $$""")
        cur.execute("SET session_replication_role = DEFAULT")
    conn.commit()


# The test's own sum of the evidence: per UTC day and rule, each sweep run's last 'sweep_rule'
# summary (summaries are cumulative within a run).
EVIDENCE_SUMS = """
SELECT (e.recorded_at AT TIME ZONE 'UTC')::date::text, e.rule_id,
       sum((e.counts ->> 'deleted')::bigint), sum((e.counts ->> 'held')::bigint), count(*)
FROM governance.evidence e
WHERE e.kind = 'sweep_rule' AND e.recorded_at >= %s AND e.recorded_at < %s
  AND e.entry_id IN (SELECT max(entry_id) FROM governance.evidence WHERE kind = 'sweep_rule' GROUP BY run_id, rule_id)
GROUP BY 1, 2 HAVING sum((e.counts ->> 'deleted')::bigint) > 0 OR sum((e.counts ->> 'held')::bigint) > 0
ORDER BY 1, 2
"""


@pytest.fixture(scope="module")
def two_days(db_url, s3_endpoint, tmp_path_factory):
    """A shop swept and audited on two days: visit-data removes 2 on day 1 and 1 on day 2, with one
    overdue visit under a legal hold both days. Returns the CLI's common flags and the report files."""
    from governance.db import connect
    from governance.objectstore import make_client
    from governance.settings import resolve

    s3 = make_client(resolve(None, s3_endpoint))
    conn = connect(db_url)
    empty_shop(conn)
    insert_snapshot(
        conn,
        Snapshot(
            visits=[
                {"visit_id": 1, "last_activity_at": NOW1 - timedelta(hours=25)},
                {"visit_id": 2, "last_activity_at": NOW1 - timedelta(hours=30)},  # held
                {"visit_id": 3, "last_activity_at": NOW1 - timedelta(hours=2)},  # expires on day 2
                {"visit_id": 4, "last_activity_at": NOW2 - timedelta(hours=1)},
                {"visit_id": 5, "last_activity_at": NOW1 - timedelta(hours=40)},
            ],
            legal_holds=[
                {"scope": "record", "table_name": "shop.visits", "record_key": "2", "set_at": NOW1 - timedelta(days=3)}
            ],
        ),
    )
    ensure_store_buckets(s3, load_policy())
    base = ["--db-url", db_url, "--s3-endpoint-url", s3_endpoint]
    marker = last_entry_id(conn)
    for step in (
        ["audit", "--run-id", "d1-audit-1"],
        ["sweep", "--run-id", "d1-sweep"],
        ["audit", "--run-id", "d1-audit-2"],
    ):
        main([*step, *base, "--now", NOW1.isoformat()])
    backdate_since(conn, marker)
    for step in (
        ["audit", "--run-id", "d2-audit-1"],
        ["sweep", "--run-id", "d2-sweep"],
        ["audit", "--run-id", "d2-audit-2"],
    ):
        main([*step, *base, "--now", NOW2.isoformat()])
    out = tmp_path_factory.mktemp("report")
    files = {}
    for fmt in ("json", "html", "pdf"):
        files[fmt] = out / f"report.{fmt}"
        code = main(
            [
                "report",
                *base,
                "--from",
                DAY1.isoformat(),
                "--to",
                DAY2.isoformat(),
                "--format",
                fmt,
                "--out",
                str(files[fmt]),
            ]
        )
        assert code == 0, fmt
    yield {"conn": conn, "base": base, "files": files, "db_url": db_url}
    conn.close()


def test_the_reports_figures_are_the_evidences(two_days):
    data = json.loads(two_days["files"]["json"].read_text())
    conn = two_days["conn"]
    period = period_report.Period(DAY1, DAY2)
    with conn.cursor() as cur:
        cur.execute(EVIDENCE_SUMS, (period.start, period.end))
        summed = [(day, rule, int(d), int(h), int(n)) for day, rule, d, h, n in cur.fetchall()]
    conn.commit()
    # what the shop was built to have: 2 removed and 1 held on day 1, 1 removed and 1 held on day 2
    assert summed == [(DAY1.isoformat(), "visit-data", 2, 1, 1), (DAY2.isoformat(), "visit-data", 1, 1, 1)]
    reported = [
        (d["day"], d["rule_id"], d["removed"], d["held"], d["runs"])
        for d in data["daily_effects"]
        if d["removed"] or d["held"]
    ]
    assert reported == summed
    visits = next(r for r in data["rules"] if r["rule_id"] == "visit-data")
    assert (visits["removed"], visits["held"], visits["sweep_runs"]) == (3, 2, 2)
    assert (visits["audits"], visits["audits_overdue"], visits["max_overdue"], visits["last_overdue"]) == (4, 2, 2, 0)
    assert data["summary"]["removed"] == 3 and data["summary"]["audits"] == 4
    audits = [(a["run_id"], a["overdue_total"], a["ok"]) for a in data["audits"]]
    assert audits == [
        ("d1-audit-1", 2, False),
        ("d1-audit-2", 0, True),
        ("d2-audit-1", 1, False),
        ("d2-audit-2", 0, True),
    ]
    assert data["holds"]["in_force"] and data["holds"]["in_force"][0]["table_name"] == "shop.visits"
    policy = load_policy()
    assert data["policy"]["file_sha256"] == policy.version and policy.version in data["policy"]["versions_in_evidence"]
    verification = data["evidence"]["verification"]
    assert verification["ok"] and verification["by"] == "governance report"
    with conn.cursor() as cur:  # the report's verification is itself evidence, covering what it says
        cur.execute(
            "SELECT counts, details FROM governance.evidence WHERE kind = 'evidence_verified' "
            "AND details ->> 'head_hash' = %s",
            (verification["head_hash"],),
        )
        ((counts, details),) = cur.fetchall()
    conn.commit()
    assert details["head_hash"] == verification["head_hash"] and counts["entries"] == verification["entries"]


def test_the_json_validates_against_the_shipped_schema_and_a_broken_one_does_not(two_days):
    data = json.loads(two_days["files"]["json"].read_text())
    schema = json.loads(period_report.SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(data)
    for breaking in (
        lambda d: d["rules"][0].update(email="someone@example.com"),  # additionalProperties false
        lambda d: d["evidence"].update(head_hash="not-a-hash"),
        lambda d: d["summary"].update(removed=-1),
        lambda d: d.pop("period"),
        lambda d: d["daily_effects"][0].update(day="yesterday"),
    ):
        broken = copy.deepcopy(data)
        breaking(broken)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(broken)
        with pytest.raises(period_report.ReportError, match="report.schema.json"):
            period_report.validate(broken)


def test_the_pdf_opens_with_the_head_hash_the_rule_ids_and_the_charts(two_days):
    data = json.loads(two_days["files"]["json"].read_text())  # same period, policy and rules
    reader = PdfReader(io.BytesIO(two_days["files"]["pdf"].read_bytes()))
    assert len(reader.pages) > 0
    text = "".join(page.extract_text() for page in reader.pages)
    flat = "".join(text.split())
    conn = two_days["conn"]
    with conn.cursor() as cur:  # the PDF was the last report made: its verification is the last one
        cur.execute(
            "SELECT details ->> 'head_hash' FROM governance.evidence WHERE kind = 'evidence_verified' "
            "ORDER BY entry_id DESC LIMIT 1"
        )
        (verified_head,) = cur.fetchone()
    conn.commit()
    assert f"{verified_head}" in flat and "verified,intact" in flat
    assert data["policy"]["file_sha256"] in flat
    for rule in load_policy().rules:
        assert rule.id in flat, rule.id
    # the charts: drawn as vector forms (inline SVG), with their titles and legends as text
    forms = sum(
        1
        for page in reader.pages
        for xobject in (page["/Resources"].get("/XObject") or {}).values()
        if xobject.get_object().get("/Subtype") == "/Form"
    )
    assert forms >= 3
    for label in ("Sweep effects per day (UTC)", "Overdue per audit", "Requests per kind"):
        assert "".join(label.split()) in flat, label


def test_the_html_has_the_charts_inline_and_nothing_from_the_network(two_days):
    html = two_days["files"]["html"].read_text()
    assert html.count("<svg") >= 3 and "visit-data" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        'xmlns:xlink="http://www.w3.org/1999/xlink"', ""
    )
    assert "https://" not in html


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--from", "2026-11-30", "--to", "2026-11-01"], "--from 2026-11-30 is after --to 2026-11-01"),
        (["--from", "30.11.2026", "--to", "2026-12-01"], "--from '30.11.2026' is not a date"),
        (["--from", "2026-11-01", "--to", "yesterday"], "--to 'yesterday' is not a date"),
        (["--from", "2025-01-01", "--to", "2026-11-01"], "a report covers at most 366"),
        (
            ["--from", "2026-11-01", "--to", "2026-11-01", "--format", "xml"],
            "--format 'xml' is not one of html, pdf, json",
        ),
    ],
)
def test_bad_flags_are_named_with_exit_code_2(capsys, flags, named):
    # no database is needed to refuse them: they fail before any connection
    code, out, err = cli(capsys, "report", "--db-url", "postgresql://nowhere.invalid/x", *flags)
    assert code == 2 and named in err and not out


def test_a_broken_chain_is_reported_as_broken_with_exit_code_5(two_days, tmp_path, capsys):
    """Last in this module: it breaks the module's chain (an entry rewritten behind the triggers)."""
    conn = two_days["conn"]
    with conn.cursor() as cur:
        cur.execute("SET session_replication_role = replica")
        cur.execute(
            "UPDATE governance.evidence SET counts = jsonb_set(counts, '{deleted}', '0') WHERE entry_id = "
            "(SELECT min(entry_id) FROM governance.evidence WHERE kind = 'sweep_rule' AND run_id = 'd1-sweep')"
        )
        cur.execute("SET session_replication_role = DEFAULT")
    conn.commit()
    out = tmp_path / "broken.json"
    day = DAY1.isoformat()
    code, _, err = cli(
        capsys, "report", *two_days["base"], "--from", day, "--to", day, "--format", "json", "--out", str(out)
    )
    assert code == 5 and "BROKEN" in err
    verification = json.loads(out.read_text())["evidence"]["verification"]
    assert verification["ok"] is False
    assert any("entry_hash does not match its content" in p["problem"] for p in verification["problems"])
