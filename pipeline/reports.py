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

from pipeline.errors import UsageError

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


def print_plan_summary(plan: pl.DataFrame, console: Console) -> None:
    """Counts per outcome and reason, then per door."""
    print_outcomes(plan, "Plan by outcome and reason", console)

    per_door = (
        plan.with_columns(pl.col("door_name").fill_null("(unknown door)"))
        .group_by("site_name", "door_name")
        .agg(
            planned=(pl.col("outcome") == "planned").sum(),
            rejected=(pl.col("outcome") == "rejected").sum(),
            skipped=(pl.col("outcome") == "skipped").sum(),
        )
        .sort("site_name", "door_name", nulls_last=True)
    )
    doors = Table(title="Plan per door")
    for column in ("site", "door", "planned", "rejected", "skipped"):
        doors.add_column(
            column, justify="right" if column in {"planned", "rejected", "skipped"} else "left"
        )
    for site, door, planned, rejected, skipped in per_door.iter_rows():
        doors.add_row(site or "", door, str(planned), str(rejected), str(skipped))
    console.print(doors)


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
