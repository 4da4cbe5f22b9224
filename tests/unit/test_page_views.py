"""The Governance page's pure helpers (#13, ``governance_airflow.api.views``): links from evidence
run ids to Airflow's DAG-run pages, and the period of ``?from=&to=`` with errors naming the field."""

from __future__ import annotations

from datetime import date

import pytest
from fastapi import HTTPException
from starlette.requests import Request

from governance_airflow.api import cells, views


def request(query: str = "", root_path: str = "/governance") -> Request:
    return Request({"type": "http", "query_string": query.encode(), "root_path": root_path, "headers": []})


@pytest.mark.parametrize(
    ("run_id", "link"),
    [
        (
            "retention_sweep/scheduled__2026-11-25T12:00:00+00:00",
            "/dags/retention_sweep/runs/scheduled__2026-11-25T12%3A00%3A00%2B00%3A00",
        ),
        (
            "retention_audit/manual__2026-11-25T12:00:00+00:00",
            "/dags/retention_audit/runs/manual__2026-11-25T12%3A00%3A00%2B00%3A00",
        ),
        ("cli-sweep-1", None),  # a run from the command line: no DAG run
        ("now-override/run", None),  # not a DAG id
        (None, None),
    ],
)
def test_run_links_go_to_the_dag_run(run_id, link):
    assert cells.run_link(request(), run_id) == link


def test_run_links_keep_airflow_s_base_path():
    assert cells.run_link(request(root_path="/airflow/governance"), "retention_sweep/r1") == (
        "/airflow/dags/retention_sweep/runs/r1"
    )


def test_the_period_defaults_and_bounds():
    today = date(2026, 12, 2)
    chosen = views.period(request(), "history", today)
    assert (chosen.first, chosen.last, len(chosen.days)) == (date(2026, 11, 19), today, 14)
    assert views.period(request("from=2026-01-01&to=2026-01-31"), "history", today).days[-1] == date(2026, 1, 31)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=soon", "'from' must be a day as YYYY-MM-DD"),
        ("to=2026-13-01", "'to' must be a day as YYYY-MM-DD"),
        ("from=2026-02-01&to=2026-01-01", "'from' must not be after 'to'"),
        ("from=2025-01-01&to=2026-06-01", "at most 366 days"),
    ],
)
def test_a_bad_period_is_a_400_naming_the_field(query, message):
    with pytest.raises(HTTPException) as refused:
        views.period(request(query), "history", date(2026, 12, 2))
    assert refused.value.status_code == 400 and message in str(refused.value.detail)


def test_a_run_id_is_shown_as_a_link_the_bare_id_or_a_dash_and_always_escaped():
    assert cells.run_html(request(), "retention_sweep/r1") == (
        '<a class="mono" href="/dags/retention_sweep/runs/r1" target="_top">retention_sweep/r1</a>'
    )
    assert cells.run_html(request(), "cli-<b>") == '<span class="mono">cli-&lt;b&gt;</span>'
    assert cells.run_html(request(), None) == "—"


def rule_now(**changed):
    from datetime import UTC, datetime

    from governance.compliance.figures import RuleNow

    at = datetime(2026, 12, 2, 10, 30, tzinfo=UTC)
    fields = dict(
        rule_id="visits",
        requirements=["RET-1", "RET-8"],
        action="delete",
        last_sweep_at=at,
        last_sweep_run_id="retention_sweep/r1",
        removed=12,
        anonymised=0,
        purged=0,
        audited_at=at,
        audit_run_id="cli-audit",
        overdue=0,
        oldest_overdue_seconds=None,
        held=3,
        status="green",
        why="nothing overdue",
    )
    return RuleNow(**(fields | changed))


def test_the_now_rows_show_each_figure_and_escape_all_text_from_the_evidence():
    """The Now view's rows (RET-8, #13), rendered in Python: every cell, a reason only off green."""
    from xml.etree import ElementTree

    rows = cells.now_rows(
        [
            rule_now(),
            rule_now(
                rule_id="check-<b>",
                requirements=["REQ-<1>"],
                status="red",
                why='2 overdue "<script>"',
                overdue=2,
                oldest_overdue_seconds=90_000,
                held=None,
                last_sweep_at=None,
                audited_at=None,
            ),
        ],
        cells.run_cell(request()),
    )
    assert "<script>" not in rows and "check-<b>" not in rows and "check-&lt;b&gt;" in rows
    table = ElementTree.fromstring(f"<table><tbody>{rows}</tbody></table>")  # well-formed, too
    green, red = table.iter("tr")
    assert (green.get("data-rule"), green.get("data-status")) == ("visits", "green")
    assert ["".join(td.itertext()) for td in green.iter("td")] == [
        "green", "visits", "RET-1, RET-8", "delete", "2026-12-02 10:30 UTCretention_sweep/r1",
        "12", "0", "0", "0", "—", "3", "2026-12-02 10:30 UTCcli-audit",
    ]  # fmt: skip
    assert [a.get("href") for a in green.iter("a")] == ["/dags/retention_sweep/runs/r1"]  # the CLI run: no link
    assert (red.get("data-rule"), red.get("data-status")) == ("check-<b>", "red")
    assert ["".join(td.itertext()) for td in red.iter("td")] == [
        "red", 'check-<b>2 overdue "<script>"', "REQ-<1>", "delete", "none yet",
        "12", "0", "0", "2", "1 d 1 h", "—", "never",
    ]  # fmt: skip
    assert red.find("td/span").get("title") == '2 overdue "<script>"'
