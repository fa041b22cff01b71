"""The commands as library functions: each CLI command is one call here that a test can make."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

import anyio
import anyio.to_thread
import polars as pl

from pipeline.apply.duplicates import duplicate_table, look_for_duplicates, say_duplicates
from pipeline.apply.handoff import record_handoff
from pipeline.apply.policy import KEY_REFUSED_STATUS, key_refused
from pipeline.apply.reruns import check_reruns, link_replacements, say_no_longer_asked
from pipeline.apply.run import (
    ApplyResult,
    ApplySession,
    ApplySettings,
    Progress,
    apply_plan,
    apply_session,
    doors_with_work,
)
from pipeline.apply.workspace import check_workspace, hold_workspace
from pipeline.budget.limits import BudgetCheck, read_code_file
from pipeline.budget.usage import BudgetGuard, count_budgets, look_at_budgeted_doors
from pipeline.catalog.checks import check_config
from pipeline.catalog.listing import list_door_levels
from pipeline.catalog.sources import list_catalog, load_catalog
from pipeline.commands.options import (
    DOORS_FORMAT,
    REPORT_FORMAT,
    WAIT_FOR_LOCK,
    WEBHOOK_HOST,
    WEBHOOK_PORT,
    ApplyOptions,
    SandboxOptions,
    check_request_timeout,
    check_runs,
    check_settings,
    instant_option,
)
from pipeline.common.errors import PipelineError, SeamError, UsageError
from pipeline.common.interrupts import Interrupt, until_interrupted
from pipeline.common.outputs import (
    check_output_path,
    default_output_path,
    write_private_text,
    write_table,
)
from pipeline.common.rates import parse_rate
from pipeline.common.settings import (
    BudgetOptions,
    load_config,
    load_credentials,
    load_webhook_secret,
)
from pipeline.ledger.location import LedgerLocation, PostgresLedger
from pipeline.ledger.lock import run_lock
from pipeline.ledger.postgres import holds_ledger
from pipeline.ledger.store import DEFAULT_LEDGER, Ledger
from pipeline.plan.planner import plan_reservations
from pipeline.read.files import check_inputs, read_reservations
from pipeline.report.files import check_doors_out, check_report_out, write_doors, write_report
from pipeline.report.html import start_charts, write_page
from pipeline.report.nightly import NightlySummary, nightly_summary, read_results
from pipeline.report.page_data import PageData, gather_page_data
from pipeline.report.pins import check_pins_out, hand_off, write_pins
from pipeline.report.summary import DEFAULT_RUNS, Report, RunSummary, make_report, run_summary
from pipeline.sandbox import build_sandbox, serve
from pipeline.seam.client import DEFAULT_REQUEST_TIMEOUT, SeamClient, Transport
from pipeline.status.refresh import ATTENTION_AFTER, StatusResult, refresh_statuses
from pipeline.webhooks import (
    Verifier,
    WebhookReceiver,
    address,
    bind,
)
from pipeline.webhooks import serve as serve_receiver


@dataclass(frozen=True)
class PlanRun:
    """What ``plan_files`` did: the plan table, its budget check, and where it was written."""

    plan: pl.DataFrame
    out: Path
    budgets: BudgetCheck

    @property
    def exit_code(self) -> int:
        """0 when every row is planned or skipped, 1 when any row is rejected."""
        return 1 if (self.plan["outcome"] == "rejected").any() else 0


async def plan_files(
    paths: Sequence[Path],
    *,
    config_path: Path | None = None,
    devices: Path | None = None,
    codes: Path | None = None,
    out: Path | None = None,
    budget: BudgetOptions | None = None,
    now: dt.datetime | None = None,
) -> PlanRun:
    """Read, plan, check budgets and write: one output row per input row.

    The config's door, site and level names are checked against the doors first
    (``check_config``: one warning each, logged before any row is planned).
    Used codes come from Seam, or with ``devices`` (offline) from ``codes`` when given (else
    they are unknown, and the check says so). Raises UsageError (exit 2), also for ``codes``
    without ``devices`` and for ``--on-budget-exceeded abort`` with a door over budget (after
    writing the plan).
    """
    if codes is not None and devices is None:
        raise UsageError("--codes goes with --devices", hint="without --devices Seam is asked")
    now = now or dt.datetime.now(dt.UTC)
    out = out or default_output_path("plan", now=now)
    await anyio.to_thread.run_sync(check_output_path, out)
    config = (budget or BudgetOptions()).apply(
        await anyio.to_thread.run_sync(load_config, config_path)
    )
    # Doors first: a missing API key (or an unreachable Seam) stops the run before a large
    # export is read.
    catalog = await load_catalog(config, devices)
    await anyio.to_thread.run_sync(check_config, config, catalog)
    reservations = await anyio.to_thread.run_sync(read_reservations, paths, config)
    plan = await anyio.to_thread.run_sync(
        lambda: plan_reservations(reservations, catalog, config, now=now)
    )
    if devices is None:
        async with SeamClient(load_credentials(config)) as client:
            check = await count_budgets(plan, catalog, config.budgets, now=now, client=client)
    else:
        listed = None if codes is None else await anyio.to_thread.run_sync(read_code_file, codes)
        check = await count_budgets(plan, catalog, config.budgets, now=now, listed=listed)
    written = await anyio.to_thread.run_sync(write_table, check.plan, out)
    run = PlanRun(plan=check.plan, out=written, budgets=check)
    if (error := check.abort_error(run.out)) is not None:
        raise error
    return run


@dataclass(frozen=True)
class ApplyRun:
    """What ``apply_files`` did: the apply result, and where results and ledger are."""

    result: ApplyResult
    out: Path
    ledger: LedgerLocation
    budgets: BudgetCheck
    newly_orphaned: int = 0  # codes whose reservation this run's inputs no longer have

    @property
    def exit_code(self) -> int:
        return self.result.exit_code


async def apply_files(
    paths: Sequence[Path],
    *,
    config_path: Path | None = None,
    ledger_path: LedgerLocation = DEFAULT_LEDGER,
    out: Path | None = None,
    settings: ApplySettings | ApplyOptions | None = None,
    budget: BudgetOptions | None = None,
    wait_for_lock: float = WAIT_FOR_LOCK,
    reissue_changed: bool | None = None,
    transport: Transport | None = None,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
    interrupt: Interrupt | None = None,
) -> ApplyRun:
    """Plan the files against the live doors and create every planned code exactly once.
    The config's names are checked against the doors first, as for ``plan_files``.

    Writes the results file (one row per input row, mode 0600) and records the run in the
    ledger, also when the run stops early (RunStopped is then in the result, exit code 3).
    Holds the ledger's run lock and, once Seam has said which workspace the key acts in, that
    workspace's lock on this host (``apply.workspace``) throughout, waiting up to
    ``wait_for_lock`` seconds for both together (RunLocked, exit 3, when another run keeps
    one; for a ledger it can't open or reach, ``run_lock``'s errors; UsageError, exit 2, for a
    key of another workspace than the ledger's). ``settings`` as the command line gives them
    (``ApplyOptions``) or already built. ``reissue_changed``: whether a stay whose window
    changed gets a new code (None: the config's ``[changes] reissue_changed``). Raises
    UsageError (exit 2) for unusable settings or input before anything is sent (also for a
    configured source none of ``paths`` matches, before the ledger is opened, and for
    ``--on-budget-exceeded abort`` with a door over budget), and SeamError (exit 3) when the
    doors or their codes can't be listed. An ``interrupt`` (a signal) before the sending raises
    Interrupted (exit 128 + the signal) with the run recorded; during it, the sending stops and
    the results are written as for any stop.
    """
    if isinstance(settings, ApplyOptions):
        settings = settings.settings()
    settings = check_settings(settings or ApplySettings())
    now = now or dt.datetime.now(dt.UTC)
    out = out or default_output_path("results", now=now)
    await anyio.to_thread.run_sync(check_output_path, out)
    config = (budget or BudgetOptions()).apply(
        await anyio.to_thread.run_sync(load_config, config_path)
    )
    await anyio.to_thread.run_sync(check_inputs, paths, config)
    credentials = load_credentials(config)
    credentials.auth_headers()  # a missing key stops the run before the ledger is touched
    inputs = [str(path) for path in paths]
    opened = apply_session(credentials, ledger_path, settings, "apply", inputs, transport)
    waited_until = anyio.current_time() + wait_for_lock
    # The ledger's lock first: it is on the ledger file itself (or on a connection of its
    # own), and must outlive the ledger's connection. Then the Seam workspace's (``held``).
    async with (
        run_lock(ledger_path, wait=wait_for_lock) as lock,
        opened as session,
        AsyncExitStack() as held,
    ):
        session.ledger.hold(lock.parts if lock is not None else None)
        try:
            async with until_interrupted(interrupt):
                catalog = await list_catalog(session.client)
                wait = max(0.0, waited_until - anyio.current_time())
                await hold_workspace(session, held, wait=wait)
                await anyio.to_thread.run_sync(check_config, config, catalog)
                reservations = await anyio.to_thread.run_sync(read_reservations, paths, config)
                plan = await anyio.to_thread.run_sync(
                    lambda: plan_reservations(reservations, catalog, config, now=now)
                )
                if reissue_changed is None:  # the command line's word wins for one run
                    reissue_changed = config.changes.reissue_changed
                reruns = await check_reruns(plan, session.ledger, reissue=reissue_changed)
                planned = await anyio.to_thread.run_sync(
                    lambda: dict(
                        reruns.plan.filter(pl.col("outcome") == "planned")
                        .select("idempotency_tag", "device_id")
                        .iter_rows()
                    )
                )
                work = await doors_with_work(session.ledger, planned, now=now)
                look = await look_at_budgeted_doors(session.client, catalog, config.budgets, work)
                check = await count_budgets(
                    reruns.plan,
                    catalog,
                    config.budgets,
                    now=now,
                    listed=look.all_codes(),
                    ledger=session.ledger,
                )
                if (error := check.abort_error()) is not None:
                    raise error
        except PipelineError as exc:
            raise await _stop(session, exc) from exc
        guard = await anyio.to_thread.run_sync(
            lambda: BudgetGuard(
                session.client,
                session.ledger,
                check,
                config.budgets,
                now=now,
                listed_at=look.listed_at,
                recount_after=settings.recount_after,
            )
        )
        result = await apply_plan(
            check.plan,
            session,
            settings,
            guard=guard,
            look=look,
            refresh=lambda tags: refresh_statuses(
                session.client, session.ledger, session.run_id, now=now, tags=tags
            ),
            on_progress=progress.advance if progress else lambda event: None,
            on_total=progress.start if progress else lambda total: None,
            on_doors=progress.pace_doors if progress else lambda doors, rate: None,
            interrupt=interrupt,
            now=now,
        )

        # The reissued codes are in the ledger now (registered by apply_plan).
        await link_replacements(session.ledger, reruns.replaces)
        await record_handoff(session.ledger, session.run_id, result.results, reservations)

        def write_and_summarise() -> tuple[dict[str, int], RunSummary]:
            write_table(result.results, out)
            counts = dict(result.results.group_by("outcome").len().rows())
            return counts, run_summary(result.results, check, catalog.doors)

        counts, summary = await anyio.to_thread.run_sync(write_and_summarise)
        recorded = await session.ledger.record_apply(
            session.run_id,
            summary.doors,
            summary.budgets,
            summary.reservation_ids,
            now=now,
            current_tags=summary.current_tags,
            stays=summary.stays,
            unsure=summary.unsure,
        )
        say_no_longer_asked(recorded.no_longer_asked)
        await session.ledger.finish_run(session.run_id, result.exit_code, counts)
    return ApplyRun(
        result=result,
        out=out,
        ledger=ledger_path,
        budgets=check,
        newly_orphaned=recorded.orphaned,
    )


async def _stop(session: ApplySession, exc: PipelineError) -> PipelineError:
    """Record in the ledger that the run stopped before its work; returns the error to raise
    (a refused key becomes the one-line RunStopped that says which variable to check)."""
    stop = exc
    if isinstance(exc, SeamError) and exc.status in KEY_REFUSED_STATUS:
        stop = key_refused(exc)
    await session.ledger.finish_run(session.run_id, stop.exit_code, {})
    return stop


@dataclass(frozen=True)
class StatusRun:
    """What ``status_files`` did: the refreshed codes, and where they were written."""

    result: StatusResult
    out: Path
    run_id: str

    @property
    def exit_code(self) -> int:
        return self.result.exit_code


async def status_files(
    *,
    config_path: Path | None = None,
    ledger_path: LedgerLocation = DEFAULT_LEDGER,
    out: Path | None = None,
    attention_after: dt.timedelta = ATTENTION_AFTER,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    transport: Transport | None = None,
    now: dt.datetime | None = None,
    interrupt: Interrupt | None = None,
) -> StatusRun:
    """Refresh every code of the ledger that isn't final and write them (mode 0600: PINs).

    Raises UsageError (exit 2) for a bad ``request_timeout``, a missing ledger or key, or a key
    of another Seam workspace than the ledger's, SeamError (exit 3) when Seam can't be asked,
    LedgerError (exit 3) when a PostgreSQL ledger's server can't be reached.
    """
    check_request_timeout(request_timeout)
    now = now or dt.datetime.now(dt.UTC)
    out = out or default_output_path("status", now=now)
    await anyio.to_thread.run_sync(check_output_path, out)
    await _require_ledger(ledger_path, "status")
    config = await anyio.to_thread.run_sync(load_config, config_path)
    credentials = load_credentials(config)
    credentials.auth_headers()
    settings = ApplySettings(request_timeout=request_timeout)
    opened = apply_session(credentials, ledger_path, settings, "status", [], transport)
    async with opened as session:
        try:
            async with until_interrupted(interrupt):
                asked_before = session.client.requests
                await check_workspace(session)
                result = await refresh_statuses(
                    session.client,
                    session.ledger,
                    session.run_id,
                    now=now,
                    attention_after=attention_after,
                )
                doubled = await look_for_duplicates(
                    session.client, session.ledger, session.run_id, now=now
                )
        except PipelineError as exc:
            raise await _stop(session, exc) from exc
        say_duplicates(doubled, command="status")
        result = replace(
            result,
            duplicates=duplicate_table(doubled),
            requests=session.client.requests - asked_before,  # every one this status sent
        )
        await anyio.to_thread.run_sync(write_table, result.codes, out)
        await session.ledger.finish_run(
            session.run_id,
            result.exit_code,
            {"checked": result.codes.height, "needs_attention": result.needing_attention.height},
        )
    return StatusRun(result=result, out=out, run_id=session.run_id)


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
    await _require_ledger(ledger_path, "report")
    ledger = await Ledger.open(ledger_path)
    try:
        async with ledger.snapshot():
            report = await make_report(ledger, now=now, run_id=run_id, runs=runs)
            if page_made_at is None:
                return report, None
            return report, await gather_page_data(ledger, report, made_at=page_made_at)
    finally:
        await ledger.close()


async def _require_ledger(ledger: LedgerLocation, command: str) -> None:
    """Commands that read what runs did need their ledger: a wrong path, or a database that
    holds no ledger, is exit 2 (a PostgreSQL server out of reach is exit 3)."""
    if isinstance(ledger, PostgresLedger):
        if not await anyio.to_thread.run_sync(
            functools.partial(holds_ledger, ledger, purpose=command)
        ):
            raise UsageError(
                f"ledger {ledger} does not exist: its database has no ledger tables",
                hint="check --ledger or ORACODE_LEDGER; apply creates the ledger",
            )
    elif not await anyio.to_thread.run_sync(ledger.exists):
        raise UsageError(f"ledger {ledger} does not exist", hint="check --ledger")


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


@dataclass(frozen=True)
class DoorsRun:
    """What ``list_doors`` did: the doors list (``list_door_levels``), and the file it was
    written to (None: for the terminal)."""

    listing: pl.DataFrame
    out: Path | None = None

    @property
    def door_count(self) -> int:
        return self.listing["device_id"].n_unique()


async def list_doors(
    *,
    config_path: Path | None = None,
    devices: Path | None = None,
    fmt: str = DOORS_FORMAT,
    out: Path | None = None,
    transport: Transport | None = None,
) -> DoorsRun:
    """Every dormakaba Oracode door with its site, zone, device_id, offline capability and
    user levels, from Seam (needs SEAM_API_KEY) or a ``devices`` file; with ``out``, written
    there as ``fmt`` (``csv`` or ``json``).

    Raises UsageError (exit 2), before the doors are listed, for a format or ``out`` that
    can't be used or written, DeviceDataError (exit 2) for a ``devices`` file it can't use,
    SeamError (exit 3) when Seam can't be asked.
    """
    await anyio.to_thread.run_sync(check_doors_out, out, fmt)
    config = await anyio.to_thread.run_sync(load_config, config_path)
    catalog = await load_catalog(config, devices, transport)
    listing = await anyio.to_thread.run_sync(list_door_levels, catalog)
    if out is not None:
        await anyio.to_thread.run_sync(write_doors, listing, fmt, out)
    return DoorsRun(listing, out)


@dataclass(frozen=True)
class PinsRun:
    """What ``export_pins`` did: the hand-off table, and the file it was written to."""

    pins: pl.DataFrame
    out: Path

    @property
    def ready(self) -> int:
        return int(self.pins["ready"].sum())


async def export_pins(
    *,
    config_path: Path | None = None,
    ledger_path: LedgerLocation = DEFAULT_LEDGER,
    fmt: str | None = None,
    out: Path | None = None,
    ready_only: bool = False,
    changed_since: str | dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> PinsRun:
    """The guest → PIN hand-off from the ledger alone (``report.pins``): one row per
    reservation and door of the latest input (those without a code saying why), never an
    orphaned (cancelled) or replaced code, times for messages as the config's ``[pins]``
    says; written as ``fmt`` (``csv``, ``parquet`` or ``json``; default: ``out``'s extension,
    else csv) to ``out`` (default ``outputs/pins-<UTC time>.<fmt>``), atomically, mode 0600.
    No key needed, no lock taken.

    Raises UsageError (exit 2), before the ledger is read, for a format, ``out`` or
    ``changed_since`` it can't use, a config error, and for a missing ledger; LedgerError
    (exit 3) when a PostgreSQL ledger's server can't be reached.
    """
    now = now or dt.datetime.now(dt.UTC)
    out, chosen = await anyio.to_thread.run_sync(check_pins_out, out, fmt)
    if isinstance(changed_since, str):
        changed_since = instant_option(changed_since, "--changed-since")
    config = await anyio.to_thread.run_sync(load_config, config_path)
    await _require_ledger(ledger_path, "pins")
    ledger = await Ledger.open(ledger_path)
    try:
        table = await hand_off(
            ledger, now=now, ready_only=ready_only, changed_since=changed_since, formats=config.pins
        )
    finally:
        await ledger.close()
    written = await anyio.to_thread.run_sync(lambda: write_pins(table, chosen, out, now=now))
    return PinsRun(table, written)


async def summarise_night(
    *,
    ledger_path: LedgerLocation = DEFAULT_LEDGER,
    results: Path | None = None,
    apply_exit: int = 0,
    status_exit: int = 0,
    now: dt.datetime | None = None,
) -> NightlySummary:
    """The nightly job's summary (``report.nightly``): tonight's counts from apply's
    ``results`` file and the ledger, what is new since the last summary, and the job's exit
    code (0 nothing new, 1 new trouble, else the worse of ``apply_exit`` and ``status_exit``
    from 2 up). Records tonight's trouble as known in the ledger.

    Raises UsageError (exit 2) for a missing ledger, LedgerError (exit 3) when a PostgreSQL
    ledger's server can't be reached.
    """
    now = now or dt.datetime.now(dt.UTC)
    await _require_ledger(ledger_path, "nightly-summary")
    table = await anyio.to_thread.run_sync(read_results, results)
    ledger = await Ledger.open(ledger_path)
    try:
        return await nightly_summary(
            ledger, table, now=now, apply_exit=apply_exit, status_exit=status_exit
        )
    finally:
        await ledger.close()


def serve_sandbox(options: SandboxOptions, *, on_ready: Callable[[int], None]) -> None:
    """Serve the sandbox in the foreground until Ctrl-C; ``on_ready`` gets its door count
    first. Raises UsageError (exit 2) for bad options or a device file it can't use.

    Not async: uvicorn runs its own event loop and owns the signals.
    """
    door_rate = parse_rate(options.door_rate)
    faults = options.faults()
    webhooks = options.webhooks()
    try:
        state, app = build_sandbox(
            options.devices,
            door_rate=door_rate,
            global_rate=options.global_rate,
            faults=faults,
            seed=options.seed,
            webhooks=webhooks,
        )
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"sandbox device file {options.devices} can't be used: {exc}") from exc
    on_ready(len(state.slots))
    serve(app, options.host, options.port)


async def serve_webhooks(
    *,
    host: str = WEBHOOK_HOST,
    port: int = WEBHOOK_PORT,
    ledger_path: LedgerLocation = DEFAULT_LEDGER,
    on_ready: Callable[[str], None],
) -> None:
    """Receive Seam's webhooks on ``host``:``port`` (any path) into the ledger until SIGINT or
    SIGTERM; ``on_ready`` gets the receiver's URL once it listens.

    Raises, before listening, ConfigError (exit 2) when SEAM_WEBHOOK_SECRET is missing or
    malformed, UsageError (exit 2) when the ledger doesn't exist or the port can't be had,
    LedgerError (exit 3) when a PostgreSQL ledger's server can't be reached, and as
    ``Ledger.open`` does for a ledger that can't be used. Takes no run lock: apply and
    status may run on the same ledger meanwhile.
    """
    verifier = Verifier(load_webhook_secret())
    await _require_ledger(ledger_path, "webhooks")
    ledger = await Ledger.open(ledger_path)  # a damaged ledger is one line, not a server error
    await ledger.close()
    listening = bind(host, port)
    with listening:
        on_ready(address(listening))
        await serve_receiver(WebhookReceiver(ledger_path, verifier), listening)


def save_crash_details(details: str, *, now: dt.datetime | None = None) -> Path:
    """Write a defect's traceback to ``outputs/crash-<UTC time>.txt`` (mode 0600); returns
    where. Raises OSError when it can't be written."""
    now = now or dt.datetime.now(dt.UTC)
    return write_private_text(default_output_path("crash", now=now).with_suffix(".txt"), details)
