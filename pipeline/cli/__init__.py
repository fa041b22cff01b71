"""The ``oracode-provision`` command line: a thin layer over ``pipeline.commands``.

Each command parses its options, makes one call to ``pipeline.commands`` and prints what it
returned; the defaults and checks are the library's (``pipeline.commands.options``).

Exit codes: 0 all rows done (planned/created/skipped), 1 some rows rejected or failed,
2 unusable input or config, 3 the run had to stop (Seam refused the key or was unreachable,
or another run holds the ledger's lock), 4 a defect of the pipeline (traceback saved in
outputs/). ``status`` and ``report``: 1 when a code needs a person (attention; for ``report``
also orphaned). ``nightly-summary``: 1 only for trouble new tonight, else 0, or apply's or
status's code from 2 up.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import io
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import anyio
from rich.console import Console

from pipeline import commands
from pipeline.cli.logs import configure_logging
from pipeline.cli.nightly import run_nightly
from pipeline.cli.output import (
    print_apply_summary,
    print_doors,
    print_plan_summary,
    print_report,
    print_status_summary,
)
from pipeline.cli.parser import build_parser
from pipeline.cli.progress import ApplyProgress
from pipeline.commands import options as defaults
from pipeline.common.errors import PipelineError
from pipeline.common.interrupts import run_with_signals
from pipeline.common.settings import BudgetOptions

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

OptionsT = TypeVar("OptionsT", bound="DataclassInstance")


def _options(kind: type[OptionsT], args: argparse.Namespace) -> OptionsT:
    """``kind`` (``ApplyOptions``, ``SandboxOptions``) from the parsed options of the same
    names: a new option is a field there and a line in the parser, not a copy here."""
    return kind(**{option.name: getattr(args, option.name) for option in dataclasses.fields(kind)})


def _budget_options(args: argparse.Namespace) -> BudgetOptions:
    return BudgetOptions(
        per_door=args.budget_per_door, mode=args.budget_mode, on_exceeded=args.on_budget_exceeded
    )


def _sandbox(args: argparse.Namespace, console: Console) -> int:
    options = _options(defaults.SandboxOptions, args)

    def ready(doors: int) -> None:
        hooks = f"; webhooks to {args.webhook_url}" if args.webhook_url else ""
        console.print(
            f"Seam sandbox: {doors} Oracode doors on http://{args.host}:{args.port} (door rate"
            f" {args.door_rate}, global rate {args.global_rate or 'off'}){hooks}; Ctrl-C stops it"
        )

    commands.serve_sandbox(options, on_ready=ready)
    return 0


def _plan(args: argparse.Namespace, console: Console) -> int:
    # The config check's warnings, as apply prints them.
    configure_logging("text", verbose=args.verbose)
    run = anyio.run(
        functools.partial(
            commands.plan_files,
            args.reservations,
            config_path=args.config,
            devices=args.devices,
            codes=args.codes,
            out=args.out,
            budget=_budget_options(args),
        )
    )
    print_plan_summary(run.plan, run.budgets, console)
    console.print(f"wrote {run.plan.height} rows to {run.out}")
    return run.exit_code


def _apply(args: argparse.Namespace, console: Console) -> int:
    configure_logging(args.log_format, verbose=args.verbose)
    options = _options(defaults.ApplyOptions, args)
    options.settings()  # a bad option is one line before anything is drawn or opened
    with ApplyProgress(Console(stderr=True)) as progress:
        run = anyio.run(
            run_with_signals,
            lambda interrupt: commands.apply_files(
                args.reservations,
                config_path=args.config,
                ledger_path=args.ledger,
                out=args.results,
                settings=options,
                budget=_budget_options(args),
                wait_for_lock=args.wait_for_lock,
                reissue_changed=args.reissue_changed,
                progress=progress,
                interrupt=interrupt,
            ),
        )
    print_apply_summary(
        run.result,
        run.budgets,
        out=run.out,
        ledger=run.ledger,
        newly_orphaned=run.newly_orphaned,
        console=console,
    )
    return run.exit_code


def _status(args: argparse.Namespace, console: Console) -> int:
    configure_logging(args.log_format, verbose=args.verbose)
    run = anyio.run(
        run_with_signals,
        lambda interrupt: commands.status_files(
            config_path=args.config,
            ledger_path=args.ledger,
            out=args.results,
            attention_after=dt.timedelta(
                minutes=defaults.check_duration(
                    args.attention_after, "--attention-after", unit="minutes"
                )
            ),
            request_timeout=args.request_timeout,
            interrupt=interrupt,
        ),
    )
    print_status_summary(run.result, console)
    console.print(f"results: {run.out}", soft_wrap=True)
    return run.exit_code


def _report(args: argparse.Namespace, console: Console) -> int:
    run = anyio.run(
        functools.partial(
            commands.export_report,
            ledger_path=args.ledger,
            fmt=args.format,
            out=args.out,
            run_id=args.run,
            runs=args.runs,
            as_of=args.as_of,
        )
    )
    if run.written:
        for path in run.written:
            console.print(f"wrote {path}", soft_wrap=True)
    elif args.format == "json":
        print(run.report.to_json())
    else:
        print_report(run.report, console)
    return run.exit_code


def _pins(args: argparse.Namespace, console: Console) -> int:
    run = anyio.run(
        functools.partial(
            commands.export_pins,
            config_path=args.config,
            ledger_path=args.ledger,
            fmt=args.format,
            out=args.out,
            ready_only=args.ready_only,
            changed_since=args.changed_since,
        )
    )
    console.print(f"wrote {run.pins.height} rows ({run.ready} ready) to {run.out}", soft_wrap=True)
    return 0


def _nightly(args: argparse.Namespace, console: Console) -> int:
    configure_logging("text")
    run = anyio.run(
        run_with_signals,
        lambda interrupt: run_nightly(
            args.reservations,
            config_path=args.config,
            ledger_path=args.ledger,
            out_dir=args.out_dir,
            keep_days=args.keep_days,
            reissue_changed=args.reissue_changed,
            wait_for_lock=args.wait_for_lock,
            interrupt=interrupt,
        ),
    )
    for line in run.error_lines():
        print(printable(line), file=sys.stderr)
    for line in run.lines():
        console.print(line, markup=False, soft_wrap=True)
    return run.exit_code


def _nightly_summary(args: argparse.Namespace, console: Console) -> int:
    summary = anyio.run(
        functools.partial(
            commands.summarise_night,
            ledger_path=args.ledger,
            results=args.results,
            apply_exit=args.apply_exit,
            status_exit=args.status_exit,
        )
    )
    for line in summary.lines():
        console.print(line, markup=False, soft_wrap=True)
    return summary.exit_code


def _doors(args: argparse.Namespace, console: Console) -> int:
    configure_logging("text", verbose=args.verbose)  # stamina's retries only with --verbose
    run = anyio.run(
        functools.partial(
            commands.list_doors,
            config_path=args.config,
            devices=args.devices,
            fmt=args.format,
            out=args.out,
        )
    )
    if run.out is not None:
        console.print(f"wrote {run.door_count} doors to {run.out}", soft_wrap=True)
    else:
        print_doors(run.listing, args.format, console)
    return 0


def _webhooks(args: argparse.Namespace, console: Console) -> int:
    configure_logging(args.log_format)

    def ready(url: str) -> None:
        console.print(
            f"Webhook receiver on {url} (any path), recording into {args.ledger}; Ctrl-C stops it",
            soft_wrap=True,
        )

    anyio.run(
        functools.partial(
            commands.serve_webhooks,
            host=args.host,
            port=args.port,
            ledger_path=args.ledger,
            on_ready=ready,
        )
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    _tolerate_undecodable_names()
    console = Console(highlight=False)
    try:
        # Inside: a ledger URL that can't be used (--ledger, ORACODE_LEDGER) is one line too.
        args = build_parser().parse_args(argv)
        if "ledger" in args:
            args.ledger = defaults.ledger_location(args.ledger)
        code = HANDLERS[args.command](args, console)
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


HANDLERS: dict[str, Callable[[argparse.Namespace, Console], int]] = {
    "plan": _plan,
    "apply": _apply,
    "status": _status,
    "report": _report,
    "pins": _pins,
    "nightly": _nightly,
    "nightly-summary": _nightly_summary,
    "doors": _doors,
    "sandbox": _sandbox,
    "webhooks": _webhooks,
}
# Exit code of a defect in the pipeline itself (never of bad input, config or Seam answers).
INTERNAL_ERROR = 4


def _save_traceback() -> str:
    """Write the current exception's traceback to ``outputs/crash-<UTC time>.txt`` (mode 0600)
    and say where; when that can't be written, the traceback itself."""
    details = traceback.format_exc()
    try:
        path = commands.save_crash_details(details)
    except OSError:
        return details
    return f"the details are in {path}; please pass them on to the pipeline's maintainers"


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
