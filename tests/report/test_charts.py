"""The HTML report's charts alone: colours a reader can tell apart against the page and from each
other without telling hues apart, and one bar per run however close two runs started."""

from __future__ import annotations

import datetime as dt
import itertools
import re

import polars as pl
import pytest

from pipeline.report import charts
from pipeline.report.page_text import counted, number, plain, scrub_pins

WHITE = "#ffffff"


def luminance(colour: str) -> float:
    """WCAG 2's relative luminance of ``#rrggbb``."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(one: str, other: str) -> float:
    """WCAG 2's contrast ratio of two colours, 1 to 21."""
    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def paint(fill: str, stroke: str) -> str:
    """What a mark shows of itself on the page: its fill, or its outline when it is white."""
    return stroke if fill == WHITE else fill


PALETTES = {
    "budgets": [paint(fill, stroke) for _, fill, stroke in charts.BUDGET_PARTS.values()],
    "readiness": list(charts.READINESS_COLOURS.values()),
    "rejections": list(charts.OUTCOME_COLOURS.values()),
    "history": list(charts.HISTORY_COLOURS.values()),
}


@pytest.mark.parametrize("chart", PALETTES)
def test_every_mark_stands_out_from_the_page(chart):
    """Each mark's paint has 3:1 or more against the white page (WCAG's non-text contrast)."""
    assert all(contrast(colour, WHITE) >= 3 for colour in PALETTES[chart])


FILLED = {
    "budgets": [fill for _, fill, _ in charts.BUDGET_PARTS.values() if fill != WHITE],
    "readiness": PALETTES["readiness"],
    "rejections": PALETTES["rejections"],
}


@pytest.mark.parametrize("chart", FILLED)
def test_the_states_of_a_chart_differ_in_lightness_not_hue_alone(chart):
    """Any two filled states of one chart are 1.5:1 or more apart in lightness: a reader
    blind to their hues (or a page printed in grey) still tells them apart (the room left on
    a door is told by its form: an outline)."""
    for one, other in itertools.combinations(FILLED[chart], 2):
        assert contrast(one, other) >= 1.5, (one, other)


def test_the_room_left_is_an_outline_the_other_parts_are_filled():
    """The empty part of a budget is drawn as an outline only; every other part is filled and
    set apart from its neighbours by a white edge."""
    parts = charts.BUDGET_PARTS
    assert parts["room"][1:] == (WHITE, "#707070")
    assert all(stroke == WHITE for part, (_, _, stroke) in parts.items() if part != "room")


def bar_positions(svg: str) -> list[float]:
    """The left edges of the bars of the SVG's first bar mark."""
    group = re.search(r'<g class="mark-rect role-mark[^"]*"[^>]*>(.*?)</g>', svg, re.DOTALL)
    assert group is not None
    return [float(x) for x in re.findall(r'<path[^>]*\bd="M([\d.]+),', group[1])]


def test_runs_that_started_in_the_same_second_are_two_bars():
    """Two apply runs started in the same second are two bars at two places, each labelled
    with its start."""
    started = dt.datetime(2027, 3, 1, 3, 0, 7, tzinfo=dt.UTC)
    history = pl.DataFrame(
        {
            "run": [1, 2, 3],
            "run_id": ["run-a", "run-b", "run-c"],
            "started_at": [started, started, started + dt.timedelta(days=1)],
            "created": [4, 2, 5],
            "requests": [6, 3, 7],
            "per_new_code": [1.5, 1.5, 1.4],
            "seconds": [1.0, 2.0, 3.0],
        }
    )
    figure = charts.history_figure(history)
    assert figure.svg is not None
    assert len(set(bar_positions(figure.svg))) == 3
    # Each of the three charts labels both runs with their start.
    assert figure.svg.count(">2027-03-01 03:00:07<") == 2 * 3
    assert figure.description.startswith("3 apply runs. The latest, started 2027-03-02 03:00:07")


def test_counts_are_said_as_a_reader_says_them():
    """A noun agrees with its count; thousands are separated."""
    assert counted(1, "apply run") == "1 apply run"
    assert counted(2, "door") == "2 doors"
    assert counted(0, "code") == "0 codes"
    assert counted(12_345, "stay") == "12,345 stays"
    assert number(1_000_000) == "1,000,000"


def test_plain_text_has_no_direction_controls():
    """Overrides, embeddings, isolates and marks are taken out; the rest is kept."""
    assert plain("Suite \u202e12\u202c Nord \u2067x\u2069\u200e\u200f") == "Suite 12 Nord x"


def test_only_whole_pins_are_scrubbed_from_the_columns_asked():
    """A run of digits that is a PIN is replaced in the columns asked for; a longer run that
    holds a PIN's digits, another column and a text without one are left as they are."""
    frame = pl.DataFrame(
        {
            "message": ["code 4711 refused", "code 94711 refused", None, "no digits"],
            "check_in": ["4711", "4711", "4711", "4711"],
        }
    )
    scrubbed = scrub_pins(frame, {"4711"}, ["message"])
    assert scrubbed["message"].to_list() == [
        "code [PIN removed] refused",
        "code 94711 refused",
        None,
        "no digits",
    ]
    assert scrubbed["check_in"].to_list() == frame["check_in"].to_list()
