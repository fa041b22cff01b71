"""report --format html: the page's data (who needs a person, budgets, PIN readiness, runs) and
the page itself: one file, nothing fetched, nothing run, no PIN, every name escaped and kept
from reordering the page, the ledger read once and its place never said.

The page as a browser draws it: ``test_html_browser.py``; its charts alone: ``test_charts.py``."""

from __future__ import annotations

import datetime as dt
import re
import stat
import tomllib
from pathlib import Path

import anyio.to_thread
import polars as pl
import pytest

from pipeline.cli import main
from pipeline.commands import export_report, report_files
from pipeline.common.settings import BudgetOptions
from pipeline.ledger.store import Ledger
from pipeline.report import charts, page_data
from pipeline.report.page_data import NEEDS_A_PERSON, READY, WAITING, PageData, gather_page_data
from pipeline.report.page_text import BIDI_CONTROLS, PIN_REMOVED
from pipeline.report.summary import make_report
from tests.apply_helpers import one_door_sandbox
from tests.generate_ledger import fill_ledger
from tests.ledger.helpers import query
from tests.report.page_helpers import (
    BIDI_DOOR,
    TroubledLedger,
    page_tables,
    troubled_ledger,
)

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

PERSON = "Reservations that need a person"


async def page_data_of(troubled: TroubledLedger) -> PageData:
    ledger = await Ledger.open(troubled.ledger)
    try:
        async with ledger.snapshot():
            report = await make_report(ledger, now=troubled.now)
            return await gather_page_data(ledger, report, made_at=troubled.now)
    finally:
        await ledger.close()


async def page_of(troubled: TroubledLedger, out: Path) -> str:
    await export_report(ledger_path=troubled.ledger, fmt="html", out=out, as_of=troubled.now)
    return await anyio.to_thread.run_sync(out.read_text)


def numbers_in(text: str) -> set[str]:
    """Every run of digits in ``text`` (a PIN written anywhere is one of them)."""
    return set(re.findall(r"\d+", text))


def figure_number(page: str, name: str) -> str:
    """The headline figure the page gives for ``name``."""
    found = re.search(rf"<dt>{re.escape(name)}</dt><dd>([^<]*)</dd>", page)
    assert found is not None
    return found[1]


