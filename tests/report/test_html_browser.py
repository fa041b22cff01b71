"""The HTML report in a real headless Chromium: no console error, every chart drawn where an eye
can see it, the page as wide as the window whatever a name's length, the tables and headings a
screen reader needs, and not one request beyond the page itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from playwright.sync_api import Page, Request, Route

from pipeline.commands import export_report
from tests.report.browser import chromium_page, serving
from tests.report.page_helpers import LONG_DOOR, MARKUP_DOOR, troubled_ledger

pytestmark = pytest.mark.slow

CHARTS = {
    "budgets": "Codes per door against its budget",
    "readiness": "PINs for the stays checking in over the next 14 days",
    "rejections": "Rows rejected or failed, by reason",
    "history": "Apply runs: codes made, requests per new code, run time",
}


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page of a ledger with every kind of trouble (``troubled_ledger``)."""
    folder = tmp_path_factory.mktemp("page")

    async def make() -> Path:
        with pytest.MonkeyPatch.context() as monkeypatch:
            troubled = await troubled_ledger(folder, monkeypatch)
            out = folder / "site" / "report.html"
            await export_report(
                ledger_path=troubled.ledger, fmt="html", out=out, as_of=troubled.now
            )
            return out

    return anyio.run(make)


@pytest.fixture
def opened(page_file: Path, tmp_path: Path) -> Iterator[tuple[Page, list[str]]]:
    """The page opened from its file, and the console's errors and the page's exceptions."""
    with chromium_page(tmp_path / "profile") as page:
        errors: list[str] = []
        page.on(
            "console",
            lambda message: errors.append(message.text) if message.type == "error" else None,
        )
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(page_file.as_uri(), wait_until="load")
        yield page, errors


# Per shape of a chart's marks: its box, whether its fill or its outline is painted in a
# colour that shows on the page (not none, not transparent, not the page's white), and the
# opacity it is drawn with (its own and every parent's, 0 when any is hidden).
MARK_PAINT = """svg => [...svg.querySelectorAll('g.role-mark')]
  .flatMap(group => [...group.querySelectorAll('path, rect, line, circle, polygon, polyline')])
  .map(shape => {
    const box = shape.getBBox();
    const style = getComputedStyle(shape);
    let opacity = 1;
    for (let node = shape; node instanceof Element; node = node.parentElement) {
      const own = getComputedStyle(node);
      if (own.display === 'none' || own.visibility === 'hidden') opacity = 0;
      opacity *= parseFloat(own.opacity);
    }
    const shows = (colour, alpha) => colour !== 'none' && colour !== 'transparent'
      && !/^rgba\\(.*,\\s*0\\)$/.test(colour) && colour !== 'rgb(255, 255, 255)'
      && parseFloat(alpha) > 0;
    return {
      width: box.width, height: box.height, opacity,
      fill: shows(style.fill, style.fillOpacity),
      stroke: shows(style.stroke, style.strokeOpacity) && parseFloat(style.strokeWidth) > 0,
    };
  })"""


def visible_marks(page: Page, key: str) -> list[dict[str, Any]]:
    """The marks of chart ``key`` an eye can see: drawn with some opacity, and filled with an
    area, or outlined with a length."""
    shapes: list[dict[str, Any]] = page.locator(f"svg#{key}-chart").evaluate(MARK_PAINT)
    return [
        shape
        for shape in shapes
        if shape["opacity"] > 0
        and (
            (shape["fill"] and shape["width"] > 0 and shape["height"] > 0)
            or (shape["stroke"] and (shape["width"] > 0 or shape["height"] > 0))
        )
    ]


def test_the_page_opens_without_an_error_and_draws_every_chart(opened):
    """No console error; each chart an SVG image of sensible size named by its title, whose
    marks (bars, lines) an eye can see: an area or a length, a paint that shows on the page,
    and an opacity above 0."""
    page, errors = opened
    assert errors == []
    charts = page.locator("figure svg[role=img]")
    assert charts.count() == len(CHARTS)
    for key, title in CHARTS.items():
        chart = page.locator(f"svg#{key}-chart")
        box = chart.bounding_box()
        assert box is not None
        assert box["width"] > 300
        assert box["height"] > 80
        assert page.get_by_role("img", name=title).count() == 1
        assert visible_marks(page, key), key


# Per table: how much wider it is than the box that holds it (0: it fits, nothing to scroll).
TABLE_OVERFLOW = "boxes => boxes.map(box => box.scrollWidth - box.clientWidth)"


@pytest.mark.parametrize("width", [1200, 800])
def test_the_page_is_no_wider_than_the_window_whatever_a_name(page_file, tmp_path, width):
    """A door name of 400 characters without a space wraps within its cell: at 1200 pixels
    every table fits its box, and at 800 too the page is as wide as the window (a table too
    wide for a narrow one scrolls in its own box)."""
    with chromium_page(tmp_path / "profile", width=width) as page:
        page.goto(page_file.as_uri(), wait_until="load")
        assert page.get_by_text(LONG_DOOR, exact=False).count() >= 1
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        if width == 1200:
            overflow = page.locator("div.table").evaluate_all(TABLE_OVERFLOW)
            assert len(overflow) == 6  # needs a person, near budget, a table per chart
            assert max(overflow) <= 0


def test_the_needs_a_person_table_lists_its_rows_with_headers(opened):
    """The table named by its caption, a header per column, one row per reservation, door
    and problem (the rejected rows with their guest), the door's markup as text."""
    page, _ = opened
    assert page.get_by_role("heading", level=1).inner_text() == "Door codes report"
    assert page.get_by_role("heading", name="Needs a person", level=2).count() == 1
    table = page.get_by_role("table", name="Reservations that need a person")
    headers = table.get_by_role("columnheader").all_inner_texts()
    assert headers == [
        "Reservation",
        "Guest",
        "Door",
        "Check-in",
        "Check-out",
        "Problem",
        "Reason",
        "What is wrong",
        "What to do",
    ]
    rows = table.locator("tbody tr")
    assert rows.count() == 6
    first = rows.locator("th[scope=row]").all_inner_texts()
    assert first == ["F3", "F4", "BAD", "S1", "S2", "CANCEL"]
    assert page.locator("script").count() == 0
    assert table.get_by_text(MARKUP_DOOR).count() >= 1


def test_no_request_leaves_the_page(page_file, tmp_path):
    """Served over HTTP, with every request of the browser routed: the only one is the page's
    own, and nothing is refused or errs."""
    with serving(page_file.parent) as base, chromium_page(tmp_path / "profile") as page:
        url = f"{base}/{page_file.name}"
        routed: list[str] = []
        seen: list[str] = []
        errors: list[str] = []

        def route(route: Route, request: Request) -> None:
            routed.append(request.url)
            if request.url == url:
                route.continue_()
            else:
                route.abort()

        page.context.route("**/*", route)
        page.on("request", lambda request: seen.append(request.url))
        page.on(
            "console",
            lambda message: errors.append(message.text) if message.type == "error" else None,
        )
        page.goto(url, wait_until="networkidle")
        assert page.locator("figure svg[role=img]").count() == len(CHARTS)
    assert routed == [url]
    assert seen == [url]
    assert errors == []
