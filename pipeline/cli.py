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
from pipeline.errors import PipelineError, UsageError
from pipeline.reports import print_plan_summary
from pipeline.sandbox import Faults, build_sandbox, serve
from pipeline.sandbox.server import parse_door_rate, parse_latency


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

    sandbox = commands.add_parser("sandbox", help="run the local Seam API for Oracode doors")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8787)
    sandbox.add_argument("--devices", type=Path, default=Path("inputs/sandbox-devices.json"))
    sandbox.add_argument("--door-rate", default="10/60s", help="creates per door, e.g. 10/60s")
    sandbox.add_argument("--global-rate", type=float, help="requests per second, all paths")
    sandbox.add_argument("--latency-ms", default="0", help="A or A-B milliseconds per answer")
    sandbox.add_argument("--fail-before", type=float, default=0.0, metavar="P")
    sandbox.add_argument("--drop-after", type=float, default=0.0, metavar="P")
    sandbox.add_argument("--seed", type=int, default=0)
    sandbox.set_defaults(handler=_sandbox)
    return parser


def _sandbox(args: argparse.Namespace, console: Console) -> int:
    try:
        door_rate = parse_door_rate(args.door_rate)
        latency = parse_latency(args.latency_ms)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    faults = Faults(fail_before=args.fail_before, drop_after=args.drop_after, latency_ms=latency)
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
