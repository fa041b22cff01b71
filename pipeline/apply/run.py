"""The apply stage: planned rows in, codes created through the scheduler, one result per row out.

Outcomes in the results (besides the plan's ``rejected`` and ``skipped``):
    created          made by this run (reason ``adopted`` when found on the door after its
                     answer was lost; ``duplicate_on_door`` when more than one code on the
                     door carries its tag, which the message names)
    already_created  made earlier: the ledger has it, or (reason ``found_on_door``) the look
                     at its door found a code carrying its tag; no create was sent
    rejected         the plan's reasons, and ``budget_exhausted`` for codes the door's budget
                     could no longer take when it was counted again before its first create,
                     or after Seam answered that the door has no space
    failed           Seam refused it (reason = Seam's error type), or the run stopped before
                     it was made (``not_attempted``) or before its outcome was known
                     (``outcome_unknown``: the next run looks for it before sending again)
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

import anyio
import anyio.to_thread
import polars as pl

from pipeline.apply.creator import CodeCreator, create_body, door_label
from pipeline.apply.duplicates import describe, say_duplicates
from pipeline.apply.pacing import GlobalPace
from pipeline.apply.policy import CreatePolicy, ProgressWatch
from pipeline.apply.scheduler import DoorScheduler, Job, SchedulerStats
from pipeline.budget.limits import ALLOCATION_ORDER
from pipeline.budget.usage import RECOUNT_AFTER, BudgetGuard
from pipeline.catalog.looking import DoorLook
from pipeline.common.errors import RunStopped, SeamError
from pipeline.common.interrupts import Interrupt, send_until_interrupted
from pipeline.common.rates import SEAM_DOOR_RATE, Rate
from pipeline.common.reasons import (
    ADOPTED,
    BUDGET_EXHAUSTED,
    DUPLICATE_ON_DOOR,
    FOUND_ON_DOOR,
    NOT_ATTEMPTED,
    OUTCOME_UNKNOWN,
)
from pipeline.common.settings import SeamCredentials
from pipeline.ledger.columns import RESULT_COLUMNS
from pipeline.ledger.location import LedgerLocation
from pipeline.ledger.store import SENDABLE, Ledger, LedgerCode
from pipeline.seam.client import DEFAULT_REQUEST_TIMEOUT, SeamClient, Transport

log = logging.getLogger(__name__)

OUTCOMES = ("created", "already_created", "rejected", "failed", "skipped")
OUTCOME_UNKNOWN_MESSAGE = (
    "the create's answer was lost and the run stopped before the code could be looked for; "
    "the next run looks for it on the door before sending again"
)
NOT_ATTEMPTED_MESSAGE = "the run stopped before this code was created; rerun to create it"
FOUND_ON_DOOR_MESSAGE = "found on the door (a code there carries its tag): not created again"
# Seam's answers wait at most this long (seconds) for a commit; most go in with the next create's.
ANSWERS_COMMITTED_WITHIN = 0.25


class Progress(Protocol):
    """What a run says as it goes, for a progress display: the codes to create, each create's
    event (``apply_plan``'s ``on_progress``) and the doors' pace (``on_doors``)."""

    def start(self, total: int) -> None: ...

    def advance(self, event: str) -> None: ...

    def pace_doors(self, creates_per_door: Mapping[str, int], rate: Rate | None) -> None: ...


@dataclass(frozen=True)
class ApplySettings:
    """Limits and patience of one apply run (the CLI's options)."""

    door_rate: Rate | None = SEAM_DOOR_RATE
    global_rate: float | None = None
    concurrency: int = 12
    policy: CreatePolicy = field(default_factory=CreatePolicy)
    # A budgeted door is counted again before its first create when its look is older.
    recount_after: float = RECOUNT_AFTER
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT  # seconds for a whole answer


@dataclass
class ApplyResult:
    """What ``apply_plan`` did: one result row per plan row, and how the sending went."""

    results: pl.DataFrame
    run_id: str
    stats: SchedulerStats
    seconds: float
    learnt_door_rate: Rate | None = None
    stopped: RunStopped | None = None
    requests: int = 0  # every request this run's client sent to Seam

    @property
    def requests_per_new_code(self) -> float | None:
        """Requests sent per code this run created (None when it created none)."""
        created = int((self.results["outcome"] == "created").sum())
        return self.requests / created if created else None

    @property
    def exit_code(self) -> int:
        """3 when the run stopped, 1 when any row was rejected or failed or its code is on its
        door more than once, else 0."""
        if self.stopped is not None:
            return self.stopped.exit_code
        trouble = self.results["outcome"].is_in(["rejected", "failed"]) | (
            self.results["reason"] == DUPLICATE_ON_DOOR
        )
        return 1 if trouble.any() else 0


@dataclass(frozen=True)
class ApplySession:
    """One apply run's open resources: the Seam client with its pace, the ledger, the run, and
    the watch on its progress (which bounds every wait of the client's too)."""

    client: SeamClient
    pace: GlobalPace
    ledger: Ledger
    run_id: str
    progress: ProgressWatch


@asynccontextmanager
async def apply_session(
    credentials: SeamCredentials,
    ledger_path: LedgerLocation,
    settings: ApplySettings,
    command: str,
    inputs: Sequence[str],
    transport: Transport | None = None,
) -> AsyncIterator[ApplySession]:
    """Open the ledger, record a run, and open a client paced by ``settings`` whose every
    exchange goes to the ledger's event log, whose failing reads are no progress and whose
    waits (a read's ``Retry-After``, its backoff) never outlast what is left before the run
    gives up; closes both on the way out."""
    async with await Ledger.open(ledger_path) as ledger:
        run_id = await ledger.start_run(command, inputs)
        pace = GlobalPace(settings.global_rate)
        progress = ProgressWatch(settings.policy.give_up_after)
        async with SeamClient(
            credentials,
            transport=transport,
            pace=pace,
            observe=ledger.observe(run_id),
            max_connections=settings.concurrency,
            request_timeout=settings.request_timeout,
            patience=progress,
        ) as client:
            yield ApplySession(client, pace, ledger, run_id, progress)


async def doors_with_work(
    ledger: Ledger, plan: pl.DataFrame, *, now: dt.datetime | None = None
) -> set[str]:
    """The doors this run must look at: those with a planned code of ``plan`` the ledger
    doesn't have as ``created``, those with a code an earlier run
    left ``sending``, and those where a late create may have left a duplicate
    (``Ledger.doubtful_doors``). Says once when the ledger holds no code at all (a new or lost
    ledger): every door is then looked at, which only costs requests."""
    planned = await anyio.to_thread.run_sync(
        lambda: dict(
            plan.filter(pl.col("outcome") == "planned")
            .select("idempotency_tag", "device_id")
            .iter_rows()
        )
    )
    states = await ledger.states(list(planned))
    if not await ledger.has_codes():
        log.warning(
            "the ledger holds no codes yet (a new ledger, or not the one earlier runs used):"
            " every door is looked at on Seam before its first create",
            extra={"ledger": str(ledger.path)},
        )
    doors = {device for tag, device in planned.items() if states.get(tag) != "created"}
    doubtful = await ledger.doubtful_doors(now=now or dt.datetime.now(dt.UTC))
    return doors | doubtful | {code.device_id for code in await ledger.codes_in_state("sending")}


async def apply_plan(
    plan: pl.DataFrame,
    session: ApplySession,
    settings: ApplySettings,
    *,
    guard: BudgetGuard | None = None,
    look: DoorLook | None = None,
    refresh: Callable[[set[str]], Awaitable[object]] | None = None,
    on_progress: Callable[[str], None] = lambda event: None,
    on_total: Callable[[int], None] = lambda total: None,
    on_doors: Callable[[Mapping[str, int], Rate | None], None] = lambda doors, rate: None,
    interrupt: Interrupt | None = None,
    now: dt.datetime | None = None,
) -> ApplyResult:
    """Create every planned code of ``plan`` exactly once; returns the results table.

    Every door with something to send is looked at first (one list, every page; ``look``
    holds the doors already listed this run, for their budgets): a planned code found on its
    door is adopted (``already_created``, ``found_on_door``), whatever the ledger held; codes
    the ledger already has as ``created`` are not sent again; codes an earlier run left
    ``sending`` are adopted when found, and otherwise sent again only once their settle time
    has passed. Each door sends its codes in allocation order; the ``guard``'s doors are
    counted again before their first create when their look has gone stale. At the end,
    ``refresh`` is given the tags this run created or found (to bring their statuses up to
    date) unless the run stopped. RunStopped (401, no progress) ends the sending early but
    still returns the results of what was done; so does an ``interrupt`` (a signal), after
    the requests in flight finished (at most ``GRACE_SECONDS``).

    Doors where a late create may have left a duplicate are looked at too, and every look is
    read for duplicates: a row whose tag is on its door more than once (found now or known to
    the ledger, while the window lasts) is ``duplicate_on_door``, and the run says them in one
    line on stderr.
    """
    client, ledger, run_id = session.client, session.ledger, session.run_id
    at = now or dt.datetime.now(dt.UTC)  # which windows are still open

    started = anyio.current_time()
    rows = await anyio.to_thread.run_sync(
        lambda: plan.filter(pl.col("outcome") == "planned").sort(ALLOCATION_ORDER).to_dicts()
    )
    tags = [row["idempotency_tag"] for row in rows]
    states = await ledger.states(tags)
    sending: dict[str, list[LedgerCode]] = {}
    for code in await ledger.codes_in_state("sending"):
        sending.setdefault(code.device_id, []).append(code)
    # Committed beside the doors' first looks (which don't need it); every later change to
    # these codes is queued after it, and a create waits for it.
    registered = ledger.register_soon(run_id, rows)
    already = {tag for tag in tags if states.get(tag) == "created"}
    to_send = [row for row in rows if states.get(row["idempotency_tag"], "pending") in SENDABLE]
    planned: dict[str, list[str]] = {}
    for row in rows:
        if row["idempotency_tag"] not in already:
            planned.setdefault(row["device_id"], []).append(row["idempotency_tag"])
    scheduler = DoorScheduler(
        door_rate=settings.door_rate,
        concurrency=settings.concurrency,
        global_pace=session.pace,
    )
    doubtful = await ledger.doubtful_doors(now=at)
    for device_id in sorted(planned.keys() | sending.keys() | doubtful):
        scheduler.add(Job(device_id, device_id, "look"))
        if guard is not None and device_id in guard.doors:
            scheduler.add(Job(device_id, device_id, "check"))
    for row in to_send:
        scheduler.add(Job(row["device_id"], row["idempotency_tag"], "create"))
    on_total(len(rows) - len(already))
    creates_per_door: dict[str, int] = {}
    for row in to_send:
        creates_per_door[row["device_id"]] = creates_per_door.get(row["device_id"], 0) + 1
    on_doors(creates_per_door, settings.door_rate)
    creator = CodeCreator(
        client,
        ledger,
        run_id,
        {row["idempotency_tag"]: create_body(row) for row in rows},
        policy=settings.policy,
        progress=session.progress,
        registered=registered,
        guard=guard,
        planned=planned,
        sending=sending,
        prelisted=look.codes if look is not None else None,
        on_progress=on_progress,
        doors={row["device_id"]: door_label(row) for row in rows},
    )
    stopped = None
    try:
        async with ledger.commit_every(ANSWERS_COMMITTED_WITHIN):
            await send_until_interrupted(
                interrupt, lambda: scheduler.run(creator.send, creator.prepare), scheduler.stop
            )
    except RunStopped as exc:
        stopped = exc
        # The command ends on the stop's own line; here only that the sending ended early.
        log.info("sending stopped early; recording what was done")
    await ledger.committed(registered)
    # Codes made `sending` ahead of a send that didn't happen (the run stopped, the door
    # closed, the code was found) go back: known not sent.
    await ledger.unmark_sending(run_id, creator.unsent())
    if scheduler.dropped:
        await ledger.mark_failed_many(
            run_id,
            [(job.key, *creator.closed_doors[job.device_id]) for job in scheduler.dropped],
        )
        for _ in scheduler.dropped:
            on_progress("failed")
    found_on_door = creator.found_on_door
    if refresh is not None and stopped is None:
        try:
            await refresh(set(tags) - already)
        except (SeamError, RunStopped) as exc:
            log.warning("could not refresh the codes' statuses", extra={"error": exc.one_line()})
    codes = pl.DataFrame(
        await ledger.code_table(tags),
        schema=CODE_TABLE_SCHEMA,
    )
    ours = set(tags) | creator.duplicates.keys()
    duplicates = [
        row for row in await ledger.duplicate_rows(now=at) if row["idempotency_tag"] in ours
    ]
    say_duplicates(duplicates, command="apply")
    results = await anyio.to_thread.run_sync(
        lambda: result_table(
            plan,
            codes,
            already=already | found_on_door,
            found_on_door=found_on_door,
            run_id=run_id,
            duplicates={row["idempotency_tag"]: describe(row) for row in duplicates},
        )
    )
    return ApplyResult(
        results=results,
        run_id=run_id,
        stats=scheduler.stats,
        seconds=anyio.current_time() - started,
        learnt_door_rate=scheduler.learnt_door_rate,
        stopped=stopped,
        requests=client.requests,
    )


# The ledger's code rows (``RESULT_COLUMNS``) as a table: every column text but the count.
CODE_TABLE_SCHEMA = {
    column: pl.Int64 if column == "attempts" else pl.String for column in RESULT_COLUMNS
}


def result_table(
    plan: pl.DataFrame,
    codes: pl.DataFrame,
    *,
    already: set[str],
    run_id: str,
    found_on_door: Collection[str] = (),
    duplicates: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """The plan's rows with their outcome: one row per plan row, in the plan's order.
    ``duplicates``: tag → what to say of a code that is on its door more than once."""
    joined = plan.join(
        codes.rename({"reason": "ledger_reason", "message": "ledger_message"}),
        on="idempotency_tag",
        how="left",
        maintain_order="left",
    )
    planned = pl.col("outcome") == "planned"
    state = pl.col("state")
    is_already = pl.col("idempotency_tag").is_in(list(already))
    is_found = pl.col("idempotency_tag").is_in(list(found_on_door))
    doubled = duplicates or {}
    is_doubled = (
        planned
        & pl.col("idempotency_tag").is_in(list(doubled))
        & (is_already | (state == "created"))
    )
    outcome = (
        pl.when(~planned)
        .then(pl.col("outcome"))
        .when(is_already)
        .then(pl.lit("already_created"))
        .when(state == "created")
        .then(pl.lit("created"))
        .when((state == "failed") & (pl.col("ledger_reason") == BUDGET_EXHAUSTED))
        .then(pl.lit("rejected"))
        .otherwise(pl.lit("failed"))
    )
    reason = (
        pl.when(~planned)
        .then(pl.col("reason"))
        .when(is_doubled)
        .then(pl.lit(DUPLICATE_ON_DOOR))
        .when(is_found)
        .then(pl.lit(FOUND_ON_DOOR))
        .when(state == "created")
        .then(pl.when(pl.col("ledger_reason") == ADOPTED).then(pl.lit(ADOPTED)))
        .when(state == "failed")
        .then(pl.col("ledger_reason"))
        .when(state == "sending")
        .then(pl.lit(OUTCOME_UNKNOWN))
        .otherwise(pl.lit(NOT_ATTEMPTED))
    )
    applied = (
        pl.when(is_doubled)
        .then(
            pl.col("idempotency_tag").replace_strict(doubled, default=None, return_dtype=pl.String)
        )
        .when(is_found)
        .then(pl.lit(FOUND_ON_DOOR_MESSAGE))
        .when(state == "failed")
        .then(pl.col("ledger_message"))
        .when(state == "sending")
        .then(pl.lit(OUTCOME_UNKNOWN_MESSAGE))
        .when(state == "pending")
        .then(pl.lit(NOT_ATTEMPTED_MESSAGE))
    )
    # What the plan said of a planned row (its window rounded to a level, the stay an entrance
    # code is for) stays after what apply says of it.
    message = (
        pl.when(~planned)
        .then(pl.col("message"))
        .otherwise(
            pl.concat_str(applied, pl.col("message"), separator="; ", ignore_nulls=True).replace(
                "", None
            )
        )
    )
    return joined.with_columns(
        outcome=outcome,
        reason=reason,
        message=message,
        run_id=pl.lit(run_id),
        attempts=pl.col("attempts").fill_null(0),
    ).drop("state", "ledger_reason", "ledger_message", "last_run_id")
