"""Writing result tables (CSV, Parquet or JSONL by extension) and printing run summaries."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from pipeline.budgets import BudgetCheck
from pipeline.errors import UsageError
from pipeline.status import StatusResult

TABLE_EXTENSIONS = {".csv", ".parquet", ".jsonl"}


def default_output_path(kind: str, *, now: dt.datetime, folder: Path = Path("outputs")) -> Path:
    """``outputs/<kind>-YYYYmmddTHHMMSSZ.parquet``: a new file per run, sortable by time."""
    stamp = now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return folder / f"{kind}-{stamp}.parquet"


def check_output_path(path: Path) -> None:
    """Refuse an output extension we can't write before any work is done."""
    if path.suffix.lower() not in TABLE_EXTENSIONS:
        raise UsageError(
            f"output file {path} has extension {path.suffix!r}",
            hint="use .csv, .parquet or .jsonl",
        )


def write_table(frame: pl.DataFrame, path: Path) -> Path:
    """Write ``frame`` to ``path`` atomically, readable by its owner only (mode 0600).

    Result files may hold PINs, so the file is created 0600 from the start (never chmod-ed
    after the fact), and it appears under its name only once complete.
    """
    check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "wb") as stream:
            suffix = path.suffix.lower()
            if suffix == ".csv":
                frame.write_csv(stream)
            elif suffix == ".parquet":
                frame.write_parquet(stream)
            else:
                frame.write_ndjson(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return path


def print_outcomes(frame: pl.DataFrame, title: str, console: Console) -> None:
    """Rows per outcome and reason, most frequent first within each outcome."""
    by_reason = (
        frame.group_by("outcome", "reason").len().sort("outcome", "len", descending=[False, True])
    )
    table = Table(title=title)
    for column in ("outcome", "reason", "rows"):
        table.add_column(column, justify="right" if column == "rows" else "left")
    for outcome, reason, count in by_reason.iter_rows():
        table.add_row(outcome, reason or "", str(count))
    console.print(table)


def print_plan_summary(plan: pl.DataFrame, budgets: BudgetCheck, console: Console) -> None:
    """Counts per outcome and reason, then per door with its budget, then budget warnings."""
    print_outcomes(plan, "Plan by outcome and reason", console)
    per_door = (
        plan.group_by("device_id", "site_name", "door_name")
        .agg(
            planned=(pl.col("outcome") == "planned").sum(),
            rejected=(pl.col("outcome") == "rejected").sum(),
        )
        .join(
            budgets.doors.drop("site_name", "door_name").with_columns(_checked=True),
            on="device_id",
            how="left",
        )
        .with_columns(pl.col("door_name").fill_null("(unknown door)"))
    )
    print_door_table(per_door, budgets.mode, console)
    print_budget_warnings(budgets, console)


# More doors than this: the table shows the fullest ones and counts the rest.
DOOR_TABLE_ROWS = 50


def print_door_table(per_door: pl.DataFrame, mode: str, console: Console) -> None:
    """One line per door: the plan's counts and the door's budget after the run."""
    hidden = 0
    if per_door.height > DOOR_TABLE_ROWS:
        hidden = per_door.height - DOOR_TABLE_ROWS
        per_door = per_door.sort("usage", "rejected", descending=True, nulls_last=True).head(
            DOOR_TABLE_ROWS
        )
    else:
        per_door = per_door.sort("site_name", "door_name", nulls_last=True)
    counted = "codes valid at once" if mode == "concurrent" else "codes ever made"
    table = Table(title=f"Plan per door (budget: {counted}; left and usage after this run)")
    numbers = ("planned", "rejected", "budget", "used", "left", "usage")
    for column in ("site", "door", *numbers):
        table.add_column(column, justify="right" if column in numbers else "left")
    for row in per_door.iter_rows(named=True):
        budget, usage = row["budget"], row["usage"]
        # A door with no planned rows has nothing to count against a budget.
        budget_text = ("none" if budget is None else str(budget)) if row["_checked"] else ""
        table.add_row(
            row["site_name"] or "",
            row["door_name"],
            str(row["planned"]),
            str(row["rejected"]),
            budget_text,
            *("" if budget is None else str(row[c]) for c in ("used", "remaining")),
            "" if usage is None else f"{usage:.0%}{' ⚠' if row['near_full'] else ''}",
        )
    if hidden:
        table.caption = f"and {hidden} more doors, less full"
    console.print(table)


def print_budget_warnings(budgets: BudgetCheck, console: Console) -> None:
    """What an operator must know about budgets: doors unbudgeted, near full, over, uncounted."""
    doors = budgets.doors
    unbudgeted = budgets.unbudgeted
    if not unbudgeted.is_empty():
        console.print(
            f"warning: {unbudgeted.height} door(s) have no budget (none configured and Seam"
            f" reports no max_active_codes_supported), so their codes are not limited:"
            f" {_door_names(unbudgeted)}"
        )
    near_full = doors.filter(pl.col("near_full"))
    if not near_full.is_empty():
        console.print(
            f"warning: {near_full.height} door(s) will be at 90 % or more of their budget"
            f" after this run: {_door_names(near_full)}"
        )
    exceeded = budgets.exceeded
    if not exceeded.is_empty():
        console.print(
            f"{exceeded['over'].sum()} code(s) on {exceeded.height} door(s) are past their"
            f" budget (budget_exhausted, --on-budget-exceeded {budgets.on_exceeded}):"
            f" {_door_names(exceeded)}"
        )
    if not budgets.counted_existing and doors["budget"].is_not_null().any():
        console.print(
            "warning: the doors' existing codes were not counted (offline plan); pass --codes"
            " with their /access_codes/list answers, or plan against Seam"
        )


def _door_names(doors: pl.DataFrame, limit: int = 10) -> str:
    names = doors["door_name"].fill_null(doors["device_id"]).to_list()
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(str(name) for name in names[:limit]) + more


def print_status_summary(result: StatusResult, console: Console) -> None:
    """Codes by status, then the ones that need a person, with why."""
    codes = result.codes
    table = Table(title=f"{codes.height} codes refreshed, {result.changed} changed")
    for column in ("status", "codes"):
        table.add_column(column, justify="right" if column == "codes" else "left")
    for status, count in codes.group_by("code_status").len().sort("code_status").iter_rows():
        table.add_row(status or "(none)", str(count))
    console.print(table)
    attention = result.needing_attention
    if attention.is_empty():
        return
    listing = Table(title=f"{attention.height} codes need attention")
    for column in ("reservation", "door", "starts_at", "why"):
        listing.add_column(column)
    for row in attention.head(DOOR_TABLE_ROWS).iter_rows(named=True):
        listing.add_row(
            row["reservation_id"],
            row["door_name"] or row["device_id"],
            row["starts_at"],
            row["needs_attention"],
        )
    if attention.height > DOOR_TABLE_ROWS:
        listing.caption = f"and {attention.height - DOOR_TABLE_ROWS} more: see the results file"
    console.print(listing)


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.completed / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:.1f} codes/s  429s: {task.fields.get('rate_limited', 0)}")


class ApplyProgress:
    """Codes done/total, rate, 429s and ETA on stderr, drawn only when stderr is a terminal."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("creating codes"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not console.is_terminal,
            transient=False,
        )
        self._task = self._progress.add_task("codes", total=None, rate_limited=0, start=False)
        self._rate_limited = 0

    def __enter__(self) -> ApplyProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()

    def start(self, total: int) -> None:
        self._progress.update(self._task, total=total)
        self._progress.start_task(self._task)

    def advance(self, event: str) -> None:
        """``created``/``failed`` finish a code; ``rate_limited``/``unknown`` don't."""
        if event == "rate_limited":
            self._rate_limited += 1
            self._progress.update(self._task, rate_limited=self._rate_limited)
        elif event in {"created", "failed"}:
            self._progress.advance(self._task)
