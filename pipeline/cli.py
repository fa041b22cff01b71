"""The ``oracode-provision`` command line: a thin layer over ``pipeline.commands``.

Exit codes: 0 all rows done (planned/created/skipped), 1 some rows rejected or failed,
2 unusable input or config, 3 the run had to stop (Seam refused the key or was unreachable,
or another run holds the ledger's lock), 4 a defect of the pipeline (traceback saved in
outputs/). ``status`` and ``report``: 1 when a code needs a person (attention; for ``report``
also orphaned).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import io
import json
import logging
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import polars as pl
from rich.console import Console

from pipeline import commands
from pipeline.apply.creator import SETTLE_AFTER, CreatePolicy
from pipeline.apply.run import ApplySettings
from pipeline.apply.scheduler import Rate
from pipeline.errors import PipelineError, UsageError
from pipeline.interrupts import Interrupted, run_with_signals
from pipeline.ledger.store import DEFAULT_LEDGER
from pipeline.report.files import (
    REPORT_FORMATS,
    check_output_folder,
    check_report_path,
    default_output_path,
    write_private_text,
    write_report,
)
from pipeline.report.output import (
    ApplyProgress,
    print_budget_warnings,
    print_outcomes,
    print_plan_summary,
    print_report,
    print_status_summary,
)
from pipeline.report.summary import DEFAULT_RUNS
from pipeline.sandbox import Faults, build_sandbox, serve
from pipeline.sandbox.server import parse_latency
from pipeline.seam.client import DEFAULT_REQUEST_TIMEOUT
from pipeline.settings import BudgetOptions, parse_rate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oracode-provision",
        description="Plan and create dormakaba Oracode offline access codes through Seam.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    plan = commands.add_parser("plan", help="decide door, user level and window for each row")
    plan.add_argument("reservations", nargs="+", type=Path, help="CSV or Parquet files")
    plan.add_argument("--config", type=Path, help="TOML config file")
    plan.add_argument("--devices", type=Path, help="a /devices/list response saved as JSON")
    plan.add_argument(
        "--codes", type=Path, help="with --devices: the doors' /access_codes/list saved as JSON"
    )
    plan.add_argument("--out", type=Path, help="CSV, Parquet or JSONL (default: outputs/)")
    add_budget_options(plan)
    plan.set_defaults(handler=_plan)

    apply = commands.add_parser("apply", help="plan, then create every planned code once")
    apply.add_argument("reservations", nargs="+", type=Path, help="CSV or Parquet files")
    add_run_options(apply)
    apply.add_argument(
        "--door-rate", default="10/60s", help="creates per door, e.g. 10/60s, or off"
    )
    apply.add_argument("--global-rate", type=float, help="requests per second over all doors")
    apply.add_argument("--concurrency", type=int, default=8, help="requests in flight at most")
    apply.add_argument(
        "--give-up-after",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="stop (exit 3) when the run makes no progress for this long (default: %(default)s)",
    )
    apply.add_argument(
        "--settle-after",
        type=float,
        default=SETTLE_AFTER,
        metavar="SECONDS",
        help="after a create with an unknown outcome, look at the door this long after the send"
        " before sending it again (default: %(default)s)",
    )
    apply.add_argument(
        "--wait-for-lock",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for another apply run on the same ledger (then exit 3)",
    )
    apply.add_argument(
        "--reissue-changed",
        action="store_true",
        help="make a new code for a reservation whose door or window changed since its code",
    )
    add_budget_options(apply)
    apply.set_defaults(handler=_apply)

    status = commands.add_parser("status", help="refresh the ledger's codes from Seam")
    add_run_options(status)
    status.add_argument(
        "--attention-after",
        type=float,
        default=60.0,
        metavar="MINUTES",
        help="flag codes still not set this long after starts_at",
    )
    status.set_defaults(handler=_status)

    report = commands.add_parser(
        "report", help="what the runs did and what needs a person, from the ledger"
    )
    report.add_argument("--ledger", type=Path, default=DEFAULT_LEDGER, help="SQLite ledger")
    report.add_argument("--format", choices=REPORT_FORMATS, default="table")
    report.add_argument(
        "--out",
        type=Path,
        help="json: the file (default: standard output); csv, parquet: a folder for one file"
        " per section (default: outputs/report-<UTC time>/)",
    )
    report.add_argument("--run", help="the apply run for the per-door section (default: latest)")
    report.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="how many runs to list")
    report.set_defaults(handler=_report)

    sandbox = commands.add_parser("sandbox", help="run the local Seam API for Oracode doors")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8787)
    sandbox.add_argument("--devices", type=Path, default=Path("inputs/sandbox-devices.json"))
    sandbox.add_argument("--door-rate", default="10/60s", help="creates per door, e.g. 10/60s")
    sandbox.add_argument("--global-rate", type=float, help="requests per second, all paths")
    sandbox.add_argument("--latency-ms", default="0", help="A or A-B milliseconds per answer")
    sandbox.add_argument("--fail-before", type=float, default=0.0, metavar="P")
    sandbox.add_argument("--drop-after", type=float, default=0.0, metavar="P")
    sandbox.add_argument(
        "--late", type=float, default=0.0, metavar="P", help="share of creates answered 504"
    )
    sandbox.add_argument(
        "--late-after",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="when a late create is carried out (default 30)",
    )
    sandbox.add_argument(
        "--list-lag",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="how long a new code stays out of /access_codes/list",
    )
    sandbox.add_argument("--seed", type=int, default=0)
    sandbox.set_defaults(handler=_sandbox)
    return parser


def add_run_options(command: argparse.ArgumentParser) -> None:
    """Options of the commands that talk to Seam and keep the ledger (apply, status)."""
    command.add_argument("--config", type=Path, help="TOML config file")
    command.add_argument("--ledger", type=Path, default=DEFAULT_LEDGER, help="SQLite ledger")
    command.add_argument("--results", type=Path, help="CSV, Parquet or JSONL (default: outputs/)")
    command.add_argument("--log-format", choices=("text", "json"), default="text")
    command.add_argument(
        "--request-timeout",
        type=float,
        default=DEFAULT_REQUEST_TIMEOUT,
        metavar="SECONDS",
        help="give up on a Seam request whose whole answer hasn't come in this long"
        f" (default {DEFAULT_REQUEST_TIMEOUT:g})",
    )


def _request_timeout(args: argparse.Namespace) -> float:
    """``--request-timeout``, checked: a deadline must be a positive number of seconds."""
    seconds: float = args.request_timeout
    if not 0 < seconds < float("inf"):
        raise UsageError("--request-timeout must be a positive number of seconds")
    return seconds


def add_budget_options(command: argparse.ArgumentParser) -> None:
    """Options over the config's ``[budgets]``."""
    command.add_argument(
        "--budget-per-door", type=int, metavar="N", help="codes each door may hold (default)"
    )
    command.add_argument(
        "--budget-mode",
        choices=("lifetime", "concurrent"),
        help="count every code ever made (lifetime) or those valid at once (concurrent)",
    )
    command.add_argument(
        "--on-budget-exceeded",
        choices=("reject-rows", "skip-door", "abort"),
        help="rows past a door's budget: reject them (default), skip the door, or stop (exit 2)",
    )


