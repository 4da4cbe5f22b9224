"""The compliance charts (#13, governance.compliance.charts) rendered on this machine to SVG/PNG: the
marks and labels a reviewer reads are in the drawing, nothing points at the network."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from governance.compliance import charts
from governance.compliance.figures import AuditRun, DailyEffect, RequestFigure

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def texts(svg: str) -> list[str]:
    return re.findall(r"<text[^>]*>([^<]*)</text>", svg)


def bars(svg: str) -> int:
    """The bar marks (Vega draws each bar as a path inside a 'mark-rect' group)."""
    groups = re.findall(r'<g class="mark-rect role-mark[^"]*"[^>]*>(.*?)</g>', svg, flags=re.S)
    return sum(g.count("<path") for g in groups)


def no_network(svg: str) -> None:
    refs = re.findall(r'(?:href|src)="([^"]*)"', svg)
    assert not [r for r in refs if r.startswith(("http:", "https:", "//"))], refs


def test_effects_chart_has_a_panel_per_rule_and_a_bar_per_effect_and_day():
    daily = [
        DailyEffect(date(2026, 11, 24), "visit-data", removed=5, anonymised=0, purged=0, held=1, runs=2),
        DailyEffect(date(2026, 11, 25), "visit-data", removed=2, anonymised=0, purged=0, held=0, runs=1),
        DailyEffect(date(2026, 11, 25), "order-records", removed=0, anonymised=3, purged=0, held=0, runs=1),
        DailyEffect(date(2026, 11, 25), "ordered-uploads", removed=0, anonymised=0, purged=4, held=0, runs=1),
    ]
    svg = charts.effects_chart(daily)
    assert svg.startswith("<svg")
    labels = texts(svg)
    for label in ("visit-data", "order-records", "ordered-uploads", "2026-11-24", "2026-11-25", "Day (UTC)"):
        assert label in labels, label
    assert {"removed", "anonymised", "purged", "held"} <= set(labels)  # the legend
    assert bars(svg) == 5  # non-zero (day, rule, effect) cells only
    no_network(svg)


def test_audits_chart_has_a_point_per_audit():
    runs = [
        AuditRun(
            f"audit-{i}", T0 + timedelta(hours=i), None, 12, overdue, ["visit-data"] if overdue else [], [], not overdue
        )
        for i, overdue in enumerate([3, 0, 0])
    ]
    svg = charts.audits_chart(runs)
    assert "Overdue per audit" in texts(svg)
    assert {"ok", "findings"} <= set(texts(svg))
    points = re.findall(r'<g class="mark-symbol role-mark[^"]*"[^>]*>(.*?)</g>', svg, flags=re.S)
    assert sum(p.count("<path") for p in points) == 3
    no_network(svg)


def test_requests_chart_counts_each_request_once_in_its_state():
    def req(i: int, kind: str, closed: datetime | None, late: bool) -> RequestFigure:
        due = T0 + timedelta(days=30)
        return RequestFigure(
            i,
            kind,
            "completed" if closed else "received",
            T0,
            due,
            closed,
            None if closed else 3,
            late,
            None if closed is None else not late,
        )

    reqs = [
        req(1, "access", T0, False),
        req(2, "access", T0 + timedelta(days=40), True),
        req(3, "erasure", None, False),
    ]
    assert [charts.request_state(r) for r in reqs] == ["answered in time", "answered late", "open, in time"]
    svg = charts.requests_chart(reqs)
    assert {"access", "erasure", "answered in time", "answered late"} <= set(texts(svg))
    assert bars(svg) == 3


def test_empty_periods_say_so_in_words_and_png_renders():
    assert "No sweep removed" in charts.effects_chart([])
    assert "No audit was recorded" in charts.audits_chart([])
    assert "No data-subject request" in charts.requests_chart([])
    png = charts.render_png(charts.audits_spec([]))
    assert png.startswith(b"\x89PNG")


def test_every_spec_is_valid_vega_lite_though_not_validated_as_it_is_built():
    """The specs skip Altair's validation for speed (``charts._spec``): checked here against the
    Vega-Lite schema Altair ships, with data and without; a spec that breaks it fails here."""
    import altair as alt
    import jsonschema
    import pytest

    schema = alt.vegalite.load_schema()
    daily = [DailyEffect(date(2026, 11, 24), "visit-data", removed=5, anonymised=1, purged=2, held=1, runs=2)]
    runs = [AuditRun("audit-1", T0, T0, 12, 0, [], [], True)]
    reqs = [RequestFigure(1, "access", "received", T0, T0 + timedelta(days=30), None, 3, False, None)]
    specs = [charts.effects_spec(daily), charts.audits_spec(runs), charts.requests_spec(reqs)]
    specs += [charts.effects_spec([]), charts.audits_spec([]), charts.requests_spec([])]
    for spec in specs:
        jsonschema.validate(spec, schema)
    broken = {**charts.effects_spec(daily), "columns": "three"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
