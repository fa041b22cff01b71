"""report --format html: the page's data (what needs a person, budgets, PIN readiness, runs)
and the page itself: one file, nothing fetched, nothing run, no PIN, every name escaped.

The page as a browser draws it: ``test_html_browser.py``."""

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
from pipeline.ledger.store import Ledger
from pipeline.report import page_data
from pipeline.report.fixes import FIXES, fix_for
from pipeline.report.page_data import NEEDS_A_PERSON, READY, WAITING, PageData
from tests.generate_ledger import fill_ledger
from tests.report.page_helpers import BUDGET, MARKUP_DOOR, TroubledLedger, troubled_ledger

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]


async def page_data_of(troubled: TroubledLedger) -> PageData:
    report = await report_files(ledger_path=troubled.ledger, now=troubled.now)
    ledger = await Ledger.open(troubled.ledger)
    try:
        return await page_data.gather_page_data(ledger, report)
    finally:
        await ledger.close()


def numbers_in(text: str) -> set[str]:
    """Every run of digits in ``text`` (a PIN written anywhere is one of them)."""
    return set(re.findall(r"\d+", text))


async def test_needs_a_person_lists_attention_orphans_and_the_runs_rejections_with_the_fix(
    tmp_path, monkeypatch
):
    """Codes needing attention and the orphan are one line each with their guest and window;
    the apply run's rejections one line per door and reason with their count; each with the
    fix for its reason."""
    troubled = await troubled_ledger(tmp_path, monkeypatch)
    person = page_data.needs_a_person(await page_data_of(troubled))
    lines = person.select("problem", "reservation_id", "guest_name", "reason", "rows").rows()
    assert [line[:3] for line in lines[:3]] == [
        ("needs attention", "S1", "Guest S1"),
        ("needs attention", "S2", "Guest S2"),
        ("orphaned", "CANCEL", "Guest CANCEL"),
    ]
    assert all(reason.startswith("seam_error:") for _, _, _, reason, _ in lines[:2])
    assert lines[3:] == [
        ("rejected", None, None, "invalid_row", 1),
        ("rejected", None, None, "budget_exhausted", 2),
    ]
    doors = person["device_id"].to_list()
    stuck, working, full = (troubled.doors[name] for name in ("stuck", "working", "full"))
    assert doors == [stuck, stuck, working, working, full]
    fixes = person["fix"].to_list()
    assert fixes[0] == fixes[1] == FIXES["seam_error"]
    assert fixes[2] == fix_for("orphaned")
    assert fixes[4] == FIXES["budget_exhausted"]
    assert (
        person.filter(pl.col("problem") == "orphaned")["check_in"]
        .str.starts_with("2027-02-09T15:00:00")
        .all()
    )


async def test_pin_readiness_counts_the_coming_check_ins_by_the_locks_date(tmp_path, monkeypatch):
    """Fourteen days from each lock's today (1 February in Los Angeles and New York, already
    the 2nd in Berlin: fifteen dates), every readiness each day: the working door's first stay
    is ready (set, with its PIN), the stuck door's need a person, the later ones wait for
    their PIN; the cancelled stay and the rejected rows have no code to count."""
    troubled = await troubled_ledger(tmp_path, monkeypatch)
    data = await page_data_of(troubled)
    assert "code" not in data.pins.columns  # the PINs are dropped as they are read
    readiness = page_data.pin_readiness(data)
    assert readiness.height == 15 * 3
    assert (readiness["date"].min(), readiness["date"].max()) == (
        dt.date(2027, 2, 1),
        dt.date(2027, 2, 15),
    )
    counted = {
        (str(day), state): codes
        for day, state, codes in readiness.filter(pl.col("codes") > 0).rows()
    }
    assert counted == {
        ("2027-02-01", READY): 1,  # W1
        ("2027-02-01", NEEDS_A_PERSON): 1,  # S1
        ("2027-02-02", NEEDS_A_PERSON): 1,  # S2
        ("2027-02-03", WAITING): 1,  # F0 (the full door's first three)
        ("2027-02-04", WAITING): 1,
        ("2027-02-05", WAITING): 1,
        ("2027-02-06", WAITING): 1,  # W2
    }


async def test_door_budgets_and_run_history_come_from_the_report_and_the_requests(
    tmp_path, monkeypatch
):
    """Each budgeted door's used, made and left (the full door near its budget), and per apply
    run the codes it made and the requests its client counted, per new code."""
    troubled = await troubled_ledger(tmp_path, monkeypatch)
    data = await page_data_of(troubled)
    doors = {row["device_id"]: row for row in page_data.door_budgets(data.report).to_dicts()}
    full = doors[troubled.doors["full"]]
    assert (full["budget"], full["after"], full["left"], full["near_full"]) == (BUDGET, 3, 0, True)
    assert doors[troubled.doors["stuck"]]["near_full"] is False
    assert doors[troubled.doors["working"]]["door"] == f"Site 000 / {MARKUP_DOOR}"
    history = page_data.run_history(data)
    first, second = (apply.result for apply in troubled.applies)
    assert history["run_id"].to_list() == [first.run_id, second.run_id]
    assert history["created"].to_list() == [8, 0]
    assert history["requests"].to_list() == [first.requests, second.requests]
    assert history["per_new_code"].to_list() == [first.requests_per_new_code, None]
    assert (history["seconds"] >= 0).all()


async def test_the_page_is_one_file_that_fetches_and_runs_nothing_and_holds_no_pin(
    tmp_path, monkeypatch
):
    """Written where asked, once: no script, no address to fetch, a policy that forbids any
    fetch, four charts with their text alternative, the door name with markup as text, and
    none of the ledger's PINs."""
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
    assert page.count("<desc id=") == 4
    assert "&lt;script&gt;alert(&#34;door&#34;)&lt;/script&gt; Suite A&amp;B" in page
    pins = troubled.pins()
    assert pins  # the working door's first code is set: the ledger has its PIN
    assert not pins & numbers_in(page)


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
    """--format html --out FILE says what it wrote and exits 1 (codes need a person); without
    --out it writes outputs/report-<UTC time>.html; a folder as --out is exit 2, one line."""
    troubled = await troubled_ledger(tmp_path, monkeypatch)
    ledger = str(troubled.ledger)
    capsys.readouterr()

    async def cli(*args: str) -> int:
        return await anyio.to_thread.run_sync(main, ["report", "--ledger", ledger, *args])

    out = tmp_path / "report.html"
    assert await cli("--format", "html", "--out", str(out)) == 1
    assert capsys.readouterr().out == f"wrote {out}\n"
    assert "<h1>Door codes report</h1>" in out.read_text()
    assert await cli("--format", "html") == 1
    [written] = await anyio.to_thread.run_sync(lambda: list(Path("outputs").iterdir()))
    assert re.fullmatch(r"report-\d{8}T\d{6}Z\.html", written.name)
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    capsys.readouterr()
    assert await cli("--format", "html", "--out", str(tmp_path)) == 2
    assert capsys.readouterr().err == (
        f"error: --out {tmp_path} is a folder (--format html writes one file)\n"
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
        "Nothing needs a person: no code needs attention or is orphaned, and no row of the"
        " apply run was rejected or failed.",
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
