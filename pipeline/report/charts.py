"""The HTML report's charts: Altair (Vega-Lite) specs rendered to inline SVG by vl-convert, in
this process, with no data or font fetched from anywhere (``allowed_base_urls=[]``).

Each chart is a ``Figure``: the SVG (``role="img"``, named by its own ``<title>``), and a
one-sentence text alternative the page shows as the figure's caption (once: the SVG has no
``<desc>`` repeating it); the page shows the data table beside it. Every text that goes into a
chart or its caption is ``plain`` (no bidi control can reorder its numbers). Rendering is
blocking (vl-convert's JavaScript engine starts once per process, about a second): call it
from a worker thread.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, cast

import altair as alt
import polars as pl
import vl_convert
from markupsafe import Markup, escape

from pipeline.report.page_data import NEEDS_A_PERSON, READINESS, READY, WAITING
from pipeline.report.page_text import counted, number, plain

WIDTH = 560
BAR = 18  # pixels per bar of the door and reason charts
WHITE = "#ffffff"
# Every mark at 3:1 or more against the white page (WCAG's non-text contrast), and the states
# of one chart told apart by lightness (1.5:1 or more between any two), not by hue alone: a
# reader who can't tell the hues apart, or prints in grey, still can. The hues are from the
# colour-blind-safe blue/orange axis (Okabe and Ito), with grey and a dark purple.
BUDGET_PARTS = {
    # part: (label, fill, stroke); the room left is drawn as an outline: it is empty.
    "used_part": ("used before the run", "#061f47", WHITE),
    "made_part": ("made by the run", "#1a5590", WHITE),
    "room": ("room for the next runs", WHITE, "#707070"),
    "reserve_part": ("the reserve", "#707070", WHITE),
    "over": ("over the budget", "#e07000", WHITE),
}
READINESS_COLOURS = {READY: "#0072b2", WAITING: "#e07000", NEEDS_A_PERSON: "#4a1c6b"}
OUTCOME_COLOURS = {"rejected": "#e07000", "failed": "#4a1c6b"}
HISTORY_COLOURS = {"created": "#061f47", "per_new_code": "#e07000", "seconds": "#117733"}
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
    """The figure of ``chart`` (``render_svg``), its description ``plain``."""
    return Figure(key, title, plain(description), render_svg(chart, key=key, title=title))


def start_engine() -> None:
    """Start vl-convert's JavaScript engine (most of a first chart's time), by drawing
    nothing: a caller may do it while it reads the ledger."""
    vl_convert.vegalite_to_svg({"mark": "point", "data": {"values": []}}, allowed_base_urls=[])


def render_svg(chart: alt.TopLevelMixin, *, key: str, title: str) -> Markup:
    """The chart as an SVG image named by its ``<title>`` (``aria-labelledby``), safe to put
    in the page as it is."""
    spec: dict[str, Any] = (
        chart.properties(padding=PADDING)
        .configure(font=FONT)
        .configure_legend(columnPadding=16, labelLimit=0)
        .to_dict()
    )
    svg = vl_convert.vegalite_to_svg(spec, allowed_base_urls=[])

    def named(match: re.Match[str]) -> str:
        return (
            f'<svg{match[1]} role="img" aria-labelledby="{key}-title" id="{key}-chart">'
            f'<title id="{key}-title">{escape(title)}</title>'
        )

    # vl-convert escapes the data's text itself (door names are the operator's, not ours).
    return Markup(SVG_TAG.sub(named, svg, count=1))


def count_axis(counts: pl.Series) -> alt.Axis:
    """An axis for ``counts``: whole ticks only, thousands separated (Vega's ``tickMinStep``
    yields to its own tick count, so the count is given: at most the largest count)."""
    largest = int(cast(int, counts.max() or 1))
    return alt.Axis(tickCount=max(1, min(largest, 8)), tickMinStep=1, format=",d")


def _plain_column(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    return frame.with_columns(pl.col(column).map_elements(plain, return_dtype=pl.String))


def budget_figure(doors: pl.DataFrame, *, limit: int) -> Figure:
    """Per door (``door_budgets``' fullest ``limit``): its budget in parts (used before the
    run, made by it, room for the next runs, the reserve, over the budget)."""
    title = "Codes per door against its budget"
    shown = _plain_column(doors.head(limit), "door")
    if shown.is_empty():
        return Figure("budgets", title, "", None, "No door of the apply run has a budget.")
    long = shown.select("door", *BUDGET_PARTS).unpivot(
        index="door", variable_name="part", value_name="codes"
    )
    labels = {part: label for part, (label, _, _) in BUDGET_PARTS.items()}
    long = long.with_columns(
        pl.col("part").replace_strict(labels),
        order=pl.col("part").replace_strict({part: n for n, part in enumerate(BUDGET_PARTS)}),
    )
    domain = list(labels.values())
    chart = (
        alt.Chart(long, width=WIDTH, height=BAR * shown.height)
        .mark_bar(strokeWidth=1)
        .encode(
            y=alt.Y("door:N", sort=None, title=None, axis=alt.Axis(labelLimit=240)),
            x=alt.X(
                "codes:Q",
                stack="zero",
                title="codes (a bar is its door's budget, and what is over it)",
                axis=count_axis(shown["budget"] + shown["over"]),
            ),
            fill=alt.Fill(
                "part:N",
                scale=alt.Scale(domain=domain, range=[f for _, f, _ in BUDGET_PARTS.values()]),
                legend=alt.Legend(title=None, orient="top"),
            ),
            stroke=alt.Stroke(
                "part:N",
                scale=alt.Scale(domain=domain, range=[s for _, _, s in BUDGET_PARTS.values()]),
                legend=alt.Legend(title=None, orient="top"),
            ),
            order=alt.Order("order:Q"),
        )
    )
    return drawn(chart, "budgets", title, _budget_sentence(shown))


def _budget_sentence(shown: pl.DataFrame) -> str:
    """What the budget chart says, from the numbers it draws."""
    fullest = shown.row(0, named=True)
    used, budget = fullest["after"], fullest["budget"]
    said = (
        f"{counted(shown.height, 'door')}, fullest first. The fullest, {fullest['door']}, has"
        f" used {number(used)} of its budget of {counted(budget, 'code')}"
        f" ({number(fullest['made'])} by this run)"
    )
    if fullest["over"]:
        return said + f": {number(fullest['over'])} over it."
    return (
        said + f"; {number(fullest['room'])} left for the next runs, beyond a reserve of"
        f" {number(fullest['reserve'])}."
    )


def readiness_figure(readiness: pl.DataFrame) -> Figure:
    """Stays per check-in date and readiness (``pin_readiness``), stacked."""
    title = "PINs for the stays checking in over the next 14 days"
    frame = readiness.with_columns(day=pl.col("date").dt.strftime("%a %d %b"))
    counts = dict(frame.group_by("readiness").agg(pl.col("stays").sum()).iter_rows())
    total = sum(counts.values())
    description = (
        f"{counted(total, 'stay')} check in over the next 14 days: "
        f"{number(counts.get(READY, 0))} ready, {number(counts.get(WAITING, 0))} waiting for a"
        f" PIN, {number(counts.get(NEEDS_A_PERSON, 0))} needing a person (the lines of Needs a"
        " person that check in on those days)."
    )
    if not total:
        return Figure(
            "readiness", title, description, None, "No stay checks in over the next 14 days."
        )
    chart = (
        alt.Chart(frame, width=WIDTH, height=220)
        .mark_bar(stroke=WHITE, strokeWidth=1)
        .encode(
            x=alt.X("day:N", sort=None, title="check-in date", axis=alt.Axis(labelAngle=-40)),
            y=alt.Y(
                "sum(stays):Q",
                title="stays",
                axis=count_axis(frame.group_by("date").agg(pl.col("stays").sum())["stays"]),
            ),
            color=alt.Color(
                "readiness:N",
                scale=alt.Scale(domain=list(READINESS), range=list(READINESS_COLOURS.values())),
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
    shown = _plain_column(rejections, "reason")
    chart = (
        alt.Chart(shown, width=WIDTH, height=BAR * shown.height)
        .mark_bar(stroke=WHITE, strokeWidth=1)
        .encode(
            y=alt.Y("reason:N", sort=None, title=None, axis=alt.Axis(labelLimit=260)),
            x=alt.X("rows:Q", title="rows", axis=count_axis(shown["rows"])),
            color=alt.Color(
                "outcome:N",
                scale=alt.Scale(domain=list(OUTCOME_COLOURS), range=list(OUTCOME_COLOURS.values())),
                legend=alt.Legend(title=None, orient="top"),
            ),
        )
    )
    top = shown.row(0, named=True)
    description = (
        f"{counted(int(shown['rows'].sum()), 'row')} of run {run_id} were rejected or failed,"
        f" for {counted(shown.height, 'reason')}; the most, {number(top['rows'])},"
        f" {top['outcome']} with {top['reason']}."
    )
    return drawn(chart, "rejections", title, description)


def history_figure(history: pl.DataFrame) -> Figure:
    """Per apply run (``run_history``): codes made, requests per new code, run time; one bar
    per run (its place), labelled with its start."""
    title = "Apply runs: codes made, requests per new code, run time"
    if history.is_empty():
        return Figure("history", title, "", None, "No apply run has finished yet.")
    frame = history.with_columns(start=pl.col("started_at").dt.strftime("%Y-%m-%d %H:%M:%S"))
    starts = json.dumps({str(run): start for run, start in frame.select("run", "start").rows()})
    base = alt.Chart(frame, width=WIDTH, height=110).encode(
        x=alt.X(
            "run:O",
            title="apply run (start, UTC)",
            axis=alt.Axis(labelAngle=-40, labelExpr=f"{starts}[datum.value]"),
        )
    )
    colours = HISTORY_COLOURS
    chart = alt.vconcat(
        base.mark_bar(color=colours["created"], size=24).encode(
            y=alt.Y("created:Q", title="codes made", axis=count_axis(frame["created"]))
        ),
        base.mark_line(
            point=alt.OverlayMarkDef(color=colours["per_new_code"]), color=colours["per_new_code"]
        ).encode(y=alt.Y("per_new_code:Q", title="requests per new code")),
        base.mark_bar(color=colours["seconds"], size=24).encode(
            y=alt.Y("seconds:Q", title="run time (s)")
        ),
    )
    last = frame.row(-1, named=True)
    per_code = last["per_new_code"]
    description = (
        f"{counted(frame.height, 'apply run')}. The latest, started {last['start']} UTC, made"
        f" {counted(last['created'], 'code')} in {last['seconds']:,.0f} s with"
        f" {counted(last['requests'], 'request')}"
        + (f" ({per_code:,.2f} per new code)." if per_code is not None else ".")
    )
    return drawn(chart, "history", title, description)
