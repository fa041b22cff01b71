"""``report --format html``: one self-contained page to look at and forward, from the ledger.

The page (``templates/report.html.j2``, Jinja2 with autoescape) holds what needs a person with
the fix, the doors near their budget, and four charts (``charts``) each with its data as a
table: codes per door against its budget, PIN readiness of the coming stays, the apply run's
rejections by reason, and the apply runs' history. It fetches nothing: its styles are inline,
its charts inline SVG, no script at all, and its Content-Security-Policy forbids any fetch.
It never holds a PIN (the hand-off rows lose theirs as they are read: ``page_data``).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import polars as pl

from pipeline.budget.limits import NEAR_FULL
from pipeline.errors import UsageError
from pipeline.ledger.location import LedgerLocation
from pipeline.ledger.store import Ledger
from pipeline.report import page_data
from pipeline.report.files import default_output_path, write_private_text
from pipeline.report.page_data import PageData
from pipeline.report.summary import Report

if TYPE_CHECKING:
    import jinja2

# Doors drawn in the budget chart (the fullest), and lines a table lists before "and N more".
CHARTED_DOORS = 30
LISTED_ROWS = 1_000


@functools.cache
def _templates() -> jinja2.Environment:
    # Jinja2 and the chart libraries load when a page is made, not with every command (Altair
    # alone takes half a second to import).
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@dataclass(frozen=True)
class Table:
    """A table of the page: its caption, column headers (the first column heads each row),
    which columns hold numbers, its rows as text, and how many more it left out."""

    caption: str
    columns: Sequence[str]
    rows: list[list[str]]
    numeric: frozenset[str] = field(default_factory=frozenset)
    more: int = 0


async def export_html(
    report: Report, *, ledger_path: LedgerLocation, out: Path | None = None
) -> Path:
    """Write the page for ``report`` (made from ``ledger_path``) to ``out`` (default
    ``outputs/report-<UTC time>.html``), atomically; returns its path. Raises UsageError
    (exit 2) when it can't be written."""
    out = out or default_output_path("report", now=report.generated_at).with_suffix(".html")
    async with anyio.create_task_group() as tasks:
        # The chart libraries load and start (a second or so) while the ledger is read.
        tasks.start_soon(anyio.to_thread.run_sync, _start_charts)
        ledger = await Ledger.open(ledger_path)
        try:
            data = await page_data.gather_page_data(ledger, report)
        finally:
            await ledger.close()

    def render_and_write() -> Path:
        page = render_page(data)
        try:
            return write_private_text(out, page)
        except OSError as exc:
            raise UsageError(
                f"the report can't be written to {out}: {exc.strerror or exc}"
            ) from exc

    return await anyio.to_thread.run_sync(render_and_write)


def _start_charts() -> None:
    from pipeline.report import charts

    charts.start_engine()


def render_page(data: PageData) -> str:
    """The page's HTML (blocking: Polars and the charts' rendering)."""
    from pipeline.report import charts

    report = data.report
    person = page_data.needs_a_person(data)
    doors = page_data.door_budgets(report)
    readiness = page_data.pin_readiness(data)
    rejections = page_data.rejections(report)
    history = page_data.run_history(data)
    near_full = doors.filter("near_full")
    figures = [
        (
            charts.budget_figure(doors, limit=CHARTED_DOORS),
            _budget_table(doors.head(CHARTED_DOORS)),
        ),
        (charts.readiness_figure(readiness), _readiness_table(readiness)),
        (charts.rejections_figure(rejections, report.run_id), _rejections_table(rejections)),
        (charts.history_figure(history), _history_table(history)),
    ]
    return (
        _templates()
        .get_template("report.html.j2")
        .render(
            generated_at=report.generated_at.strftime("%Y-%m-%d %H:%M UTC"),
            ledger=data.ledger,
            run_id=report.run_id,
            person=_person_table(person),
            person_count=int(person["rows"].sum()),
            near_full=_budget_table(
                near_full, caption=f"Doors at {NEAR_FULL:.0%} or more of their budget"
            ),
            near_full_share=f"{NEAR_FULL:.0%}",
            doors_budgeted=doors.height,
            figures=figures,
        )
    )