def _budget_options(args: argparse.Namespace) -> BudgetOptions:
    return BudgetOptions(
        per_door=args.budget_per_door, mode=args.budget_mode, on_exceeded=args.on_budget_exceeded
    )


def _sandbox(args: argparse.Namespace, console: Console) -> int:
    try:
        door_rate = parse_rate(args.door_rate)
        latency = parse_latency(args.latency_ms)
        faults = Faults(
            fail_before=args.fail_before,
            drop_after=args.drop_after,
            late=args.late,
            late_after=args.late_after,
            list_lag=args.list_lag,
            latency_ms=latency,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    try:
        state, app = build_sandbox(
            args.devices,
            door_rate=door_rate,
            global_rate=args.global_rate,
            faults=faults,
            seed=args.seed,
        )
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"sandbox device file {args.devices} can't be used: {exc}") from exc
    console.print(
        f"Seam sandbox: {len(state.slots)} Oracode doors on http://{args.host}:{args.port} "
        f"(door rate {args.door_rate}, global rate {args.global_rate or 'off'}); Ctrl-C stops it"
    )
    serve(app, args.host, args.port)
    return 0


def _plan(args: argparse.Namespace, console: Console) -> int:
    if args.codes is not None and args.devices is None:
        raise UsageError("--codes goes with --devices", hint="without --devices Seam is asked")
    run = commands.plan_files(
        args.reservations,
        config_path=args.config,
        devices=args.devices,
        codes=args.codes,
        out=args.out,
        budget=_budget_options(args),
    )
    print_plan_summary(run.plan, run.budgets, console)
    console.print(f"wrote {run.plan.height} rows to {run.out}")
    return run.exit_code


