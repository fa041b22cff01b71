"""Scheduling requests: a queue per door, per-door pacing, a global limiter and a concurrency cap.

A batch is bounded by its busiest door, not by how fast we can send (``pacing``: Seam limits
creates per door). The scheduler therefore always sends the next request from a door that may
send *now*, preferring the door with the longest backlog; a door that must wait holds nothing
(no task, no concurrency slot), so one door's backlog never delays another. The doors whose
backlog is within one window of the longest bound the run and never wait for the others; the
others have slack, and go at the global limiter's drip (``GlobalPace.slack_at``), leaving its
burst and the concurrency slots free for the busiest doors' windows.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import anyio
import anyio.abc

from pipeline.apply.pacing import DoorPace, GlobalPace, LearntRate, Scope, backoff
from pipeline.common.rates import SEAM_DOOR_RATE, Rate

# Jobs while which their door sends nothing else: what they find decides what it sends.
BLOCKING = frozenset({"look", "check"})
# A door's next create is prepared (``prepare``: its ledger commit) this long before its place
# in the door's window frees, so the commit isn't between the free place and the send.
PREPARE_LEAD = 0.05


@dataclass
class Job:
    """One request to make for a door: a ``look`` (list the door's codes before anything is
    sent to it), a ``check`` (count a budgeted door again before its first create), a
    ``create``, or a ``verify`` (look for a code whose create had an unknown outcome). While a
    look or a check is out, the door sends nothing else. ``key`` is the code's idempotency tag
    (for a look or a check: the device_id)."""

    device_id: str
    key: str
    kind: Literal["look", "check", "create", "verify"] = "create"


@dataclass(frozen=True)
class Outcome:
    """What became of a job, as ``send`` reports it to the scheduler.

    ``again``: queue this job (possibly changed, e.g. a create that became a verify) again,
    ``after`` seconds from now; ``later``: more jobs to queue, each ``(after, job)``.
    ``counted``: a create that reached Seam's rate counter.
    ``limited``: a 429 naming the door's or the global limit, with its ``retry_after``;
    ``wait_at_most``: the longest the pause it starts may be (what is left before the run
    gives up), whatever ``Retry-After`` or the backoff would make it.
    ``answered_at``: when the create's answer came (its place in the door's window ends one
    period later); defaults to when ``send`` returned. ``withdraw``: tags of the door's queued
    creates not to send (the caller has recorded why). ``close_door``: send no more creates
    to this door in this run; its queued ones go to ``DoorScheduler.dropped``.
    """

    again: Job | None = None
    after: float = 0.0
    counted: bool = False
    limited: Scope | None = None
    retry_after: float | None = None
    wait_at_most: float | None = None
    answered_at: float | None = None
    withdraw: frozenset[str] = frozenset()
    close_door: bool = False
    later: tuple[tuple[float, Job], ...] = ()


@dataclass
class _Door:
    device_id: str
    pace: DoorPace
    jobs: deque[Job] = field(default_factory=deque)
    token: int = 0
    is_checking: bool = False
    prepared: Job | None = None
    backlog_seen: int = -1  # the backlog last put in DoorScheduler._backlogs
    # A look or check that must be tried again waits at the front of the queue until then,
    # so that nothing behind it (a create) goes first.
    retry_at: float = 0.0

    def ready_at(self, now: float) -> float:
        if not self.jobs or self.is_checking:
            return math.inf
        first = self.jobs[0]
        if first.kind in BLOCKING:
            return max(now, self.retry_at)
        return now if first.kind != "create" else self.pace.ready_at(now)

    def remove_creates(self, keys: frozenset[str] | None = None) -> list[Job]:
        """Take the queued creates out (all, or those with the given keys); returns them."""
        kept: deque[Job] = deque()
        removed: list[Job] = []
        for job in self.jobs:
            is_removed = job.kind == "create" and (keys is None or job.key in keys)
            (removed if is_removed else kept).append(job)
        self.jobs = kept
        return removed


@dataclass
class SchedulerStats:
    sent: int = 0
    creates: int = 0
    rate_limited_door: int = 0
    rate_limited_global: int = 0


class DoorScheduler:
    """Runs jobs through ``send`` with at most ``concurrency`` at once, each door paced.

    Contract: a job is handed to ``send`` only when its door may send now; a door that may not
    is never waited on while another door could send.
    """

    def __init__(
        self,
        *,
        door_rate: Rate | None,
        concurrency: int,
        global_pace: GlobalPace | None = None,
    ) -> None:
        self._door_rate = door_rate
        self._learnt = LearntRate()
        self._slots = anyio.Semaphore(concurrency)
        self._global = global_pace
        self._doors: dict[str, _Door] = {}
        self._ready: list[tuple[int, int, int, str]] = []
        # (-backlog, device_id) as each door's backlog changed; the top may be out of date.
        self._backlogs: list[tuple[int, str]] = []
        self._timers: list[tuple[float, int, int, str]] = []
        self._prepares: list[tuple[float, int, int, str]] = []
        self._prepare: Callable[[Job], Awaitable[None]] | None = None
        self._group: anyio.abc.TaskGroup | None = None
        self._delayed: list[tuple[float, int, Job]] = []
        self._order = itertools.count()
        self._queued = 0
        self._in_flight = 0
        self._changed = anyio.Event()
        self._error: Exception | None = None
        self._closed: set[str] = set()
        self._global_429s = 0  # in a row: the backoff of a global 429 without Retry-After
        self.dropped: list[Job] = []
        self.stats = SchedulerStats()

    @property
    def learnt_door_rate(self) -> Rate | None:
        return self._learnt.rate

    def add(self, job: Job, *, front: bool = False, after: float = 0.0) -> None:
        """Queue a job for its door (at the front: before the door's other jobs; ``after``
        seconds from now, then at the front). A create for a closed door is dropped instead."""
        if after > 0:
            heapq.heappush(self._delayed, (anyio.current_time() + after, next(self._order), job))
            self._queued += 1
            self._changed.set()
            return
        if job.kind == "create" and job.device_id in self._closed:
            self.dropped.append(job)
            self._changed.set()  # it may have been the last job: the dispatcher ends
            return
        door = self._doors.get(job.device_id)
        if door is None:
            door = self._doors[job.device_id] = _Door(
                job.device_id, DoorPace(self._door_rate, self._learnt)
            )
        if front:
            door.jobs.appendleft(job)
        else:
            door.jobs.append(job)
        self._queued += 1
        self._schedule(door, anyio.current_time())

    def _schedule(self, door: _Door, now: float) -> None:
        door.token += 1
        if len(door.jobs) != door.backlog_seen:
            door.backlog_seen = len(door.jobs)
            heapq.heappush(self._backlogs, (-door.backlog_seen, door.device_id))
        ready_at = door.ready_at(now)
        if ready_at <= now:
            # Longest backlog first: the busiest door bounds the whole run.
            entry = (-len(door.jobs), next(self._order), door.token, door.device_id)
            heapq.heappush(self._ready, entry)
        elif ready_at < math.inf:
            heapq.heappush(self._timers, (ready_at, next(self._order), door.token, door.device_id))
            if self._prepare is not None and door.jobs[0].kind == "create":
                prepare_at = ready_at - PREPARE_LEAD
                heapq.heappush(
                    self._prepares, (prepare_at, next(self._order), door.token, door.device_id)
                )
        self._changed.set()

    def stop(self, error: Exception) -> None:
        """Send nothing more: the jobs in flight finish, then ``run`` raises ``error`` (unless
        ``send`` raised first)."""
        self._error = self._error or error
        self._changed.set()

    async def run(
        self,
        send: Callable[[Job], Awaitable[Outcome]],
        prepare: Callable[[Job], Awaitable[None]] | None = None,
    ) -> None:
        """Send every queued job (and every job ``send`` queues again) until none is left.

        ``prepare`` is given a door's next create ``PREPARE_LEAD`` seconds before the door
        may send it (at most once per job), so that work which must precede the send is done
        while the door waits; ``send`` may still not get it (withdrawn, the run stopped).

        An exception from ``send`` or ``prepare`` stops the sending: nothing more is
        dispatched, the jobs in flight finish (so their outcome is known and recorded), then
        the first exception is raised here as itself.
        """
        self._prepare = prepare
        await self._dispatch(send)
        if self._error is not None:
            raise self._error

    async def _dispatch(self, send: Callable[[Job], Awaitable[Outcome]]) -> None:
        async with anyio.create_task_group() as group:
            self._group = group
            while True:
                await self._slots.acquire()
                door = await self._next_ready_door()
                if door is None:
                    self._slots.release()
                    return
                job = door.jobs.popleft()
                self._queued -= 1
                self._in_flight += 1
                now = anyio.current_time()
                if job.kind == "create":
                    door.pace.start(now)
                if job.kind in BLOCKING:
                    door.is_checking = True
                self._schedule(door, now)
                group.start_soon(self._send, send, door, job)

    async def _send(self, send: Callable[[Job], Awaitable[Outcome]], door: _Door, job: Job) -> None:
        now = anyio.current_time()
        if job.kind == "create" and door.pace.ready_at(now, holding=1) > now:
            # A limit was learnt between dispatch and now: give the place back, queue again.
            door.pace.give_back()
            self._free_slot()
            self.add(job, front=True)
            return
        try:
            outcome = await send(job)
        except Exception as exc:
            self._error = self._error or exc
            self._changed.set()
            return
        finally:
            self._free_slot()
            if job.kind in BLOCKING:
                door.is_checking = False
        now = anyio.current_time()
        self.stats.sent += 1
        if job.kind == "create":
            self.stats.creates += 1
            door.pace.finish(outcome.answered_at or now, counted=outcome.counted)
        if outcome.limited == "door":
            self.stats.rate_limited_door += 1
            wait = _bounded(outcome, door.pace.consecutive_429 + 1)
            door.pace.rate_limited(now, wait)
        elif outcome.limited == "global":
            self.stats.rate_limited_global += 1
            self._global_429s += 1
            if self._global is not None:
                self._global.rate_limited(_bounded(outcome, self._global_429s))
        elif self._global is not None:
            self._global_429s = 0
            self._global.answered()
        if outcome.withdraw:
            self._queued -= len(door.remove_creates(outcome.withdraw))
        for after, job_later in outcome.later:
            self.add(job_later, after=after)
        if outcome.close_door:
            self._closed.add(door.device_id)
            closed = door.remove_creates()
            self._queued -= len(closed)
            self.dropped.extend(closed)
        if outcome.again is not None:
            if outcome.again.kind in BLOCKING:
                door.retry_at = now + outcome.after
                door.jobs.appendleft(outcome.again)
                self._queued += 1
            elif outcome.after > 0:
                heapq.heappush(
                    self._delayed, (now + outcome.after, next(self._order), outcome.again)
                )
                self._queued += 1
            else:
                self.add(outcome.again, front=True)
                return
        self._schedule(door, now)

    async def _prepare_job(self, job: Job) -> None:
        assert self._prepare is not None
        try:
            await self._prepare(job)
        except Exception as exc:
            self._error = self._error or exc
            self._changed.set()

    def _free_slot(self) -> None:
        self._slots.release()
        self._in_flight -= 1

    async def _next_ready_door(self) -> _Door | None:
        while self._error is None:
            now = anyio.current_time()
            self._release_due(now)
            held = math.inf
            while self._ready:
                entry = heapq.heappop(self._ready)
                door = self._doors[entry[3]]
                if entry[2] != door.token:
                    continue
                # A limit learnt since the door was queued may hold it back after all.
                if door.ready_at(now) > now:
                    self._schedule(door, now)
                    continue
                held = self._held_until(door, now)
                if held <= now:
                    return door
                # Every door behind it has slack too: all wait for the drip.
                heapq.heappush(self._ready, entry)
                break
            if self._queued == 0 and self._in_flight == 0:
                return None
            wake = min(
                self._timers[0][0] if self._timers else math.inf,
                self._delayed[0][0] if self._delayed else math.inf,
                self._prepares[0][0] if self._prepares else math.inf,
                held,
            )
            self._changed = anyio.Event()
            with anyio.move_on_after(wake - now):
                await self._changed.wait()
        return None

    def _held_until(self, door: _Door, now: float) -> float:
        """When ``door``, ready now, may be dispatched: at once when its backlog bounds the run
        (within one window of the longest), else at the global limiter's drip."""
        if self._global is None:
            return now
        window = (door.pace.rate or SEAM_DOOR_RATE).count
        if len(door.jobs) >= self._longest_backlog() - window:
            return now
        at = self._global.slack_at(now)
        if at <= now:
            self._global.slack_sent(now)
        return at

    def _longest_backlog(self) -> int:
        while self._backlogs:
            backlog, device_id = self._backlogs[0]
            if -backlog == len(self._doors[device_id].jobs):
                return -backlog
            heapq.heappop(self._backlogs)
        return 0

    def _release_due(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            _, _, job = heapq.heappop(self._delayed)
            self._queued -= 1
            self.add(job, front=True)
        while self._timers and self._timers[0][0] <= now:
            _, _, token, device_id = heapq.heappop(self._timers)
            door = self._doors[device_id]
            if token == door.token:
                self._schedule(door, now)
        while self._prepares and self._prepares[0][0] <= now:
            _, _, token, device_id = heapq.heappop(self._prepares)
            door = self._doors[device_id]
            first = door.jobs[0] if door.jobs else None
            if token != door.token or first is None or first.kind != "create":
                continue
            if first is not door.prepared:
                door.prepared = first
                assert self._group is not None
                self._group.start_soon(self._prepare_job, first)


def _bounded(outcome: Outcome, consecutive: int) -> float | None:
    """The pause a 429 starts: its ``Retry-After`` (else the backoff after ``consecutive``
    429s in a row), never longer than ``wait_at_most``; None (the pace's own backoff) when
    there is no bound."""
    if outcome.wait_at_most is None:
        return outcome.retry_after
    wait = outcome.retry_after if outcome.retry_after is not None else backoff(consecutive)
    return min(wait, outcome.wait_at_most)