def _table(
    caption: str,
    frame: pl.DataFrame,
    columns: dict[str, str],
    *,
    numeric: Iterable[str] = (),
    limit: int = LISTED_ROWS,
) -> Table:
    """``frame``'s ``columns`` (name → header) as text, its first ``limit`` rows."""
    rows = [
        [_text(row[name]) for name in columns]
        for row in frame.head(limit).select(list(columns)).iter_rows(named=True)
    ]
    headers = list(columns.values())
    return Table(
        caption,
        headers,
        rows,
        frozenset(columns[name] for name in numeric),
        max(frame.height - limit, 0),
    )


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, dt.date):
        return value.strftime("%a %Y-%m-%d")
    return str(value)


def _local(column: str) -> pl.Expr:
    """A lock-local instant as written (``2027-03-01T15:00:00+01:00``) → ``2027-03-01 15:00
    +01:00``: the guest's clock, with the offset that says which."""
    return pl.concat_str(
        pl.col(column).str.slice(0, 10),
        pl.col(column).str.slice(11, 5),
        pl.col(column).str.extract(r"(Z|[+-]\d\d:\d\d)$"),
        separator=" ",
        ignore_nulls=True,
    )


def _person_table(person: pl.DataFrame) -> Table:
    shown = person.with_columns(
        door=page_data.door_label().fill_null(""),
        reservation=pl.when(pl.col("reservation_id").is_not_null())
        .then(pl.col("reservation_id"))
        .otherwise(
            pl.format(
                "{} row{}",
                "rows",
                pl.when(pl.col("rows") == 1).then(pl.lit("")).otherwise(pl.lit("s")),
            )
        ),
        check_in=_local("check_in"),
        check_out=_local("check_out"),
    ).with_columns(pl.col("door").replace("", "(no door)"))
    columns = {
        "reservation": "Reservation",
        "problem": "Problem",
        "door": "Door",
        "guest_name": "Guest",
        "check_in": "Check-in",
        "check_out": "Check-out",
        "reason": "Reason",
        "fix": "What to do",
    }
    return _table("Reservations that need a person", shown, columns)


def _budget_table(doors: pl.DataFrame, caption: str = "The doors the chart shows") -> Table:
    columns = {
        "door": "Door",
        "budget": "Budget",
        "reserve": "Reserve",
        "used": "Used before the run",
        "made": "Made by the run",
        "after": "Used after the run",
        "left": "Left",
        "share": "Share used",
    }
    shown = doors.with_columns(
        share=pl.format("{} %", (pl.col("share") * 100).round(0).cast(pl.Int64))
    )
    return _table(caption, shown, columns, numeric=[c for c in columns if c != "door"])


def _readiness_table(readiness: pl.DataFrame) -> Table:
    wide = readiness.pivot(on="readiness", index="date", values="codes").sort("date")
    columns = {
        "date": "Check-in date",
        **{state: state.capitalize() for state in page_data.READINESS},
    }
    return _table("Codes per check-in date", wide, columns, numeric=page_data.READINESS)


def _rejections_table(rejections: pl.DataFrame) -> Table:
    columns = {"reason": "Reason", "outcome": "Outcome", "rows": "Rows"}
    return _table("Rows per reason", rejections, columns, numeric=["rows"])


def _history_table(history: pl.DataFrame) -> Table:
    shown = history.with_columns(pl.col("started_at").dt.strftime("%Y-%m-%d %H:%M:%S"))
    columns = {
        "started_at": "Run start (UTC)",
        "run_id": "Run",
        "created": "Codes made",
        "requests": "Requests to Seam",
        "per_new_code": "Requests per new code",
        "seconds": "Run time (s)",
    }
    return _table(
        "The apply runs", shown, columns, numeric=["created", "requests", "per_new_code", "seconds"]
    )