def _apply(args: argparse.Namespace, console: Console) -> int:
    configure_logging(args.log_format)
    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    if args.global_rate is not None and args.global_rate <= 0:
        raise UsageError("--global-rate must be positive")
    if args.settle_after < 0:
        raise UsageError("--settle-after must be 0 or more seconds")
    settings = ApplySettings(
        door_rate=None if (rate := parse_rate(args.door_rate)) is None else Rate(*rate),
        global_rate=args.global_rate,
        concurrency=args.concurrency,
        policy=CreatePolicy(give_up_after=args.give_up_after, settle_after=args.settle_after),
        request_timeout=_request_timeout(args),
    )
    with ApplyProgress(Console(stderr=True)) as progress:
        run = anyio.run(
            run_with_signals,
            lambda interrupt: commands.apply_files(
                args.reservations,
                config_path=args.config,
                ledger_path=args.ledger,
                out=args.results,
                settings=settings,
                budget=_budget_options(args),
                wait_for_lock=args.wait_for_lock,
                reissue_changed=args.reissue_changed,
                progress=progress,
                interrupt=interrupt,
            ),
        )
    result = run.result
    print_outcomes(result.results, "Results by outcome and reason", console)
    print_budget_warnings(run.budgets, console)
    stats = result.stats
    per_code = result.requests_per_new_code
    console.print(
        f"{stats.creates} creates in {result.seconds:.1f} s; 429s: {stats.rate_limited_door}"
        f" door, {stats.rate_limited_global} global; {result.requests} requests to Seam"
        + (f" ({per_code:.2f} per new code)" if per_code is not None else "")
    )
    console.print(f"results: {run.out}", soft_wrap=True)
    console.print(f"ledger:  {run.ledger} (run {result.run_id})", soft_wrap=True)
    if run.newly_orphaned:
        console.print(
            f"{run.newly_orphaned} code(s) whose reservation is no longer in the input are"
            f" orphaned: see `oracode-provision report --ledger {run.ledger}`",
            soft_wrap=True,
        )
    if isinstance(result.stopped, Interrupted):
        outcomes = result.results.filter(pl.col("outcome") != "skipped")
        created = int((outcomes["outcome"] == "created").sum())
        waiting = int(outcomes["reason"].is_in(["not_attempted", "outcome_unknown"]).sum())
        print(
            f"error: stopped by {signal.Signals(result.stopped.exit_code - 128).name}:"
            f" {created} created, {waiting} not attempted or not yet known; rerun to finish",
            file=sys.stderr,
        )
    elif result.stopped is not None:
        print(f"error: {result.stopped.one_line()}", file=sys.stderr)
    return run.exit_code


def _status(args: argparse.Namespace, console: Console) -> int:
    configure_logging(args.log_format)
    request_timeout = _request_timeout(args)
    run = anyio.run(
        run_with_signals,
        lambda interrupt: commands.status_files(
            config_path=args.config,
            ledger_path=args.ledger,
            out=args.results,
            attention_after=dt.timedelta(minutes=args.attention_after),
            request_timeout=request_timeout,
            interrupt=interrupt,
        ),
    )
    print_status_summary(run.result, console)
    console.print(f"results: {run.out}", soft_wrap=True)
    return run.exit_code


def _report(args: argparse.Namespace, console: Console) -> int:
    if args.runs < 1:
        raise UsageError("--runs must be at least 1")
    if args.out is not None:
        check_report_path(args.out, args.format)
    elif args.format in ("csv", "parquet"):
        check_output_folder(default_output_path("report", now=dt.datetime.now(dt.UTC)).parent)
    report = anyio.run(
        functools.partial(
            commands.report_files, ledger_path=args.ledger, run_id=args.run, runs=args.runs
        )
    )
    if args.format == "table":
        print_report(report, console)
    elif args.format == "json" and args.out is None:
        print(report.to_json())
    else:
        out = args.out or default_output_path("report", now=report.generated_at).with_suffix("")
        try:
            written = write_report(report, args.format, out)
        except OSError as exc:
            raise UsageError(
                f"the report can't be written to {out}: {exc.strerror or exc}"
            ) from exc
        for path in written:
            console.print(f"wrote {path}", soft_wrap=True)
    return report.exit_code


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's extra fields."""

    STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in self.STANDARD})
        return json.dumps(entry, default=str)


class TextLogFormatter(logging.Formatter):
    """``LEVEL message key=value ...``: the extra fields after the message."""

    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(
            f"{k}={v}" for k, v in record.__dict__.items() if k not in JsonLogFormatter.STANDARD
        )
        return f"{record.levelname.lower()}: {record.getMessage()} {extra}".rstrip()


def configure_logging(log_format: str) -> None:
    """Warnings and errors of the pipeline to stderr, as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter() if log_format == "json" else TextLogFormatter())
    logger = logging.getLogger("pipeline")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    args = build_parser().parse_args(argv)
    _tolerate_undecodable_names()
    console = Console(highlight=False)
    try:
        code: int = args.handler(args, console)
    except PipelineError as exc:
        print(printable(f"error: {exc.one_line()}"), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a defect of ours: one line for the operator, details on file
        print(
            printable(f"error: internal error {type(exc).__name__}: {exc}")[:500], file=sys.stderr
        )
        print(printable(_save_traceback()), file=sys.stderr)
        return INTERNAL_ERROR
    return code


def printable(text: str) -> str:
    """``text`` with what can't be written as UTF-8 escaped (a file name that isn't UTF-8
    comes as surrogate escapes, on which a strict stream would fail)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _tolerate_undecodable_names() -> None:
    """Let standard output and error write surrogate escapes (a file name that isn't UTF-8,
    echoed in a summary or a log line) as backslash escapes instead of failing."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


# Exit code of a defect in the pipeline itself (never of bad input, config or Seam answers).
INTERNAL_ERROR = 4


def _save_traceback() -> str:
    """Write the current exception's traceback to ``outputs/crash-<UTC time>.txt`` (mode 0600)
    and say where; when that can't be written, the traceback itself."""
    details = traceback.format_exc()
    path = default_output_path("crash", now=dt.datetime.now(dt.UTC)).with_suffix(".txt")
    try:
        write_private_text(path, details)
    except OSError:
        return details
    return f"the details are in {path}; please pass them on to the pipeline's maintainers"


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
