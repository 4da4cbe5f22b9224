"""The compliance charts (#13): Vega-Lite specs built with Altair from the shared figures
(``governance.compliance.figures``), rendered on this machine to SVG (the page, the HTML report) or
PNG with vl-convert, an embedded renderer: nothing is fetched from a CDN or the network, so the page
and the report work without internet.

- ``effects_chart``: per UTC day, what the sweeps removed / anonymised / purged and found held,
  stacked, one small chart per rule (RET-8);
- ``audits_chart``: each audit's overdue total over time (RET-1..RET-10);
- ``requests_chart``: data-subject requests per kind, answered in time / late / open (REQ-1).

Charts carry rule ids, kinds, days and counts only, never personal data. A chart with no data says
so in words instead of drawing empty axes.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from governance.compliance.figures import AuditRun, DailyEffect, RequestFigure
from governance.windows import iso

EFFECTS = ("removed", "anonymised", "purged", "held")
EFFECT_COLOURS = ("#4c78a8", "#72b7b2", "#f58518", "#9d755d")
REQUEST_STATES = ("answered in time", "answered late", "open, in time", "open, late")
REQUEST_COLOURS = ("#54a24b", "#e45756", "#bab0ac", "#b279a2")
FACET_COLUMNS = 3
DATASET = "figures"
WIDTH = 180
HEIGHT = 120


def _altair() -> Any:
    import altair as alt  # heavy: imported where a chart is drawn, not where figures are read

    return alt


def render_svg(spec: dict[str, Any]) -> str:
    """A Vega-Lite spec as an SVG document (text as <text> elements, so labels stay searchable)."""
    import vl_convert

    return str(vl_convert.vegalite_to_svg(spec))


def render_png(spec: dict[str, Any], scale: float = 2.0) -> bytes:
    """A Vega-Lite spec as PNG bytes (for documents that cannot embed SVG)."""
    import vl_convert

    return bytes(vl_convert.vegalite_to_png(spec, scale=scale))


def _data() -> Any:
    """The chart's data by name (``DATASET``): its values are set in the spec by ``_spec``."""
    return _altair().Data(name=DATASET)


def _with_values(layout: dict[str, Any], values: list[dict[str, Any]]) -> dict[str, Any]:
    """A chart's Vega-Lite spec: its layout (``_layout``) with ``values`` as its named dataset."""
    return {**layout, "datasets": {DATASET: values}}


def _layout(chart: Any) -> dict[str, Any]:
    """A chart's spec without its values, built by Altair once per process (each layout function is
    cached: a layout depends on its title only) and not validated against Vega-Lite's schema as it
    is built: Altair walking, hashing and validating the inline values cost ~60 ms a chart at
    1,000,000 evidence entries, building the chart ~13 ms (the History view's two charts were most
    of its time). tests/unit/test_compliance_charts.py validates every spec."""
    return dict(chart.to_dict(validate=False))


@cache
def _empty_layout(title: str) -> dict[str, Any]:
    alt = _altair()
    chart = (
        alt.Chart(_data(), title=title)
        .mark_text(fontSize=13, align="left", x=5, y=20)
        .encode(text="message:N")
        .properties(width=WIDTH * 2, height=40)
    )
    return _layout(chart)


def _empty_spec(title: str, message: str) -> dict[str, Any]:
    return _with_values(_empty_layout(title), [{"message": message}])


def effects_spec(daily: Sequence[DailyEffect], title: str = "Sweep effects per day (UTC)") -> dict[str, Any]:
    """Stacked bars per day: removed / anonymised / purged / held, one panel per rule."""
    values = [
        {"day": d.day.isoformat(), "rule_id": d.rule_id, "effect": effect, "count": getattr(d, effect)}
        for d in daily
        for effect in EFFECTS
        if getattr(d, effect)
    ]
    if not values:
        return _empty_spec(title, "No sweep removed, anonymised, purged or held anything in this period.")
    return _with_values(_effects_layout(title), values)


