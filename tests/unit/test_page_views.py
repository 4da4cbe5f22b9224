"""The Governance page's pure helpers (#13, ``governance_airflow.api.views``): links from evidence
run ids to Airflow's DAG-run pages, and the period of ``?from=&to=`` with errors naming the field."""

from __future__ import annotations

from datetime import date

import pytest
from fastapi import HTTPException
from starlette.requests import Request

from governance_airflow.api import views


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
    assert views.run_link(request(), run_id) == link


def test_run_links_keep_airflow_s_base_path():
    assert views.run_link(request(root_path="/airflow/governance"), "retention_sweep/r1") == (
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
    assert views.run_html(request(), "retention_sweep/r1") == (
        '<a class="mono" href="/dags/retention_sweep/runs/r1" target="_top">retention_sweep/r1</a>'
    )
    assert views.run_html(request(), "cli-<b>") == '<span class="mono">cli-&lt;b&gt;</span>'
    assert views.run_html(request(), None) == "—"
