"""The HTML report in a real headless Chromium: no console error, every chart drawn, the
tables and headings a screen reader needs, and not one request beyond the page itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from playwright.sync_api import Page, Request, Route

from pipeline.commands import export_report
from tests.report.browser import chromium_page, serving
from tests.report.page_helpers import MARKUP_DOOR, troubled_ledger

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


def test_the_page_opens_without_an_error_and_draws_every_chart(opened):
    """No console error; each chart an SVG image of sensible size named by its title, whose
    marks (bars, lines) have an area to see."""
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
        marks: list[dict[str, Any]] = chart.evaluate(
            "svg => [...svg.querySelectorAll('g.role-mark')].map(g => g.getBBox())"
            ".map(b => ({width: b.width, height: b.height}))"
        )
        assert marks
        assert any(mark["width"] > 0 and mark["height"] > 0 for mark in marks)


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
