"""The commands as library functions: each CLI command is one call here that a test can make."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread
import polars as pl

from pipeline.apply.creator import KEY_REFUSED_STATUS, key_refused
from pipeline.apply.reruns import check_reruns, link_replacements
from pipeline.apply.run import (
    ApplyResult,
    ApplySession,
    ApplySettings,
    apply_plan,
    apply_session,
    doors_with_work,
)
from pipeline.budget.limits import BudgetCheck, read_code_file
from pipeline.budget.usage import BudgetGuard, count_budgets, look_at_budgeted_doors
from pipeline.catalog.doors import DeviceCatalog, read_device_file
from pipeline.errors import PipelineError, SeamError, UsageError
from pipeline.interrupts import Interrupt, until_interrupted
from pipeline.ledger.lock import run_lock
from pipeline.ledger.store import DEFAULT_LEDGER, Ledger
from pipeline.plan.planner import plan_reservations
from pipeline.read.files import read_reservations
from pipeline.report.files import check_output_path, default_output_path, write_table
from pipeline.report.output import ApplyProgress
from pipeline.report.status import ATTENTION_AFTER, StatusResult, refresh_statuses
from pipeline.report.summary import DEFAULT_RUNS, Report, RunSummary, read_report, run_summary
from pipeline.seam.client import DEFAULT_REQUEST_TIMEOUT, SeamClient, Transport
from pipeline.settings import BudgetOptions, Config, load_config, load_credentials


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


async def fetch_catalog(config: Config, transport: Transport | None = None) -> DeviceCatalog:
    """The Oracode doors of the workspace, from Seam's ``/devices/list`` (all pages)."""
    async with SeamClient(load_credentials(config), transport=transport) as client:
        return await list_catalog(client)


async def fetch_budgets(
    plan: pl.DataFrame,
    catalog: DeviceCatalog,
    config: Config,
    *,
    now: dt.datetime,
    transport: Transport | None = None,
) -> BudgetCheck:
    """The budget check with each budgeted door's codes listed from Seam."""
    async with SeamClient(load_credentials(config), transport=transport) as client:
        return await count_budgets(plan, catalog, config.budgets, now=now, client=client)


async def list_catalog(client: SeamClient) -> DeviceCatalog:
    devices = [device async for device in client.list_devices()]
    return await anyio.to_thread.run_sync(DeviceCatalog.from_devices, devices)


def load_catalog(config: Config, devices: Path | None) -> DeviceCatalog:
    """From a ``--devices`` file when given, else from the Seam API (needs SEAM_API_KEY)."""
    if devices is not None:
        return read_device_file(devices)
    return anyio.run(fetch_catalog, config)


