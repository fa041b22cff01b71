"""``report --format html``: one self-contained page to look at and forward, from the ledger.

The page (``templates/report.html.j2``, Jinja2 with autoescape) holds who needs a person with
the fix (the report's own ``needs_a_person``), the doors near their budget, and four charts
(``charts``) each with its data as a table: codes per door against its budget, PIN readiness
of the coming stays, the apply run's rejections by reason, and the apply runs' history. It
fetches nothing: its styles are inline, its charts inline SVG, no script at all, and its
Content-Security-Policy forbids any fetch. It never holds a PIN (``page_data``), and says
nothing of where the ledger is: it is made to be forwarded.
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
from pipeline.common.errors import UsageError
from pipeline.common.outputs import default_output_path, write_private_text
from pipeline.report import page_data
from pipeline.report.page_data import PageData
from pipeline.report.page_text import BIDI_CONTROLS, number
from pipeline.report.people import NOBODY

if TYPE_CHECKING:
    import jinja2

# Doors drawn in the budget chart (the fullest), and lines a table lists before "and N more".
CHARTED_DOORS = 30
LISTED_ROWS = 1_000
STAMP = "%Y-%m-%d %H:%M UTC"


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
    which columns hold numbers, its rows as text, and how many more it left out. Every cell
    that isn't a number is isolated (``<bdi>``): a name's direction controls stay in it."""

    caption: str
    columns: Sequence[str]
    rows: list[list[str]]
    numeric: frozenset[str] = field(default_factory=frozenset)
    more: int = 0


async def start_charts() -> None:
    """Load the chart libraries and start vl-convert's engine (a second or so), in a worker
    thread: a caller may do it while it reads the ledger."""

    def start() -> None:
        from pipeline.report import charts

        charts.start_engine()

    await anyio.to_thread.run_sync(start)


async def write_page(data: PageData, out: Path | None = None) -> Path:
    """Write the page of ``data`` to ``out`` (default ``outputs/report-<UTC time>.html``, the
    time it is made), atomically, mode 0600; returns its path. Raises UsageError (exit 2) when
    it can't be written."""
    out = out or default_output_path("report", now=data.made_at).with_suffix(".html")

    def render_and_write() -> Path:
        page = render_page(data)
        try:
            return write_private_text(out, page)
        except OSError as exc:
            raise UsageError(
                f"the report can't be written to {out}: {exc.strerror or exc}"
            ) from exc

    return await anyio.to_thread.run_sync(render_and_write)


def render_page(data: PageData) -> str:
    """The page's HTML (blocking: Polars and the charts' rendering)."""
    from pipeline.report import charts

    report = data.report
    doors = page_data.door_budgets(report.doors)
    readiness = page_data.pin_readiness(data)
    rejections = page_data.rejections(report)
    history = page_data.run_history(data)
    near_full = doors.filter("near_full")
    figures = [
        (charts.budget_figure(doors, limit=CHARTED_DOORS), _budget_table(doors, CHARTED_DOORS)),
        (charts.readiness_figure(readiness), _readiness_table(readiness)),
        (charts.rejections_figure(rejections, report.run_id), _rejections_table(rejections)),
        (charts.history_figure(history), _history_table(history)),
    ]
    made = data.made_at.astimezone(dt.UTC)
    as_of = data.as_of.astimezone(dt.UTC)
    near = f"{NEAR_FULL:.0%}"
    return (
        _templates()
        .get_template("report.html.j2")
        .render(
            as_of=as_of.strftime(STAMP),
            made=made.strftime(STAMP) if abs(made - as_of) >= dt.timedelta(minutes=1) else None,
            run_id=report.run_id,
            person=_person_table(report.needs_a_person),
            people=number(page_data.reservations_needing_a_person(report.needs_a_person)),
            nobody=NOBODY,
            near_full=_budget_table(near_full, caption=f"Doors at {near} or more of their budget"),
            near_full_count=number(near_full.height),
            near_full_share=near,
            doors_budgeted=number(doors.height),
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
    return Table(
        caption,
        list(columns.values()),
        rows,
        frozenset(columns[name] for name in numeric),
        max(frame.height - limit, 0),
    )


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return number(value)
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, dt.date):
        return value.strftime("%a %Y-%m-%d")
    return str(value)


def _local(column: str) -> pl.Expr:
    """A lock-local instant as written (``2027-03-01T15:00:00+01:00``) → ``2027-03-01 15:00
    +01:00``: the guest's clock, with the offset that says which; a booking's own times
    (a row without a code) as the export gave them."""
    is_instant = pl.col(column).str.contains(r"^\d{4}-\d\d-\d\dT\d\d:\d\d")
    written = pl.concat_str(
        pl.col(column).str.slice(0, 10),
        pl.col(column).str.slice(11, 5),
        pl.col(column).str.extract(r"(Z|[+-]\d\d:\d\d)$"),
        separator=" ",
        ignore_nulls=True,
    )
    return pl.when(is_instant).then(written).otherwise(pl.col(column))


def _person_table(person: pl.DataFrame) -> Table:
    """The report's ``needs_a_person``, a line per reservation, door and problem."""
    place = pl.format("(no id: {} line {})", "source_file", "source_line")
    shown = person.with_columns(
        page_data.door_label(),
        reservation=pl.coalesce("reservation_id", place, pl.lit("(no id)")),
        problem=pl.col("problem").str.replace_all("_", " "),
        # Texts made of names and numbers: a name's direction control would reorder the rest.
        **{
            name: pl.col(name).str.replace_all(BIDI_CONTROLS.pattern, "")
            for name in ("reason", "message")
        },
        check_in=_local("check_in"),
        check_out=_local("check_out"),
    )
    columns = {
        "reservation": "Reservation",
        "guest_name": "Guest",
        "door": "Door",
        "check_in": "Check-in",
        "check_out": "Check-out",
        "problem": "Problem",
        "reason": "Reason",
        "message": "What is wrong",
        "fix": "What to do",
    }
    return _table("Reservations that need a person", shown, columns)


def _budget_table(
    doors: pl.DataFrame, limit: int = LISTED_ROWS, caption: str = "The doors the chart shows"
) -> Table:
    columns = {
        "door": "Door",
        "budget": "Budget",
        "reserve": "Reserve",
        "used": "Used before the run",
        "made": "Made by the run",
        "after": "Used after the run",
        "room": "Room for the next runs",
        "over": "Over the budget",
        "share": "Share used",
    }
    shown = doors.with_columns(
        share=pl.format("{} %", (pl.col("usage") * 100).round(0).cast(pl.Int64))
    )
    numeric = [name for name in columns if name != "door"]
    return _table(caption, shown, columns, numeric=numeric, limit=limit)


def _readiness_table(readiness: pl.DataFrame) -> Table:
    wide = readiness.pivot(on="readiness", index="date", values="stays").sort("date")
    columns = {
        "date": "Check-in date",
        **{state: state[0].upper() + state[1:] for state in page_data.READINESS},
    }
    return _table("Stays per check-in date", wide, columns, numeric=page_data.READINESS)


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
    numeric = ["created", "requests", "per_new_code", "seconds"]
    return _table("The apply runs", shown, columns, numeric=numeric)
