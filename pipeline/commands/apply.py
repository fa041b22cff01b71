"""``apply``: plan against the live doors, then create every planned code exactly once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread

from pipeline.apply.handoff import record_handoff
from pipeline.apply.reruns import (
    check_reruns,
    link_replacements,
    say_many_orphaned,
    say_no_longer_asked,
)
from pipeline.apply.run import (
    ApplyResult,
    ApplySettings,
    Progress,
    apply_plan,
    apply_session,
    doors_with_work,
)
from pipeline.apply.workspace import hold_workspace
from pipeline.budget.limits import BudgetCheck
from pipeline.budget.usage import BudgetGuard, count_budgets, look_at_budgeted_doors
from pipeline.catalog.checks import check_config
from pipeline.catalog.sources import list_catalog
from pipeline.commands.options import (
    WAIT_FOR_LOCK,
    ApplyOptions,
    check_duration,
    check_settings,
)
from pipeline.commands.runs import stop_run
from pipeline.common.errors import PipelineError
from pipeline.common.interrupts import Interrupt, until_interrupted
from pipeline.common.outputs import check_output_path, default_output_path, write_table
from pipeline.common.settings import BudgetOptions, load_config, load_credentials
from pipeline.ledger.location import LedgerLocation
from pipeline.ledger.lock import run_lock
from pipeline.ledger.store import DEFAULT_LEDGER
from pipeline.plan.planner import plan_reservations
from pipeline.read.files import check_inputs, read_reservations
from pipeline.report.summary import RunSummary, run_summary
from pipeline.seam.client import Transport
from pipeline.status.refresh import refresh_statuses


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
    check_duration(wait_for_lock, "--wait-for-lock")
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
                work = await doors_with_work(session.ledger, reruns.plan, now=now)
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
            raise await stop_run(session, exc) from exc
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
        say_many_orphaned(recorded.orphaned, len(summary.current_tags))
        await session.ledger.finish_run(session.run_id, result.exit_code, counts)
    return ApplyRun(
        result=result,
        out=out,
        ledger=ledger_path,
        budgets=check,
        newly_orphaned=recorded.orphaned,
    )
