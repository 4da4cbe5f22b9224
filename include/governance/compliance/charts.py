"""Charts of the compliance figures (#13): Vega-Lite specs built with Altair and rendered to SVG
locally by vl-convert (no browser, no CDN, nothing fetched), so the Governance page and the period
report embed them inline. Each function takes figures (``governance.compliance.figures``) and
returns an ``<svg>`` string, or "" when there is nothing to draw.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import altair as alt
import vl_convert

from governance.compliance.figures import DailyEffect

# The reviewer's words for what a sweep did, in the order they are stacked, with their colours.
MEASURES = ("removed", "anonymised", "purged", "held")
COLOURS = ("#1f6feb", "#8250df", "#bf8700", "#cf222e")
WIDTH = 640
ROW_HEIGHT = 110


def _svg(chart: alt.TopLevelMixin) -> str:
    svg: str = vl_convert.vegalite_to_svg(chart.to_dict())
    return svg


def effects_chart(daily: list[DailyEffect], days: list[date] | None = None) -> str:
    """Per rule (one panel each, its own scale) and UTC day: removed / anonymised / purged / held,
    stacked bars. ``days``: the period's days, so that days without a sweep show as gaps."""
    values: list[dict[str, Any]] = [
        {"day": d.day.isoformat(), "rule": d.rule_id, "measure": m, "n": getattr(d, m)}
        for d in daily
        for m in MEASURES
        if getattr(d, m)
    ]
    if not values:
        return ""
    chart = (
        alt.Chart(alt.Data(values=values))  # type: ignore[no-untyped-call]  # altair's generated schema classes
        .mark_bar()
        .encode(
            x=alt.X(
                "day:O",
                title="day (UTC)",
                scale=alt.Scale(domain=[d.isoformat() for d in days]) if days else alt.Undefined,
                axis=alt.Axis(labelAngle=-40, labelOverlap=True),
            ),
            y=alt.Y("sum(n):Q", title="records / objects", axis=alt.Axis(tickMinStep=1, format="d")),
            color=alt.Color(
                "measure:N",
                scale=alt.Scale(domain=list(MEASURES), range=list(COLOURS)),
                legend=alt.Legend(title=None, orient="top"),
            ),
            order=alt.Order("measure_order:Q"),
            tooltip=["rule:N", "day:O", "measure:N", "n:Q"],
        )
        .transform_calculate(measure_order=f"indexof({list(MEASURES)!r}, datum.measure)")
        .properties(width=WIDTH, height=ROW_HEIGHT)
        .facet(
            row=alt.Row(
                "rule:N",
                title=None,
                header=alt.Header(labelAngle=0, labelOrient="top", labelAnchor="start", labelFontWeight="bold"),
            )
        )
        .resolve_scale(y="independent")
        .configure_view(stroke=None)
        .configure(font="sans-serif")
    )
    return _svg(chart)
