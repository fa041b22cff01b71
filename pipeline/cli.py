"""The ``oracode-provision`` command line: a thin layer over ``pipeline.jobs``.

Exit codes: 0 all rows done (planned/created/skipped), 1 some rows rejected or failed,
2 unusable input or config, 3 the run had to stop (Seam refused the key or was unreachable).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from pipeline import jobs
from pipeline.errors import PipelineError
from pipeline.reports import print_plan_summary


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
    plan.add_argument("--out", type=Path, help="CSV, Parquet or JSONL (default: outputs/)")
    plan.set_defaults(handler=_plan)
    return parser


def _plan(args: argparse.Namespace, console: Console) -> int:
    run = jobs.plan_files(
        args.reservations, config_path=args.config, devices=args.devices, out=args.out
    )
    print_plan_summary(run.plan, console)
    console.print(f"wrote {run.plan.height} rows to {run.out}")
    return run.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    args = build_parser().parse_args(argv)
    console = Console(highlight=False)
    try:
        code: int = args.handler(args, console)
    except PipelineError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