async def test_needs_a_person_is_the_reports_own_list_one_line_per_reservation(
    tmp_path, monkeypatch
):
    """The page's table is the report's needs_a_person: one line per reservation, door and
    problem with its guest (the rejected rows too), the report's reason, message and fix; the
    headline counts the reservations."""
    troubled = await troubled_ledger(tmp_path, monkeypatch)
    page = await page_of(troubled, tmp_path / "report.html")
    report = await report_files(ledger_path=troubled.ledger, now=troubled.now)
    header, *rows = page_tables(page)[PERSON]
    assert header == [
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
    assert [(row[0], row[1], row[5], row[6]) for row in rows] == [
        ("F3", "Guest F3", "rejected", "budget_exhausted"),
        ("F4", "Guest F4", "rejected", "budget_exhausted"),
        ("BAD", "Guest BAD", "rejected", "invalid_row"),
        ("S1", "Guest S1", "needs attention", "seam_error"),
        ("S2", "Guest S2", "needs attention", "seam_error"),
        ("CANCEL", "Guest CANCEL", "orphaned", "orphaned"),
    ]
    person = report.needs_a_person
    assert [row[0] for row in rows] == person["reservation_id"].to_list()
    assert [row[-1] for row in rows] == person["fix"].to_list()
    assert rows[-1][3:5] == ["2027-02-09 15:00 -05:00", "2027-02-11 11:00 -05:00"]
    assert figure_number(page, "Reservations that need a person") == "6"


async def test_pin_readiness_counts_the_coming_stays_by_the_locks_date(tmp_path, monkeypatch):
    """Fourteen days from each lock's today (1 February in Los Angeles and New York, already
    the 2nd in Berlin: fifteen dates): a stay needs a person when the report lists it (so the
    chart's count is the table's lines checking in those days), the other codes are ready
    (set, with their PIN) or waiting for one; the unreadable row has no date to be drawn on."""
    troubled = await troubled_ledger(tmp_path, monkeypatch)
    data = await page_data_of(troubled)
    assert set(data.codes.columns) == {"check_in", "idempotency_tag", "ready"}  # no PIN
    readiness = page_data.pin_readiness(data)
    assert readiness.height == 15 * 3
    assert (readiness["date"].min(), readiness["date"].max()) == (
        dt.date(2027, 2, 1),
        dt.date(2027, 2, 15),
    )
    counted = {
        (str(day), state): stays
        for day, state, stays in readiness.filter(pl.col("stays") > 0).rows()
    }
    assert counted == {
        ("2027-02-01", READY): 1,  # W1
        ("2027-02-01", NEEDS_A_PERSON): 1,  # S1
        ("2027-02-02", NEEDS_A_PERSON): 1,  # S2
        ("2027-02-03", WAITING): 1,  # F0 (the full door's first three)
        ("2027-02-04", WAITING): 1,
        ("2027-02-05", WAITING): 1,
        ("2027-02-06", WAITING): 1,  # W2
        ("2027-02-06", NEEDS_A_PERSON): 1,  # F3, past the budget
        ("2027-02-07", NEEDS_A_PERSON): 1,  # F4
        ("2027-02-09", NEEDS_A_PERSON): 1,  # CANCEL: its code still opens the door
    }
    person = data.report.needs_a_person
    in_the_fortnight = person.filter(
        pl.col("check_in").str.slice(0, 10).is_between(pl.lit("2027-02-01"), pl.lit("2027-02-15"))
    )
    assert readiness.filter(pl.col("readiness") == NEEDS_A_PERSON)["stays"].sum() == (
        in_the_fortnight.height
    )
    assert person.height == in_the_fortnight.height + 1  # BAD: check_in is not a date


def doors_section(*doors: tuple[str, int, int, int, int, int, float]) -> pl.DataFrame:
    """The report's doors section for ``(name, budget, reserve, used, after, room, usage)``."""
    return pl.DataFrame(
        [
            {
                "device_id": f"dev-{name}",
                "site_name": "Site",
                "door_name": name,
                "matched": True,
                "budget": budget,
                "reserve": reserve,
                "used": used,
                "after": after,
                "room": room,
                "usage": usage,
                "near_full": usage >= 0.9,
            }
            for name, budget, reserve, used, after, room, usage in doors
        ]
    )


def test_a_doors_bar_adds_up_to_its_budget_with_the_reserve_and_what_is_over():
    """Each door's parts: used before the run and made by it (within the budget), the room
    for the next runs (the report's), what is left of the reserve, and what is over the
    budget; they add up to the budget, or to the codes used past it. Fullest first, a budget
    of 0 full, and the chart's sentence says the fullest door's own numbers."""
    doors = page_data.door_budgets(
        doors_section(
            ("A", 10, 2, 5, 7, 1, 0.7),
            ("B", 10, 2, 9, 12, 0, 1.2),
            ("C", 0, 0, 0, 0, 0, 1.0),
            ("D", 10, 3, 6, 8, 0, 0.8),
        )
    )
    parts = ("used_part", "made_part", "room", "reserve_part", "over")
    assert doors.select("door_name", "made", *parts).rows() == [
        ("B", 3, 9, 1, 0, 0, 2),
        ("C", 0, 0, 0, 0, 0, 0),
        ("D", 2, 6, 2, 0, 2, 0),
        ("A", 2, 5, 2, 1, 2, 0),
    ]
    assert doors.select(pl.sum_horizontal(*parts)).to_series().to_list() == [12, 0, 10, 10]
    assert doors["near_full"].to_list() == [True, True, False, False]
    assert charts.budget_figure(doors, limit=30).description == (
        "4 doors, fullest first. The fullest, Site / B, has used 12 of its budget of 10 codes"
        " (3 by this run): 2 over it."
    )
    assert charts.budget_figure(doors.tail(1), limit=30).description == (
        "1 door, fullest first. The fullest, Site / A, has used 7 of its budget of 10 codes"
        " (2 by this run); 1 left for the next runs, beyond a reserve of 2."
    )


async def test_a_door_with_a_budget_of_0_is_drawn_full(tmp_path, monkeypatch):
    """A budget of 0 (the settings allow it): every row rejected, and the page shows the door
    at 100 % of its budget, near full."""
    run, door = one_door_sandbox(tmp_path, monkeypatch, seed=32)
    stays = pl.DataFrame(
        {
            "reservation_id": ["Z1"],
            "device_id": [door],
            "check_in": ["2027-03-01"],
            "check_out": ["2027-03-03"],
            "guest_name": ["Zoe Zero"],
        }
    )
    applied = await run.apply(stays, budget=BudgetOptions(per_door=0))
    assert applied.result.results["reason"].to_list() == ["budget_exhausted"]
    out = tmp_path / "report.html"
    await export_report(ledger_path=run.ledger, fmt="html", out=out)
    page = out.read_text()
    _, *rows = page_tables(page)["Doors at 90% or more of their budget"]
    assert [row[1:] for row in rows] == [["0", "0", "0", "0", "0", "0", "0", "100 %"]]
    assert figure_number(page, "Doors at 90% or more of their budget") == "1"
    assert "has used 0 of its budget of 0 codes (0 by this run)" in page


async def test_runs_and_their_requests_per_new_code(tmp_path, monkeypatch):
    """Per apply run, by its place: the codes it made and the requests its client counted,
    per new code."""
    troubled = await troubled_ledger(tmp_path, monkeypatch)
    history = page_data.run_history(await page_data_of(troubled))
    first, second = (apply.result for apply in troubled.applies)
    assert history["run"].to_list() == [1, 2]
    assert history["run_id"].to_list() == [first.run_id, second.run_id]
    assert history["created"].to_list() == [8, 0]
    assert history["requests"].to_list() == [first.requests, second.requests]
    assert history["per_new_code"].to_list() == [first.requests_per_new_code, None]
    assert (history["seconds"] >= 0).all()


async def test_the_page_is_one_file_that_fetches_and_runs_nothing_and_holds_no_pin(
    tmp_path, monkeypatch
):
    """Written where asked, once: no script, no address to fetch, a policy that forbids any
    fetch, four charts each named by its title and described once (its caption, no SVG
    <desc>), their data tables open (they print), the door name with markup as text, nothing
    of where the ledger is, and none of the ledger's PINs."""
    troubled = await troubled_ledger(tmp_path, monkeypatch)
    out = tmp_path / "page" / "report.html"
    run = await export_report(ledger_path=troubled.ledger, fmt="html", out=out, as_of=troubled.now)
    assert run.written == (out,)
    assert sorted(path.name for path in out.parent.iterdir()) == ["report.html"]
    page = out.read_text()
    assert "<script" not in page.lower()
    assert not re.search(r"\b(src|href|action|srcset|poster)\s*=", page, re.IGNORECASE)
    assert not re.search(r"url\(|@import", page)
    assert "default-src 'none'" in page
    assert page.count('role="img"') == 4
    for key in ("budgets", "readiness", "rejections", "history"):
        assert f'aria-labelledby="{key}-title"' in page
    assert "<desc" not in page
    assert page.count("<figcaption>") == 4
    assert page.count("<details open>") == page.count("<details") == 4
    assert "&lt;script&gt;alert(&#34;door&#34;)&lt;/script&gt; Suite A&amp;B" in page
    assert troubled.ledger.name not in page
    assert str(troubled.ledger.parent) not in page
    pins = troubled.pins()
    assert pins  # the working door's first code is set: the ledger has its PIN
    assert not pins & numbers_in(page)


async def test_a_pin_in_seams_words_or_a_name_is_removed_from_the_page(tmp_path, monkeypatch):
    """A PIN of the ledger inside Seam's error on a code, a rejected row's message and a
    guest's name is replaced where the page shows them; dates and counts keep their digits."""
    troubled = await troubled_ledger(tmp_path, monkeypatch)
    pin = sorted(troubled.pins())[0]
    query(
        troubled.ledger,
        "UPDATE codes SET needs_attention = ? WHERE reservation_id = 'S1'",
        f"seam_error: the lock refused code {pin}",
    )
    query(
        troubled.ledger,
        "UPDATE without_code SET message = ?, guest_name = ? WHERE reservation_id = 'BAD'",
        f"check_in {pin}-02 is not a date",
        f"Guest {pin}",
    )
    page = await page_of(troubled, tmp_path / "report.html")
    assert pin not in numbers_in(page)
    rows = {row[0]: row for row in page_tables(page)[PERSON][1:]}
    assert rows["S1"][7] == f"seam_error: the lock refused code {PIN_REMOVED}"
    assert rows["BAD"][7] == f"check_in {PIN_REMOVED}-02 is not a date"
    assert rows["BAD"][1] == f"Guest {PIN_REMOVED}"
    assert rows["S1"][3] == "2027-02-01 15:00 -08:00"


async def test_a_names_direction_controls_stay_in_its_cell(tmp_path, monkeypatch):
    """A door name with a right-to-left override is isolated where the tables show it
    (<bdi>), and no chart, caption or composed message holds a direction control: it can't
    reverse the numbers that follow it."""
    troubled = await troubled_ledger(tmp_path, monkeypatch)
    page = await page_of(troubled, tmp_path / "report.html")
    isolated = re.findall(r"<bdi>([^<]*)</bdi>", page)
    assert any(BIDI_DOOR in cell for cell in isolated)
    assert page.count("\u202e") == sum(cell.count("\u202e") for cell in isolated)
    drawn = re.findall(r"<svg\b.*?</svg>|<figcaption>.*?</figcaption>", page, re.DOTALL)
    assert len(drawn) == 8
    assert not any(BIDI_CONTROLS.search(part) for part in drawn)
    assert "Site 000 / Suite 12 Nord" in "".join(drawn)
    rows = {row[0]: row for row in page_tables(page)[PERSON][1:]}
    assert "door Suite 12 Nord has a budget of 3 codes" in rows["F3"][7]


async def test_the_report_and_its_page_read_the_ledger_once(tmp_path, monkeypatch):
    """The page's data and the report come from one opening of the ledger (one snapshot)."""
    troubled = await troubled_ledger(tmp_path, monkeypatch)
    opened: list[object] = []
    real_open = Ledger.open.__func__

    async def counting_open(cls: type[Ledger], path: object) -> Ledger:
        opened.append(path)
        return await real_open(cls, path)

    monkeypatch.setattr(Ledger, "open", classmethod(counting_open))
    await export_report(ledger_path=troubled.ledger, fmt="html", out=tmp_path / "r.html")
    assert opened == [troubled.ledger]


async def test_the_page_for_ten_thousand_codes_is_under_5_mb_without_a_pin(tmp_path):
    """A ledger of 10,000 codes (seven nightly runs, 500 doors): the page is under 5 MB and
    none of its PINs is in it."""
    now = dt.datetime(2027, 3, 1, 3, tzinfo=dt.UTC)
    pins = await fill_ledger(tmp_path / "ledger.sqlite", codes=10_000, doors=500, now=now)
    out = tmp_path / "report.html"
    await export_report(ledger_path=tmp_path / "ledger.sqlite", fmt="html", out=out, as_of=now)
    assert len(pins) > 5_000
    assert out.stat().st_size < 5 * 1024 * 1024
    assert not pins & numbers_in(out.read_text())


async def test_report_format_html_from_the_command_line(tmp_path, monkeypatch, capsys):
    """--format html --out FILE says what it wrote and exits 1 (reservations need a person);
    --as-of makes it as of that instant (its stamp, its fortnight); without --out it writes
    outputs/report-<UTC time>.html; a folder as --out, or an --as-of without an offset, is
    exit 2 and one line."""
    troubled = await troubled_ledger(tmp_path, monkeypatch)
    ledger = str(troubled.ledger)
    capsys.readouterr()

    async def cli(*args: str) -> int:
        return await anyio.to_thread.run_sync(main, ["report", "--ledger", ledger, *args])

    out = tmp_path / "report.html"
    assert await cli("--format", "html", "--out", str(out), "--as-of", "2027-02-03T09:30Z") == 1
    assert capsys.readouterr().out == f"wrote {out}\n"
    page = out.read_text()
    assert "<h1>Door codes report</h1>" in page
    assert re.search(r"As of 2027-02-03 09:30 UTC \(made \d{4}-\d\d-\d\d \d\d:\d\d UTC\)", page)
    dates = [row[0] for row in page_tables(page)["Stays per check-in date"][1:]]
    assert (dates[0], dates[-1]) == ("Wed 2027-02-03", "Tue 2027-02-16")
    assert await cli("--format", "html") == 1
    [written] = await anyio.to_thread.run_sync(lambda: list(Path("outputs").iterdir()))
    assert re.fullmatch(r"report-\d{8}T\d{6}Z\.html", written.name)
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert "(made" not in written.read_text()
    capsys.readouterr()
    assert await cli("--format", "html", "--out", str(tmp_path)) == 2
    assert capsys.readouterr().err == (
        f"error: --out {tmp_path} is a folder (--format html writes one file)\n"
    )
    assert await cli("--as-of", "2027-02-03 09:30") == 2
    assert capsys.readouterr().err == (
        "error: --as-of '2027-02-03 09:30' is not an instant with its offset (e.g."
        " 2027-02-01T03:00:00Z or 2027-02-01T04:00:00+01:00)\n"
    )


async def test_a_ledger_with_no_run_yet_gives_a_page_that_says_so(tmp_path):
    """No run, no code: no chart, and each section says in a sentence why it is empty."""
    ledger = tmp_path / "ledger.sqlite"
    await (await Ledger.open(ledger)).close()
    out = tmp_path / "report.html"
    run = await export_report(ledger_path=ledger, fmt="html", out=out)
    assert run.exit_code == 0
    page = out.read_text()
    assert "<svg" not in page
    assert re.findall(r'<p class="empty">([^<]*)</p>', page) == [
        "Nobody needs a person: every guest of the latest input has a working code.",
        "No door is at 90% or more of its budget.",
        "No door of the apply run has a budget.",
        "No stay checks in over the next 14 days.",
        "No apply run yet.",
        "No apply run has finished yet.",
    ]


def test_every_template_is_installed_with_the_package():
    """pyproject's package data for pipeline.report names every file of its templates
    folder: an installed (not editable) package finds the page's template."""
    root = Path(__file__).resolve().parents[2]
    config = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["pipeline.report"]
    report = root / "pipeline" / "report"
    declared = {path for pattern in patterns for path in report.glob(pattern)}
    assert declared == set((report / "templates").iterdir())
    assert declared
