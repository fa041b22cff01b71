"""The commands' options in the units the command line gives them (seconds, minutes,
``COUNT/SECONDS`` text), each default taken from the code that uses it and each check made
here, once. ``pipeline.commands`` takes them and the parser shows them (``--help``); the CLI
only parses, calls and prints. Adding an option: its default and check here, its line in
``cli.parser``, and the code that uses it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import get_args

from pipeline.apply.policy import CreatePolicy
from pipeline.apply.run import ApplySettings
from pipeline.catalog.listing import DOOR_FORMATS
from pipeline.common.errors import UsageError
from pipeline.common.instants import as_instant
from pipeline.common.job_settings import NightlyConfig
from pipeline.common.rates import SEAM_DOOR_RATE, Rate, rate_text
from pipeline.common.settings import BudgetConfig, BudgetMode, OnBudgetExceeded
from pipeline.ledger.location import LEDGER_ENV, LedgerLocation, ledger_from_environment, shown
from pipeline.ledger.store import DEFAULT_LEDGER
from pipeline.report import nightly
from pipeline.report.files import REPORT_FORMATS
from pipeline.report.pins import PIN_FORMATS
from pipeline.report.summary import DEFAULT_RUNS
from pipeline.sandbox import Faults, WebhookSettingError, WebhookSettings
from pipeline.sandbox.server import DEFAULT_DEVICES, parse_latency
from pipeline.seam.client import DEFAULT_REQUEST_TIMEOUT
from pipeline.status.refresh import ATTENTION_AFTER
from pipeline.webhooks import DEFAULT_HOST as WEBHOOK_HOST
from pipeline.webhooks import DEFAULT_PORT as WEBHOOK_PORT

__all__ = [
    "ATTENTION_AFTER",
    "ATTENTION_AFTER_MINUTES",
    "BUDGET",
    "BUDGET_MODES",
    "DEFAULT_LEDGER",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_RUNS",
    "DOORS_FORMAT",
    "DOOR_FORMATS",
    "LOG_FORMAT",
    "LOG_FORMATS",
    "NIGHTLY",
    "ON_BUDGET_EXCEEDED",
    "PIN_FORMATS",
    "REPORT_FORMAT",
    "REPORT_FORMATS",
    "STEP_EXIT",
    "WAIT_FOR_LOCK",
    "WEBHOOK_HOST",
    "WEBHOOK_PORT",
    "ApplyOptions",
    "SandboxOptions",
    "check_request_timeout",
    "check_runs",
    "check_settings",
    "instant_option",
    "ledger_default_text",
    "ledger_location",
]

# ``status --attention-after`` is given in minutes.
ATTENTION_AFTER_MINUTES = ATTENTION_AFTER / dt.timedelta(minutes=1)
# How long apply waits for another run's lock on the same ledger (seconds): not at all.
WAIT_FOR_LOCK = 0.0
# The budget options lie over the config's [budgets], whose own defaults hold without either.
BUDGET = BudgetConfig()
BUDGET_MODES: tuple[str, ...] = get_args(BudgetMode)
ON_BUDGET_EXCEEDED: tuple[str, ...] = get_args(OnBudgetExceeded)
# The nightly job's options lie over the config's [nightly], likewise.
NIGHTLY = NightlyConfig()
LOG_FORMATS = ("text", "json")
LOG_FORMAT = LOG_FORMATS[0]
# nightly-summary's --apply-exit and --status-exit: the step went well.
STEP_EXIT = nightly.STEP_EXIT
# report and doors print a table on the terminal unless a file format is asked for.
REPORT_FORMAT = "table"
DOORS_FORMAT = "table"


def ledger_location(given: LedgerLocation | None = None) -> LedgerLocation:
    """The ledger a command keeps: ``--ledger``'s when given, else ``ORACODE_LEDGER``'s when
    set, else ``outputs/ledger.sqlite``. Raises UsageError (exit 2) naming ORACODE_LEDGER when
    it holds a URL that can't be used."""
    return given if given is not None else ledger_from_environment(DEFAULT_LEDGER)


def ledger_default_text(environ: Mapping[str, str] = os.environ) -> str:
    """``ledger_location``'s default as ``--help`` says it, a connection string's password
    masked."""
    value = environ.get(LEDGER_ENV, "").strip()
    now = ""
    if value:
        now = f", now {shown(value)};"
    return f"${LEDGER_ENV} when set{now or ','} else {DEFAULT_LEDGER}"


# Past this many seconds (or minutes), a wait or a limit is no limit: about 31 years.
_LONGEST = 1e9


def check_duration(value: float, option: str, *, unit: str = "seconds", zero: bool = True) -> float:
    """A duration an option takes: a finite number, not negative (positive unless ``zero``),
    under ``_LONGEST``; else UsageError (exit 2) naming the option (NaN and infinity too,
    which float() reads from ``nan`` and ``inf``)."""
    least = "0 or more" if zero else "a positive number of"
    if not (0 <= value < _LONGEST) or (value == 0 and not zero):
        raise UsageError(f"{option} must be {least} {unit}", hint="a finite number, not nan")
    return value