@cache
def _effects_layout(title: str) -> dict[str, Any]:
    alt = _altair()
    chart = (
        alt.Chart(_data())
        .mark_bar()
        .encode(
            x=alt.X("day:O", title="Day (UTC)"),
            y=alt.Y("sum(count):Q", title="Records / objects"),
            color=alt.Color(
                "effect:N",
                title="Effect",
                scale=alt.Scale(domain=list(EFFECTS), range=list(EFFECT_COLOURS)),
            ),
            order=alt.Order("effect:N"),
            tooltip=["day:O", "rule_id:N", "effect:N", "count:Q"],
        )
        .properties(width=WIDTH, height=HEIGHT)
        .facet(facet=alt.Facet("rule_id:N", title="Rule"), columns=FACET_COLUMNS)
        .resolve_scale(y="independent")
        .properties(title=title)
    )
    return _layout(chart)


def audits_spec(runs: Sequence[AuditRun], title: str = "Overdue per audit") -> dict[str, Any]:
    """Each audit's overdue total over time: a line with a point per audit, red where not ok."""
    if not runs:
        return _empty_spec(title, "No audit was recorded in this period.")
    values = [
        {"at": iso(r.recorded_at), "overdue": r.overdue_total, "result": "ok" if r.ok else "findings"} for r in runs
    ]
    return _with_values(_audits_layout(title), values)


@cache
def _audits_layout(title: str) -> dict[str, Any]:
    alt = _altair()
    base = alt.Chart(_data()).encode(
        x=alt.X(
            "at:T",
            title="Audit (UTC)",
            scale=alt.Scale(type="utc"),
            axis=alt.Axis(format="%Y-%m-%d %H:%M", labelAngle=-30, tickCount=6),
        ),
        y=alt.Y("overdue:Q", title="Overdue records / objects"),
    )
    points = base.mark_point(filled=True, size=60).encode(
        color=alt.Color(
            "result:N", title="Result", scale=alt.Scale(domain=["ok", "findings"], range=["#54a24b", "#e45756"])
        ),
        tooltip=["at:T", "overdue:Q", "result:N"],
    )
    chart = (base.mark_line(color="#888") + points).properties(width=WIDTH * 3, height=HEIGHT, title=title)
    return _layout(chart)


def request_state(r: RequestFigure) -> str:
    """The request's standing in words (one of ``REQUEST_STATES``)."""
    if r.closed_at is not None:
        return REQUEST_STATES[0] if r.answered_in_time else REQUEST_STATES[1]
    return REQUEST_STATES[3] if r.late else REQUEST_STATES[2]


def requests_spec(reqs: Sequence[RequestFigure], title: str = "Requests per kind") -> dict[str, Any]:
    """Horizontal stacked bars per request kind: answered in time, late, open in time, open late."""
    if not reqs:
        return _empty_spec(title, "No data-subject request was received or open in this period.")
    counts: dict[tuple[str, str], int] = {}
    for r in reqs:
        key = (r.kind, request_state(r))
        counts[key] = counts.get(key, 0) + 1
    values = [{"kind": k, "state": s, "count": n} for (k, s), n in sorted(counts.items())]
    return _with_values(_requests_layout(title), values)


@cache
def _requests_layout(title: str) -> dict[str, Any]:
    alt = _altair()
    chart = (
        alt.Chart(_data())
        .mark_bar()
        .encode(
            y=alt.Y("kind:N", title="Kind"),
            x=alt.X("sum(count):Q", title="Requests"),
            color=alt.Color(
                "state:N", title="State", scale=alt.Scale(domain=list(REQUEST_STATES), range=list(REQUEST_COLOURS))
            ),
            tooltip=["kind:N", "state:N", "count:Q"],
        )
        .properties(width=WIDTH * 2, title=title)
    )
    return _layout(chart)


def effects_chart(daily: Sequence[DailyEffect]) -> str:
    """``effects_spec`` as SVG."""
    return render_svg(effects_spec(daily))


def audits_chart(runs: Sequence[AuditRun]) -> str:
    """``audits_spec`` as SVG."""
    return render_svg(audits_spec(runs))


def requests_chart(reqs: Sequence[RequestFigure]) -> str:
    """``requests_spec`` as SVG."""
    return render_svg(requests_spec(reqs))
