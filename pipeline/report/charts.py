"""The HTML report's charts: Altair (Vega-Lite) specs rendered to inline SVG by vl-convert, in
this process, with no data or font fetched from anywhere (``allowed_base_urls=[]``).

Each chart is a ``Figure``: the SVG (``role="img"``, its own ``<title>`` and ``<desc>``), the
caption, and a one-sentence text alternative; the page shows the data table beside it.
Rendering is blocking (vl-convert's JavaScript engine starts once per process, about a second):
call it from a worker thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, cast

import altair as alt
import polars as pl
import vl_convert
from markupsafe import Markup, escape

from pipeline.report.page_data import READINESS

WIDTH = 560
BAR = 18  # pixels per bar of the door and reason charts
# Colour-blind-safe pairs (Tableau 10), and the three readiness states as traffic lights
# told apart by lightness too.
USED, MADE, LEFT = "#4c78a8", "#f58518", "#d8dee6"
READINESS_COLOURS = ("#2e7d32", "#f2b705", "#c62828")
OUTCOME_COLOURS = {"rejected": "#e45756", "failed": "#9d755d"}
SVG_TAG = re.compile(r"<svg\b([^>]*)>")
# The page's font: vl-convert measures the labels with it where it is installed, and browsers
# without it fall back to one as wide (Verdana); the padding leaves room for a wider one.
FONT = "DejaVu Sans, Verdana, sans-serif"
PADDING = {"left": 24, "top": 5, "right": 24, "bottom": 5}


@dataclass(frozen=True)
class Figure:
    """A chart as the page shows it; ``svg`` is None when there is nothing to draw (the page
    says ``empty`` instead)."""

    key: str
    title: str
    description: str
    svg: Markup | None
    empty: str = ""


def drawn(chart: alt.TopLevelMixin, key: str, title: str, description: str) -> Figure:
    """The figure of ``chart`` (``render_svg``)."""
    return Figure(
        key, title, description, render_svg(chart, key=key, title=title, description=description)
    )


def start_engine() -> None:
    """Start vl-convert's JavaScript engine (most of a first chart's time), by drawing
    nothing: a caller may do it while it reads the ledger."""
    vl_convert.vegalite_to_svg({"mark": "point", "data": {"values": []}}, allowed_base_urls=[])


def render_svg(chart: alt.TopLevelMixin, *, key: str, title: str, description: str) -> Markup:
    """The chart as an SVG element named by its ``<title>`` and described by its ``<desc>``
    (``aria-labelledby``), safe to put in the page as it is."""
    spec: dict[str, Any] = (
        chart.properties(padding=PADDING)
        .configure(font=FONT)
        .configure_legend(columnPadding=16, labelLimit=0)
        .to_dict()
    )
    svg = vl_convert.vegalite_to_svg(spec, allowed_base_urls=[])
    labels = (
        f'<title id="{key}-title">{escape(title)}</title>'
        f'<desc id="{key}-desc">{escape(description)}</desc>'
    )

    def named(match: re.Match[str]) -> str:
        return (
            f'<svg{match[1]} role="img" aria-labelledby="{key}-title {key}-desc"'
            f' id="{key}-chart">{labels}'
        )

    # vl-convert escapes the data's text itself (door names are the operator's, not ours).
    return Markup(SVG_TAG.sub(named, svg, count=1))


def count_axis(counts: pl.Series) -> alt.Axis:
    """An axis for ``counts``: whole ticks only (Vega's ``tickMinStep`` yields to its own tick
    count, so the count is given: at most the largest count)."""
    largest = int(cast(int, counts.max() or 1))
    return alt.Axis(tickCount=max(1, min(largest, 8)), tickMinStep=1, format="d")


def budget_figure(doors: pl.DataFrame, *, limit: int) -> Figure:
    """Per door (``door_budgets``' fullest ``limit``): used before the run, made by it, left."""
    title = "Codes per door against its budget"
    shown = doors.head(limit)
    if shown.is_empty():
        return Figure("budgets", title, "", None, "No door of the apply run has a budget.")
    long = shown.select("door", "used", "made", "left").unpivot(
        index="door", variable_name="part", value_name="codes"
    )
    names = {"used": "used before the run", "made": "made by the run", "left": "left"}
    long = long.with_columns(
        pl.col("part").replace_strict(names),
        order=pl.col("part").replace_strict({"used": 0, "made": 1, "left": 2}),
    )
    chart = (
        alt.Chart(long, width=WIDTH, height=BAR * shown.height)
        .mark_bar()
        .encode(
            y=alt.Y("door:N", sort=None, title=None, axis=alt.Axis(labelLimit=240)),
            x=alt.X(
                "codes:Q",
                stack="zero",
                title="codes (the budget is the whole bar)",
                axis=count_axis(shown["budget"]),
            ),
            color=alt.Color(
                "part:N",
                scale=alt.Scale(domain=list(names.values()), range=[USED, MADE, LEFT]),
                legend=alt.Legend(title=None, orient="top"),
            ),
            order=alt.Order("order:Q"),
        )
    )
    fullest = shown.row(0, named=True)
    description = (
        f"{shown.height} doors, fullest first. The fullest, {fullest['door']}, has used"
        f" {fullest['after']} of its {fullest['budget']} codes ({fullest['made']} by this run)."
    )
    return drawn(chart, "budgets", title, description)


def readiness_figure(readiness: pl.DataFrame) -> Figure:
    """Codes per check-in date and readiness (``pin_readiness``), stacked."""
    title = "PINs for the stays checking in over the next 14 days"
    frame = readiness.with_columns(day=pl.col("date").dt.strftime("%a %d %b"))
    totals = frame.group_by("readiness").agg(pl.col("codes").sum())
    counts = dict(totals.iter_rows())
    description = (
        f"{sum(counts.values())} codes check in over the next 14 days: "
        + ", ".join(f"{counts.get(state, 0)} {state}" for state in READINESS)
        + "."
    )
    if not sum(counts.values()):
        return Figure(
            "readiness", title, description, None, "No stay checks in over the next 14 days."
        )
    chart = (
        alt.Chart(frame, width=WIDTH, height=220)
        .mark_bar()
        .encode(
            x=alt.X("day:N", sort=None, title="check-in date", axis=alt.Axis(labelAngle=-40)),
            y=alt.Y(
                "sum(codes):Q",
                title="codes",
                axis=count_axis(frame.group_by("date").agg(pl.col("codes").sum())["codes"]),
            ),
            color=alt.Color(
                "readiness:N",
                scale=alt.Scale(domain=list(READINESS), range=list(READINESS_COLOURS)),
                legend=alt.Legend(title=None, orient="top"),
            ),
            order=alt.Order("rank:Q"),
        )
        .transform_calculate(rank=f"indexof({list(READINESS)!r}, datum.readiness)")
    )
    return drawn(chart, "readiness", title, description)


def rejections_figure(rejections: pl.DataFrame, run_id: str | None) -> Figure:
    """The apply run's rejected and failed rows per reason (``rejections``)."""
    title = "Rows rejected or failed, by reason"
    if rejections.is_empty():
        said = f"No row of run {run_id} was rejected or failed." if run_id else "No apply run yet."
        return Figure("rejections", title, "", None, said)
    chart = (
        alt.Chart(rejections, width=WIDTH, height=BAR * rejections.height)
        .mark_bar()
        .encode(
            y=alt.Y("reason:N", sort=None, title=None, axis=alt.Axis(labelLimit=260)),
            x=alt.X("rows:Q", title="rows", axis=count_axis(rejections["rows"])),
            color=alt.Color(
                "outcome:N",
                scale=alt.Scale(domain=list(OUTCOME_COLOURS), range=list(OUTCOME_COLOURS.values())),
                legend=alt.Legend(title=None, orient="top"),
            ),
        )
    )
    top = rejections.row(0, named=True)
    description = (
        f"{rejections['rows'].sum()} rows of run {run_id} were rejected or failed, for"
        f" {rejections.height} reasons; the most, {top['rows']}, {top['outcome']} with"
        f" {top['reason']}."
    )
    return drawn(chart, "rejections", title, description)


def history_figure(history: pl.DataFrame) -> Figure:
    """Per apply run (``run_history``): codes made, requests per new code, run time."""
    title = "Apply runs: codes made, requests per new code, run time"
    if history.is_empty():
        return Figure("history", title, "", None, "No apply run has finished yet.")
    frame = history.with_columns(run=pl.col("started_at").dt.strftime("%Y-%m-%d %H:%M:%S"))
    base = alt.Chart(frame, width=WIDTH, height=110).encode(
        x=alt.X("run:N", sort=None, title="run (start, UTC)", axis=alt.Axis(labelAngle=-40))
    )
    chart = alt.vconcat(
        base.mark_bar(color=USED, size=24).encode(
            y=alt.Y("created:Q", title="codes made", axis=count_axis(frame["created"]))
        ),
        base.mark_line(point=True, color=MADE).encode(
            y=alt.Y("per_new_code:Q", title="requests per new code")
        ),
        base.mark_bar(color="#54a24b", size=24).encode(y=alt.Y("seconds:Q", title="run time (s)")),
    )
    last = frame.row(-1, named=True)
    per_code = last["per_new_code"]
    description = (
        f"{frame.height} apply runs. The latest, started {last['run']} UTC, made"
        f" {last['created']} codes in {last['seconds']:.0f} s with {last['requests']} requests"
        + (f" ({per_code:.2f} per new code)." if per_code is not None else ".")
    )
    return drawn(chart, "history", title, description)