def check_request_timeout(seconds: float) -> float:
    """``--request-timeout``: a deadline must be a positive number of seconds (else
    UsageError, exit 2)."""
    if not 0 < seconds < float("inf"):
        raise UsageError("--request-timeout must be a positive number of seconds")
    return seconds


def check_runs(runs: int) -> int:
    """``report --runs``: at least one run to list (else UsageError, exit 2)."""
    if runs < 1:
        raise UsageError("--runs must be at least 1")
    return runs


def instant_option(text: str, option: str) -> dt.datetime:
    """An instant with its offset (``2027-02-01T03:00:00Z``, ``...+01:00``), as ``pins
    --changed-since`` and ``report --as-of`` take it; UsageError (exit 2) naming ``option``
    for anything else (a time without an offset would be the machine's zone's)."""
    instant = as_instant(text)
    if instant is None:
        raise UsageError(
            f"{option} {text!r} is not an instant with its offset",
            hint="e.g. 2027-02-01T03:00:00Z or 2027-02-01T04:00:00+01:00",
        )
    return instant


def check_settings(settings: ApplySettings) -> ApplySettings:
    """``settings`` when an apply run can go by them; UsageError (exit 2) naming the option."""
    if settings.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    if settings.global_rate is not None and not 0 < settings.global_rate < _LONGEST:
        raise UsageError("--global-rate must be positive")
    check_duration(settings.policy.settle_after, "--settle-after")
    check_duration(settings.policy.give_up_after, "--give-up-after", zero=False)
    check_request_timeout(settings.request_timeout)
    return settings


_APPLY = ApplySettings()


@dataclass(frozen=True)
class ApplyOptions:
    """How an apply run sends (``--door-rate`` as ``COUNT/SECONDS`` or ``off``, the others in
    seconds); the defaults are ``ApplySettings``'s."""

    door_rate: str = rate_text(_APPLY.door_rate)
    global_rate: float | None = _APPLY.global_rate
    concurrency: int = _APPLY.concurrency
    give_up_after: float = _APPLY.policy.give_up_after
    settle_after: float = _APPLY.policy.settle_after
    request_timeout: float = _APPLY.request_timeout

    def settings(self) -> ApplySettings:
        """The checked ``ApplySettings``; raises UsageError (exit 2) naming a bad option (the
        options in the order the command line lists them: the door rate first)."""
        rate = Rate.parse(self.door_rate)
        settings = check_settings(
            replace(
                _APPLY,
                global_rate=self.global_rate,
                concurrency=self.concurrency,
                policy=CreatePolicy(
                    give_up_after=self.give_up_after, settle_after=self.settle_after
                ),
                request_timeout=self.request_timeout,
            )
        )
        return replace(settings, door_rate=rate)


_FAULTS = Faults()
_WEBHOOKS = WebhookSettings()


@dataclass(frozen=True)
class SandboxOptions:
    """Where the sandbox listens, its doors, limits and faults (``--latency-ms`` as ``A`` or
    ``A-B`` milliseconds); the fault defaults are ``Faults``'s."""

    host: str = "127.0.0.1"
    port: int = 8787
    devices: Path = DEFAULT_DEVICES
    door_rate: str = rate_text(SEAM_DOOR_RATE)
    global_rate: float | None = None
    latency_ms: str = "0"
    fail_before: float = _FAULTS.fail_before
    drop_after: float = _FAULTS.drop_after
    late: float = _FAULTS.late
    late_after: float = _FAULTS.late_after
    list_lag: float = _FAULTS.list_lag
    seed: int = 0
    webhook_url: str | None = None
    # None: SEAM_WEBHOOK_SECRET (the receiver's variable), which keeps it out of `ps`.
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_retry_scale: float = _WEBHOOKS.retry_scale

    def webhooks(self, environ: Mapping[str, str] = os.environ) -> WebhookSettings:
        """The checked ``WebhookSettings``; raises UsageError (exit 2) naming the option,
        never showing the secret."""
        secret = self.webhook_secret
        if secret is None and self.webhook_url is not None:
            secret = environ.get("SEAM_WEBHOOK_SECRET") or None
        try:
            return WebhookSettings(self.webhook_url, secret, self.webhook_retry_scale)
        except WebhookSettingError as exc:
            hint = " (or set SEAM_WEBHOOK_SECRET)" if exc.setting == "secret" else ""
            option = "--webhook-" + exc.setting.replace("_", "-")
            raise UsageError(f"{option} {exc.problem}{hint}") from exc

    def faults(self) -> Faults:
        """The checked ``Faults``; raises UsageError (exit 2) saying which value is wrong."""
        try:
            return Faults(
                fail_before=self.fail_before,
                drop_after=self.drop_after,
                late=self.late,
                late_after=self.late_after,
                list_lag=self.list_lag,
                latency_ms=parse_latency(self.latency_ms),
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
