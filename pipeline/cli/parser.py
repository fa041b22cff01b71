"""The command line's commands and options (argparse). Every default shown in ``--help`` is
the library's (``pipeline.commands.options``); the values are checked there, not here."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.commands import options as defaults
from pipeline.ledger.location import parse_ledger

APPLY = defaults.ApplyOptions()
# Every kind of file the read stage takes (``pipeline.read``).
RESERVATION_FILES = (
    "reservation files: CSV (.csv, .tsv, .txt), Parquet or workbooks (.xlsx, .xls, .ods)"
)
SANDBOX = defaults.SandboxOptions()
NIGHTLY = defaults.NIGHTLY
BUDGET = defaults.BUDGET


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oracode-provision",
        description="Plan and create dormakaba Oracode offline access codes through Seam.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    plan = commands.add_parser("plan", help="decide door, user level and window for each row")
    plan.add_argument("reservations", nargs="+", type=Path, help=RESERVATION_FILES)
    add_config_option(plan)
    plan.add_argument(
        "--devices",
        type=Path,
        help="a /devices/list response saved as JSON (default: ask Seam, needs SEAM_API_KEY)",
    )
    plan.add_argument(
        "--codes",
        type=Path,
        help="with --devices: the doors' /access_codes/list saved as JSON"
        " (default: their codes are not counted)",
    )
    plan.add_argument(
        "--out",
        type=Path,
        help="CSV, Parquet or JSONL (default: outputs/plan-<UTC time>.parquet)",
    )
    add_budget_options(plan)
    add_verbose_option(plan)

    apply = commands.add_parser("apply", help="plan, then create every planned code once")
    apply.add_argument("reservations", nargs="+", type=Path, help=RESERVATION_FILES)
    add_run_options(apply)
    apply.add_argument(
        "--door-rate",
        default=APPLY.door_rate,
        metavar="COUNT/SECONDS",
        help="creates per door, e.g. 10/60s, or off to learn it from Seam's 429s"
        " (default: %(default)s)",
    )
    apply.add_argument(
        "--global-rate",
        type=float,
        default=APPLY.global_rate,
        metavar="N",
        help="requests per second over all doors (default: no limit)",
    )
    apply.add_argument(
        "--concurrency",
        type=int,
        default=APPLY.concurrency,
        metavar="N",
        help="requests in flight at most (default: %(default)s)",
    )
    apply.add_argument(
        "--give-up-after",
        type=float,
        default=APPLY.give_up_after,
        metavar="SECONDS",
        help="stop (exit 3) when the run makes no progress for this long (default: %(default)s)",
    )
    apply.add_argument(
        "--settle-after",
        type=float,
        default=APPLY.settle_after,
        metavar="SECONDS",
        help="after a create with an unknown outcome, look at the door this long after the send"
        " before sending it again (default: %(default)s)",
    )
    add_wait_for_lock_option(apply)
    add_reissue_option(apply)
    add_budget_options(apply)

    status = commands.add_parser("status", help="refresh the ledger's codes from Seam")
    add_run_options(status)
    status.add_argument(
        "--attention-after",
        type=float,
        default=defaults.ATTENTION_AFTER_MINUTES,
        metavar="MINUTES",
        help="flag codes still not set this long after starts_at (default: %(default)s)",
    )

    report = commands.add_parser(
        "report", help="what the runs did and what needs a person, from the ledger"
    )
    add_ledger_option(report)
    report.add_argument(
        "--format",
        choices=defaults.REPORT_FORMATS,
        default=defaults.REPORT_FORMAT,
        help="table on the terminal, or files (default: %(default)s)",
    )
    report.add_argument(
        "--out",
        type=Path,
        help="json: the file (default: standard output); html: the page (default:"
        " outputs/report-<UTC time>.html); csv, parquet: a folder for one file per section"
        " (default: outputs/report-<UTC time>/)",
    )
    report.add_argument(
        "--run", help="the apply run for the per-door section (default: the latest)"
    )
    report.add_argument(
        "--as-of",
        metavar="TIME",
        help="the report as of this instant, e.g. 2027-03-08T09:00:00Z: which stays have"
        " ended, the next 14 days' check-ins (default: now)",
    )
    report.add_argument(
        "--runs",
        type=int,
        default=defaults.DEFAULT_RUNS,
        metavar="N",
        help="how many runs to list (default: %(default)s)",
    )

    pins = commands.add_parser(
        "pins",
        help="every reservation's PIN for the guest messages, from the ledger"
        " (never a cancelled or replaced code)",
    )
    add_config_option(pins)
    add_ledger_option(pins)
    pins.add_argument(
        "--out",
        type=Path,
        help="the file to write (default: outputs/pins-<UTC time>.<format>)",
    )
    pins.add_argument(
        "--format",
        choices=defaults.PIN_FORMATS,
        help="csv (with the UTF-8 mark Excel needs), parquet or json (default: --out's"
        " extension, else csv)",
    )
    pins.add_argument(
        "--ready-only",
        action="store_true",
        help="only the rows whose PIN can be sent now (default: every row, with why_not_ready)",
    )
    pins.add_argument(
        "--changed-since",
        metavar="TIME",
        help="only codes whose PIN or status changed since this instant, e.g."
        " 2027-02-01T03:00:00Z (default: all)",
    )

    nightly = commands.add_parser(
        "nightly-summary",
        help="the nightly job's last step: a short summary, exit 1 only for new trouble",
    )
    add_ledger_option(nightly)
    nightly.add_argument(
        "--results", type=Path, help="tonight's apply results file (default: none, not counted)"
    )
    nightly.add_argument(
        "--apply-exit",
        type=int,
        default=defaults.STEP_EXIT,
        metavar="N",
        help="tonight's apply exit code (default: %(default)s)",
    )
    nightly.add_argument(
        "--status-exit",
        type=int,
        default=defaults.STEP_EXIT,
        metavar="N",
        help="tonight's status exit code (default: %(default)s)",
    )

    add_nightly_command(commands)

    doors = commands.add_parser(
        "doors",
        help="list every door with its site, zone, device_id and user levels (to write aliases)",
    )
    doors.add_argument(
        "--format",
        choices=defaults.DOOR_FORMATS,
        default=defaults.DOORS_FORMAT,
        help="table on the terminal, csv or json (default: %(default)s)",
    )
    add_config_option(doors)
    doors.add_argument(
        "--devices",
        type=Path,
        help="a /devices/list response saved as JSON (default: ask Seam, needs SEAM_API_KEY)",
    )
    doors.add_argument(
        "--out",
        type=Path,
        help="csv, json: the file to write (default: standard output)",
    )
    add_verbose_option(doors)

    sandbox = commands.add_parser("sandbox", help="run the local Seam API for Oracode doors")
    sandbox.add_argument("--host", default=SANDBOX.host, help="(default: %(default)s)")
    sandbox.add_argument("--port", type=int, default=SANDBOX.port, help="(default: %(default)s)")
    sandbox.add_argument(
        "--devices",
        type=Path,
        default=SANDBOX.devices,
        help="a /devices/list response (default: %(default)s)",
    )
    sandbox.add_argument(
        "--door-rate",
        default=SANDBOX.door_rate,
        metavar="COUNT/SECONDS",
        help="creates per door, e.g. 10/60s, or off (default: %(default)s)",
    )
    sandbox.add_argument(
        "--global-rate",
        type=float,
        default=SANDBOX.global_rate,
        metavar="N",
        help="requests per second, all paths (default: no limit)",
    )
    sandbox.add_argument(
        "--latency-ms",
        default=SANDBOX.latency_ms,
        metavar="A[-B]",
        help="milliseconds per answer (default: %(default)s)",
    )
    sandbox.add_argument(
        "--fail-before",
        type=float,
        default=SANDBOX.fail_before,
        metavar="P",
        help="share of requests answered 503 before acting (default: %(default)s)",
    )
    sandbox.add_argument(
        "--drop-after",
        type=float,
        default=SANDBOX.drop_after,
        metavar="P",
        help="share of creates whose answer is lost after the code exists (default: %(default)s)",
    )
    sandbox.add_argument(
        "--late",
        type=float,
        default=SANDBOX.late,
        metavar="P",
        help="share of creates answered 504 (default: %(default)s)",
    )
    sandbox.add_argument(
        "--late-after",
        type=float,
        default=SANDBOX.late_after,
        metavar="SECONDS",
        help="when a late create is carried out (default: %(default)s)",
    )
    sandbox.add_argument(
        "--list-lag",
        type=float,
        default=SANDBOX.list_lag,
        metavar="SECONDS",
        help="how long a new code stays out of /access_codes/list (default: %(default)s)",
    )
    sandbox.add_argument(
        "--seed", type=int, default=SANDBOX.seed, help="for the faults (default: %(default)s)"
    )
    sandbox.add_argument(
        "--webhook-url",
        default=SANDBOX.webhook_url,
        metavar="URL",
        help="post each event there, signed as Seam does (default: no webhooks)",
    )
    sandbox.add_argument(
        "--webhook-secret",
        default=SANDBOX.webhook_secret,
        metavar="whsec_...",
        help="the signing secret (default: $SEAM_WEBHOOK_SECRET, which keeps it out of ps)",
    )
    sandbox.add_argument(
        "--webhook-retry-scale",
        type=float,
        default=SANDBOX.webhook_retry_scale,
        metavar="F",
        help="Seam's retry waits (5 s, 5 min, ... 10 h) times F (default: %(default)s)",
    )
    webhooks = commands.add_parser(
        "webhooks",
        help="receive Seam's webhooks (needs SEAM_WEBHOOK_SECRET): codes set, PINs, failures",
    )
    webhooks.add_argument("--host", default=defaults.WEBHOOK_HOST, help="(default: %(default)s)")
    webhooks.add_argument(
        "--port",
        type=int,
        default=defaults.WEBHOOK_PORT,
        help="(default: %(default)s; 0: a free one)",
    )
    add_ledger_option(webhooks)
    webhooks.add_argument(
        "--log-format",
        choices=defaults.LOG_FORMATS,
        default=defaults.LOG_FORMAT,
        help="a log line per delivery on standard error (default: %(default)s)",
    )
    return parser


def add_nightly_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    nightly = commands.add_parser(
        "nightly",
        help="the nightly job: apply, status, the report and a short summary; exit 1 only for"
        " trouble new tonight",
    )
    nightly.add_argument("reservations", nargs="+", type=Path, help=RESERVATION_FILES)
    add_config_option(nightly)
    add_ledger_option(nightly)
    nightly.add_argument(
        "--out-dir",
        type=Path,
        metavar="DIR",
        help="the folder for the night's logs, results and report (default: the config's"
        f" [nightly] out_dir, else {NIGHTLY.out_dir}/)",
    )
    nightly.add_argument(
        "--keep-days",
        type=int,
        metavar="N",
        help="remove the files of nights more than N days old (default: the config's [nightly]"
        f" keep_days, else {NIGHTLY.keep_days})",
    )
    add_reissue_option(nightly)
    add_wait_for_lock_option(nightly)


def add_config_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--config", type=Path, help="TOML config file (default: none, the built-in settings)"
    )


def add_ledger_option(command: argparse.ArgumentParser) -> None:
    # None: the library's default (pipeline.commands.options.ledger_location), which reads the
    # environment; argparse formats help with %, which a URL may hold.
    default = defaults.ledger_default_text().replace("%", "%%")
    command.add_argument(
        "--ledger",
        type=parse_ledger,
        metavar="FILE|URL",
        help="the ledger: a SQLite file, a postgresql://USER@HOST:PORT/DATABASE URL or a libpq"
        " 'host=... dbname=...' string (its password best in PGPASSWORD or ~/.pgpass: a"
        " command line shows in ps)"
        f" (default: {default})",
    )


def add_run_options(command: argparse.ArgumentParser) -> None:
    """Options of the commands that talk to Seam and keep the ledger (apply, status)."""
    add_config_option(command)
    add_ledger_option(command)
    command.add_argument(
        "--results",
        type=Path,
        help="CSV, Parquet or JSONL (default: outputs/<command>-<UTC time>.parquet)",
    )
    command.add_argument(
        "--log-format",
        choices=defaults.LOG_FORMATS,
        default=defaults.LOG_FORMAT,
        help="log lines on standard error (default: %(default)s)",
    )
    command.add_argument(
        "--request-timeout",
        type=float,
        default=defaults.DEFAULT_REQUEST_TIMEOUT,
        metavar="SECONDS",
        help="give up on a Seam request whose whole answer hasn't come in this long"
        " (default: %(default)s)",
    )
    add_verbose_option(command)


def add_wait_for_lock_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--wait-for-lock",
        type=float,
        default=defaults.WAIT_FOR_LOCK,
        metavar="SECONDS",
        help="wait this long for another apply run on the same ledger or, on this host, the"
        " same Seam workspace, then exit 3 (default: %(default)s)",
    )


def add_reissue_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--reissue-changed",
        action=argparse.BooleanOptionalAction,
        help="make a new code for a stay whose window changed since its code was made, or"
        " (--no-reissue-changed) don't, for this run (default: the config's [changes]"
        " reissue_changed, else no new code: the row is rejected changed_after_creation)",
    )


def add_verbose_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--verbose",
        action="store_true",
        help="also the libraries' log lines on standard error: stamina's retries, httpx's and"
        " httpcore's requests (default: off, the pipeline's own lines only)",
    )


def add_budget_options(command: argparse.ArgumentParser) -> None:
    """Options over the config's ``[budgets]`` (default: the config's, else its defaults)."""
    command.add_argument(
        "--budget-per-door",
        type=int,
        metavar="N",
        help="codes each door may hold (default: the config's, else "
        + ("Seam's limit per door)" if BUDGET.per_door is None else f"{BUDGET.per_door})"),
    )
    command.add_argument(
        "--budget-mode",
        choices=defaults.BUDGET_MODES,
        help="count every code ever made (lifetime) or those valid at once (concurrent)"
        f" (default: the config's, else {BUDGET.mode})",
    )
    command.add_argument(
        "--on-budget-exceeded",
        choices=defaults.ON_BUDGET_EXCEEDED,
        help="rows past a door's budget: reject them, skip the door, or stop (exit 2)"
        f" (default: the config's, else {BUDGET.on_exceeded})",
    )
