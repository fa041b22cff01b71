"""The commands as library functions: each CLI command is one call that a test can make, an
orchestration of the stages read top to bottom, one module per command (``plan``, ``apply``,
``status``, ``pins``, ``doors``, ``nightly``, ``servers``); the report's commands are here.
Their options, defaults and checks are ``options``'.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import anyio
import anyio.to_thread

from pipeline.commands.apply import ApplyRun, apply_files
from pipeline.commands.crash import save_crash_details
from pipeline.commands.doors import DoorsRun, list_doors
from pipeline.commands.nightly import summarise_night
from pipeline.commands.options import REPORT_FORMAT, check_runs, instant_option
from pipeline.commands.pins import PinsRun, export_pins
from pipeline.commands.plan import PlanRun, plan_files
from pipeline.commands.runs import require_ledger
from pipeline.commands.servers import serve_sandbox, serve_webhooks
from pipeline.commands.status import StatusRun, status_files
from pipeline.common.errors import PipelineError
from pipeline.ledger.location import LedgerLocation
from pipeline.ledger.store import DEFAULT_LEDGER, Ledger
from pipeline.report.files import check_report_out, write_report
from pipeline.report.html import start_charts, write_page
from pipeline.report.page_data import PageData, gather_page_data
from pipeline.report.summary import DEFAULT_RUNS, Report, make_report

__all__ = [
    "ApplyRun",
    "DoorsRun",
    "PinsRun",
    "PlanRun",
    "ReportRun",
    "StatusRun",
    "apply_files",
    "export_pins",
    "export_report",
    "list_doors",
    "plan_files",
    "report_files",
    "save_crash_details",
    "serve_sandbox",
    "serve_webhooks",
    "status_files",
    "summarise_night",
]


async def report_files(
    *,
    ledger_path: LedgerLocation = DEFAULT_LEDGER,
    run_id: str | None = None,
    runs: int = DEFAULT_RUNS,
    now: dt.datetime | None = None,
) -> Report:
    """The report from the ledger alone (no key needed, no lock taken: a run may be going on),
    as of ``now`` (default: now).

    Raises UsageError (exit 2) for ``runs`` under 1, a missing ledger or an unknown ``run_id``,
    LedgerError (exit 3) when a PostgreSQL ledger's server can't be reached.
    """
    now = now or dt.datetime.now(dt.UTC)
    report, _ = await _read_report(ledger_path, run_id=run_id, runs=runs, now=now)
    return report


async def _read_report(
    ledger_path: LedgerLocation,
    *,
    run_id: str | None,
    runs: int,
    now: dt.datetime,
    page_made_at: dt.datetime | None = None,
) -> tuple[Report, PageData | None]:
    """The report, and with ``page_made_at`` what its HTML page needs too, from one snapshot
    of the ledger (the ledger opened once)."""
    check_runs(runs)
    await require_ledger(ledger_path, "report")
    async with await Ledger.open(ledger_path) as ledger, ledger.snapshot():
        report = await make_report(ledger, now=now, run_id=run_id, runs=runs)
        if page_made_at is None:
            return report, None
        return report, await gather_page_data(ledger, report, made_at=page_made_at)


@dataclass(frozen=True)
class ReportRun:
    """What ``export_report`` did: the report, and the files it wrote (none for ``table``, or
    ``json`` without ``out``: those are for the terminal)."""

    report: Report
    written: tuple[Path, ...] = ()

    @property
    def exit_code(self) -> int:
        return self.report.exit_code


async def export_report(
    *,
    ledger_path: LedgerLocation = DEFAULT_LEDGER,
    fmt: str = REPORT_FORMAT,
    out: Path | None = None,
    run_id: str | None = None,
    runs: int = DEFAULT_RUNS,
    as_of: str | dt.datetime | None = None,
) -> ReportRun:
    """The report (``report_files``) as of ``as_of`` (an instant with its offset; default:
    now) in ``fmt``: ``csv`` and ``parquet`` write a folder with one file per section (``out``,
    default ``outputs/report-<UTC time>/``), ``json`` with ``out`` one file, ``html`` one page
    (``out``, default ``outputs/report-<UTC time>.html``); all mode 0600.

    Raises UsageError (exit 2), before the ledger is read, for a format, ``out`` or ``as_of``
    that can't be used or written (and as ``report_files`` does).
    """
    made_at = dt.datetime.now(dt.UTC)
    if isinstance(as_of, str):
        as_of = instant_option(as_of, "--as-of")
    now = (as_of or made_at).astimezone(dt.UTC)
    check_runs(runs)
    await anyio.to_thread.run_sync(check_report_out, out, fmt)
    if fmt == "html":
        failed: list[PipelineError] = []  # the read's own error, raised as itself (not a group)
        async with anyio.create_task_group() as tasks:
            # The chart libraries load and start (a second or so) while the ledger is read.
            tasks.start_soon(start_charts)
            try:
                report, page = await _read_report(
                    ledger_path, run_id=run_id, runs=runs, now=now, page_made_at=made_at
                )
            except PipelineError as exc:
                tasks.cancel_scope.cancel()
                failed.append(exc)
        if failed:
            raise failed[0]
        return ReportRun(report, (await write_page(cast(PageData, page), out),))
    report = await report_files(ledger_path=ledger_path, run_id=run_id, runs=runs, now=now)
    if fmt == "table" or (fmt == "json" and out is None):
        return ReportRun(report)
    return ReportRun(report, tuple(await anyio.to_thread.run_sync(write_report, report, fmt, out)))