def plan_files(
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

    Used codes come from Seam, or with ``devices`` (offline) from ``codes`` when given (else
    they are unknown, and the check says so). Raises UsageError (exit 2), also for
    ``--on-budget-exceeded abort`` with a door over budget (after writing the plan).
    """
    now = now or dt.datetime.now(dt.UTC)
    out = out or default_output_path("plan", now=now)
    check_output_path(out)
    config = (budget or BudgetOptions()).apply(load_config(config_path))
    # Doors first: a missing API key (or an unreachable Seam) stops the run before a large
    # export is read.
    catalog = load_catalog(config, devices)
    reservations = read_reservations(paths, config)
    plan = plan_reservations(reservations, catalog, config, now=now)
    if devices is None:
        check = anyio.run(functools.partial(fetch_budgets, plan, catalog, config, now=now))
    else:
        listed = read_code_file(codes) if codes is not None else None
        check = anyio.run(
            functools.partial(count_budgets, plan, catalog, config.budgets, now=now, listed=listed)
        )
    run = PlanRun(plan=check.plan, out=write_table(check.plan, out), budgets=check)
    if (error := check.abort_error(run.out)) is not None:
        raise error
    return run


@dataclass(frozen=True)
class ApplyRun:
    """What ``apply_files`` did: the apply result, and where results and ledger are."""

    result: ApplyResult
    out: Path
    ledger: Path
    budgets: BudgetCheck
    newly_orphaned: int = 0  # codes whose reservation this run's inputs no longer have

    @property
    def exit_code(self) -> int:
        return self.result.exit_code


async def apply_files(
    paths: Sequence[Path],
    *,
    config_path: Path | None = None,
    ledger_path: Path = DEFAULT_LEDGER,
    out: Path | None = None,
    settings: ApplySettings | None = None,
    budget: BudgetOptions | None = None,
    wait_for_lock: float = 0.0,
    reissue_changed: bool = False,
    transport: Transport | None = None,
    progress: ApplyProgress | None = None,
    now: dt.datetime | None = None,
    interrupt: Interrupt | None = None,
) -> ApplyRun:
    """Plan the files against the live doors and create every planned code exactly once.

    Writes the results file (one row per input row, mode 0600) and records the run in the
    ledger, also when the run stops early (RunStopped is then in the result, exit code 3).
    Holds the ledger's run lock throughout (waiting up to ``wait_for_lock`` seconds; RunLocked,
    exit 3, when another run keeps it). Raises UsageError (exit 2) for unusable input before
    anything is sent (also for
    ``--on-budget-exceeded abort`` with a door over budget), and SeamError (exit 3) when the
    doors or their codes can't be listed. An ``interrupt`` (a signal) before the sending
    raises Interrupted (exit 128 + the signal) with the run recorded; during it, the sending
    stops and the results are written as for any stop.
    """
    settings = settings or ApplySettings()
    now = now or dt.datetime.now(dt.UTC)
    out = out or default_output_path("results", now=now)
    await anyio.to_thread.run_sync(check_output_path, out)
    config = (budget or BudgetOptions()).apply(
        await anyio.to_thread.run_sync(load_config, config_path)
    )
    credentials = load_credentials(config)
    credentials.auth_headers()  # a missing key stops the run before the ledger is touched
    inputs = [str(path) for path in paths]
    opened = apply_session(credentials, ledger_path, settings, "apply", inputs, transport)
    # The lock first: it is on the ledger file itself, and must outlive the ledger's connection.
    async with run_lock(ledger_path, wait=wait_for_lock), opened as session:
        try:
            async with until_interrupted(interrupt):
                catalog = await list_catalog(session.client)
                reservations = await anyio.to_thread.run_sync(read_reservations, paths, config)
                plan = await anyio.to_thread.run_sync(
                    lambda: plan_reservations(reservations, catalog, config, now=now)
                )
                reruns = await check_reruns(plan, session.ledger, reissue=reissue_changed)
                planned = await anyio.to_thread.run_sync(
                    lambda: dict(
                        reruns.plan.filter(pl.col("outcome") == "planned")
                        .select("idempotency_tag", "device_id")
                        .iter_rows()
                    )
                )
                work = await doors_with_work(session.ledger, planned)
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
            interrupt=interrupt,
        )

        # The reissued codes are in the ledger now (registered by apply_plan).
        await link_replacements(session.ledger, reruns.replaces)

        def write_and_summarise() -> tuple[dict[str, int], RunSummary]:
            write_table(result.results, out)
            counts = dict(result.results.group_by("outcome").len().rows())
            return counts, run_summary(result.results, check, catalog.doors)

        counts, summary = await anyio.to_thread.run_sync(write_and_summarise)
        orphaned = await session.ledger.record_apply(
            session.run_id, summary.doors, summary.budgets, summary.reservation_ids, now=now
        )
        await session.ledger.finish_run(session.run_id, result.exit_code, counts)
    return ApplyRun(
        result=result, out=out, ledger=ledger_path, budgets=check, newly_orphaned=orphaned
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
    ledger_path: Path = DEFAULT_LEDGER,
    out: Path | None = None,
    attention_after: dt.timedelta = ATTENTION_AFTER,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    transport: Transport | None = None,
    now: dt.datetime | None = None,
    interrupt: Interrupt | None = None,
) -> StatusRun:
    """Refresh every code of the ledger that isn't final and write them (mode 0600: PINs).

    Raises UsageError (exit 2) for a missing ledger or key, SeamError (exit 3) when Seam
    can't be asked.
    """
    now = now or dt.datetime.now(dt.UTC)
    out = out or default_output_path("status", now=now)
    await anyio.to_thread.run_sync(check_output_path, out)
    await _require_ledger(ledger_path)
    config = await anyio.to_thread.run_sync(load_config, config_path)
    credentials = load_credentials(config)
    credentials.auth_headers()
    settings = ApplySettings(request_timeout=request_timeout)
    opened = apply_session(credentials, ledger_path, settings, "status", [], transport)
    async with opened as session:
        try:
            async with until_interrupted(interrupt):
                result = await refresh_statuses(
                    session.client,
                    session.ledger,
                    session.run_id,
                    now=now,
                    attention_after=attention_after,
                )
        except PipelineError as exc:
            raise await _stop(session, exc) from exc
        await anyio.to_thread.run_sync(write_table, result.codes, out)
        await session.ledger.finish_run(
            session.run_id,
            result.exit_code,
            {"checked": result.codes.height, "needs_attention": result.needing_attention.height},
        )
    return StatusRun(result=result, out=out, run_id=session.run_id)


async def report_files(
    *,
    ledger_path: Path = DEFAULT_LEDGER,
    run_id: str | None = None,
    runs: int = DEFAULT_RUNS,
    now: dt.datetime | None = None,
) -> Report:
    """The report from the ledger alone (no key needed, no lock taken: a run may be going on).

    Raises UsageError (exit 2) for a missing ledger or an unknown ``run_id``.
    """
    now = now or dt.datetime.now(dt.UTC)
    await _require_ledger(ledger_path)
    ledger = await Ledger.open(ledger_path)
    try:
        return await ledger.read(lambda db: read_report(db, now=now, run_id=run_id, runs=runs))
    finally:
        await ledger.close()


async def _require_ledger(path: Path) -> None:
    """Commands that read what runs did need their ledger: a wrong path is exit 2."""
    if not await anyio.to_thread.run_sync(path.exists):
        raise UsageError(f"ledger {path} does not exist", hint="check --ledger")
