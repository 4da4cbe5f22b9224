"""The script the Governance page (#13) draws its charts with, in the reader's browser: vl-convert's
own JavaScript bundle (Vega, Vega-Lite and Vega-Embed, the versions that render the period report's
SVG on the server) with a few lines that draw every ``.chart[data-spec]`` element from the Vega-Lite
spec in the JSON script element it names. Served by the app itself at /governance/view/charts.js,
so nothing is fetched from a CDN and the page works without internet.

Drawing in the browser keeps a view's answer to its figures and tables: rendering the History
view's two charts on the server took about 0.4 s at 1,000,000 evidence entries (bench/README.md,
"The Governance page"). The period report keeps rendering its charts on the server (a document to
file, PDF included).
"""

from __future__ import annotations

from functools import cache

from fastapi import FastAPI
from fastapi.responses import Response

PATH = "/charts.js"
# Each chart's element names the JSON script element holding its spec; a chart that cannot be drawn
# says so in words where it would have been.
DRAW = """
for (const chart of document.querySelectorAll(".chart[data-spec]")) {
  const spec = JSON.parse(document.getElementById(chart.dataset.spec).textContent);
  vegaEmbed(chart, spec, { renderer: "svg", actions: false }).catch((error) => {
    chart.textContent = "The chart could not be drawn: " + error.message;
  });
}
"""


@cache
def version() -> str:
    """What the bundle's URL carries, so a browser's cached copy is replaced when vl-convert is."""
    from importlib.metadata import version as installed

    return installed("vl-convert-python")


@cache
def bundle() -> bytes:
    """The bundle and the drawing lines, built once per API server process (about a second)."""
    import vl_convert

    return str(vl_convert.javascript_bundle(DRAW)).encode()


def mount(app: FastAPI, prefix: str) -> None:
    """GET ``prefix``/charts.js, an ES module; authenticated as every route of the app."""

    @app.get(prefix + PATH, include_in_schema=False)
    def charts_js() -> Response:
        return Response(
            bundle(),
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "private, max-age=86400"},
        )
