"""The nightly job as one command (``oracode-provision nightly``): apply on tonight's export,
then status, then the report, then the summary, each step's output and log lines in a file of
the night's own, and the night's files kept ``keep_days`` days.

Files, in ``out_dir`` (``[nightly] out_dir``, default ``outputs/``), each named after the
night's UTC time (``nightly-20270301T030000Z-...``), created with mode 0600:
    -apply.log        apply's summary and its JSON log lines
    -results.parquet  apply's results (PINs)
    -status.log       status's summary and its JSON log lines
    -status.parquet   status's refreshed codes (PINs)
    -report.json      the report (``REPORT_FORMS``: the report's forms written each night)
    -report.html      the report as a page to look at and forward (``report.html``)
A night's files go once their time in the name is more than ``keep_days`` days before the
night's own (the name, not the file's modification time: a copy or a restore keeps them).

Exit code: the summary's (``report.nightly``): 0 nothing new, 1 new trouble tonight, else the
worse of apply's and status's codes from 2 up.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import anyio.to_thread
from rich.console import Console

from pipeline import commands
from pipeline.cli.logs import configure_logging
from pipeline.cli.output import print_apply_summary, print_status_summary
from pipeline.commands.options import WAIT_FOR_LOCK
from pipeline.common.errors import PipelineError
from pipeline.common.interrupts import Interrupt
from pipeline.common.job_settings import nightly_settings
from pipeline.common.outputs import check_output_folder
from pipeline.common.settings import load_config
from pipeline.ledger.location import LedgerLocation
from pipeline.ledger.store import DEFAULT_LEDGER
from pipeline.report.nightly import NightlySummary
from pipeline.seam.client import Transport

# The report's forms the job writes each night: the file's ending and ``report --format``.
REPORT_FORMS = (("report.json", "json"), ("report.html", "html"))
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
# A night's file: its name starts with the night's UTC time.
NIGHT_FILE = re.compile(r"^nightly-(\d{8}T\d{6}Z)-")
# A log file's width for the summaries' tables (no terminal to measure).
LOG_WIDTH = 120


@dataclass
class NightlyRun:
    """What ``run_nightly`` did: the summary, where the night's files are (``prefix`` and a
    step's ending), each step's exit code and, when a step stopped with an error, its line;
    and the older nights' files it removed."""

    prefix: Path
    apply_exit: int = 0
    status_exit: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    summary: NightlySummary | None = None
    removed: list[Path] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """The summary's; without one (no ledger to read), the worse step's, 2 at least."""
        if self.summary is not None:
            return self.summary.exit_code
        return max(self.apply_exit, self.status_exit, 2)

    def path(self, ending: str) -> Path:
        return self.prefix.with_name(f"{self.prefix.name}-{ending}")

    def error_lines(self) -> list[str]:
        """The steps' errors, each different one once (a ledger out of reach stops every step
        the same way), as the ``error:`` lines for standard error."""
        return [f"error: {line}" for line in dict.fromkeys(self.errors.values())]

    def lines(self) -> list[str]:
        """What the job prints: the steps' codes and where their files are, then the summary."""
        lines = [
            f"apply exit {self.apply_exit}, status exit {self.status_exit}; logs, results and"
            f" report: {self.prefix}-*"
        ]
        if self.removed:
            lines.append(f"removed {len(self.removed)} file(s) of earlier nights")
        return lines + (self.summary.lines() if self.summary is not None else [])


async def run_nightly(
    paths: Sequence[Path],
    *,
    config_path: Path | None = None,
    ledger_path: LedgerLocation = DEFAULT_LEDGER,
    out_dir: Path | None = None,
    keep_days: int | None = None,
    reissue_changed: bool | None = None,
    wait_for_lock: float = WAIT_FOR_LOCK,
    transport: Transport | None = None,
    now: dt.datetime | None = None,
    interrupt: Interrupt | None = None,
) -> NightlyRun:
    """Apply, status, the report and the summary, as the nightly job runs them (see the
    module's docstring); ``out_dir`` and ``keep_days`` over the config's ``[nightly]``.

    A step that can't do its work (exit 2 or 3) is recorded and the next steps go on; a
    signal stops the Seam steps (apply's results are written as for any stop) and the job
    ends with the summary. Raises UsageError (exit 2), before anything is done, for a config
    error, a ``keep_days`` under 1 or an ``out_dir`` that can't be written.
    """
    now = now or dt.datetime.now(dt.UTC)
    config = await anyio.to_thread.run_sync(load_config, config_path)
    nightly = nightly_settings(config.nightly, out_dir=out_dir, keep_days=keep_days)
    await anyio.to_thread.run_sync(check_output_folder, nightly.out_dir)
    run = NightlyRun(nightly.out_dir / f"nightly-{now.astimezone(dt.UTC):{STAMP_FORMAT}}")

    with _step_log(run.path("apply.log")) as console:
        try:
            applied = await commands.apply_files(
                paths,
                config_path=config_path,
                ledger_path=ledger_path,
                out=run.path("results.parquet"),
                wait_for_lock=wait_for_lock,
                reissue_changed=reissue_changed,
                transport=transport,
                interrupt=interrupt,
            )
        except PipelineError as exc:
            run.apply_exit = _failed(run, "apply", exc, console)
        else:
            run.apply_exit = applied.exit_code
            print_apply_summary(
                applied.result,
                applied.budgets,
                out=applied.out,
                ledger=applied.ledger,
                newly_orphaned=applied.newly_orphaned,
                console=console,
            )
    if run.apply_exit < 128:  # a signal stops the job's work with Seam
        with _step_log(run.path("status.log")) as console:
            try:
                checked = await commands.status_files(
                    config_path=config_path,
                    ledger_path=ledger_path,
                    out=run.path("status.parquet"),
                    transport=transport,
                    interrupt=interrupt,
                )
            except PipelineError as exc:
                run.status_exit = _failed(run, "status", exc, console)
            else:
                run.status_exit = checked.exit_code
                print_status_summary(checked.result, console)
    for ending, fmt in REPORT_FORMS:
        try:
            await commands.export_report(
                ledger_path=ledger_path, fmt=fmt, out=run.path(ending), as_of=now
            )
        except PipelineError as exc:
            run.errors[f"report ({fmt})"] = exc.one_line()
    try:
        run.summary = await commands.summarise_night(
            ledger_path=ledger_path,
            results=run.path("results.parquet"),
            apply_exit=run.apply_exit,
            status_exit=run.status_exit,
            now=now,
        )
    except PipelineError as exc:
        run.errors["summary"] = exc.one_line()
    run.removed = await anyio.to_thread.run_sync(
        lambda: remove_old_nights(nightly.out_dir, now=now, keep_days=nightly.keep_days)
    )
    return run


def _failed(run: NightlyRun, step: str, exc: PipelineError, console: Console) -> int:
    """Record a step that stopped with ``exc`` (its line in the step's log too); its code."""
    run.errors[step] = exc.one_line()
    console.print(f"error: {exc.one_line()}", markup=False, soft_wrap=True)
    return exc.exit_code


def remove_old_nights(folder: Path, *, now: dt.datetime, keep_days: int) -> list[Path]:
    """Remove the files in ``folder`` of nights more than ``keep_days`` days before ``now``,
    judged by the night's UTC time in each name (``nightly-<time>-...``); other files are
    never touched. Returns what was removed."""
    oldest = now.astimezone(dt.UTC) - dt.timedelta(days=keep_days)
    removed = []
    for path in sorted(folder.iterdir()):
        match = NIGHT_FILE.match(path.name)
        if match is None or not path.is_file():
            continue
        night = dt.datetime.strptime(match[1], STAMP_FORMAT).replace(tzinfo=dt.UTC)
        if night < oldest:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def _step_log(path: Path) -> Iterator[Console]:
    """A step's log file (mode 0600): its log lines as JSON and whatever it says on standard
    error go there, and the returned console writes its summary there; afterwards, the job's
    own lines go to standard error again."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    stream: TextIO = os.fdopen(descriptor, "w", encoding="utf-8", errors="backslashreplace")
    try:
        with stream, contextlib.redirect_stderr(stream):
            configure_logging("json")  # its handler writes to the redirected stderr
            yield Console(file=stream, width=LOG_WIDTH, highlight=False, no_color=True)
    finally:
        configure_logging("text")
