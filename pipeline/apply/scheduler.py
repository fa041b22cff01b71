"""Scheduling requests: a queue per door, per-door pacing, a global limiter and a concurrency cap.

Seam allows 10 access-code creations per minute on each door (API notes, "Rate limits"), so a
batch is bounded by its busiest door, not by how fast we can send. The scheduler therefore
always sends the next request from a door that may send *now*, preferring the door with the
longest backlog; a door that must wait holds nothing (no task, no concurrency slot), so one
door's backlog never delays another.

A create occupies a place in its door's window from when it is sent until one period after its
answer arrived: Seam counts it at some moment between the two, so the door's limit holds
whatever the latency. A 429 pauses the limit it names (the door's or the global one) for
``Retry-After`` (or an exponential backoff with jitter without one) and slows it.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import re
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import anyio
from aiolimiter import AsyncLimiter

from pipeline.errors import UsageError

# The server counts a request when it arrives; pacing slightly under the configured global rate
# keeps the jitter between sending and arriving from ever pushing one over.
GLOBAL_PACE_MARGIN = 0.98
# At most this many requests at once past the global limiter (a door's burst, as Seam's is 10).
GLOBAL_BURST = 10
BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0
Scope = Literal["door", "global"]
# Jobs while which their door sends nothing else: what they find decides what it sends.
BLOCKING = frozenset({"look", "check"})


@dataclass(frozen=True)
class Rate:
    """``count`` events per ``period`` seconds."""

    count: int
    period: float

    @classmethod
    def parse(cls, text: str) -> Rate | None:
        """``10/60s`` → Rate(10, 60.0); ``off`` → None (unknown: learnt from 429s)."""
        if text.strip().lower() in {"off", "none", "unknown"}:
            return None
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*s?\s*", text, re.IGNORECASE)
        if not match or int(match[1]) < 1 or float(match[2]) <= 0:
            raise UsageError(
                f"rate {text!r} is not COUNT/SECONDS", hint="write e.g. 10/60s, or off"
            )
        return cls(int(match[1]), float(match[2]))


# Seam's documented limit: 10 access-code creations per minute per device (API notes).
SEAM_DOOR_RATE = Rate(10, 60.0)


def backoff(consecutive: int) -> float:
    """Seconds to wait after the n-th 429 in a row that came without ``Retry-After``."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, consecutive - 1))
    return random.uniform(ceiling / 2, ceiling)


@dataclass
class LearntRate:
    """The per-door limit, when it wasn't configured: learnt from the first door 429 and shared
    by every door (Seam's limit is the same for all devices). Later 429s lower it only when the
    create was sent under the learnt limit; ones already in flight when it was learnt say
    nothing new."""

    rate: Rate | None = None

    def learn(self, accepted: int, period: float, sent_under: Rate | None) -> None:
        if self.rate is None:
            self.rate = Rate(max(1, accepted), period)
        elif sent_under is self.rate:
            # Still too fast: one create fewer per window, down to one.
            if self.rate.count > 1:
                self.rate = Rate(self.rate.count - 1, self.rate.period)
            else:
                self.rate = Rate(1, self.rate.period * 1.5)


@dataclass
class DoorPace:
    """One door's creates over time; ``ready_at`` says when the next one may be sent."""

    configured: Rate | None
    learnt: LearntRate
    in_flight: int = 0
    answered: deque[float] = field(default_factory=deque)
    first_sent: float | None = None
    accepted: int = 0
    blocked_until: float = 0.0
    consecutive_429: int = 0
    sent_under: Rate | None = None

    @property
    def rate(self) -> Rate | None:
        return self.configured or self.learnt.rate

    def ready_at(self, now: float, *, holding: int = 0) -> float:
        """When the next create may be sent; ``holding``: creates already counted in flight
        that are the caller's own (not counted against it)."""
        rate = self.rate
        in_flight = self.in_flight - holding
        if rate is None:
            # Limit unknown: one create at a time until a 429 teaches it.
            return max(now, self.blocked_until) if in_flight == 0 else math.inf
        while self.answered and self.answered[0] <= now - rate.period:
            self.answered.popleft()
        excess = in_flight + len(self.answered) - rate.count
        if excess < 0:
            return max(now, self.blocked_until)
        if excess >= len(self.answered):
            return math.inf  # every place is taken by a create still waiting for its answer
        return max(self.answered[excess] + rate.period, self.blocked_until)

    def start(self, now: float) -> None:
        self.in_flight += 1
        self.sent_under = self.learnt.rate
        if self.first_sent is None:
            self.first_sent = now

    def give_back(self) -> None:
        """A create that was started but not sent after all."""
        self.in_flight -= 1

    def finish(self, now: float, *, counted: bool) -> None:
        self.in_flight -= 1
        if counted:
            self.answered.append(now)
            self.accepted += 1
            self.consecutive_429 = 0

    def rate_limited(self, now: float, retry_after: float | None) -> None:
        self.consecutive_429 += 1
        wait = retry_after if retry_after is not None else backoff(self.consecutive_429)
        self.blocked_until = max(self.blocked_until, now + wait)
        if self.configured is None and self.first_sent is not None:
            self.learnt.learn(self.accepted, now + wait - self.first_sent, self.sent_under)


class GlobalPace:
    """Every request to Seam passes here (the client's ``pace`` hook): an ``aiolimiter`` limiter
    when a global rate is known, and a pause for everyone after a global 429."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._limiter = self._make_limiter(rate)
        self._blocked_until = 0.0
        self._consecutive_429 = 0
        self._recent: deque[float] = deque()

    @staticmethod
    def _make_limiter(rate: float | None) -> AsyncLimiter | None:
        """A leaky bucket that never exceeds ``rate`` in any one-second window: a burst of
        ``b`` plus a drip of ``r`` per second with ``b + r`` under the rate. (A bucket as deep
        as the rate would allow twice the rate in a window, and a sliding-window limit would
        answer 429.) A small burst lets a door's window open all at once."""
        if not rate:
            return None
        burst = min(GLOBAL_BURST, math.floor(rate / 10))
        if burst <= 1:
            return AsyncLimiter(1, 1 / (rate * GLOBAL_PACE_MARGIN))
        drip = (rate - burst) * GLOBAL_PACE_MARGIN
        return AsyncLimiter(burst, burst / drip)

    async def __call__(self) -> None:
        # A 429 may extend the pause while we sleep, so look again after each wait.
        while (now := anyio.current_time()) < self._blocked_until:  # noqa: ASYNC110
            await anyio.sleep(self._blocked_until - now)
        if self._limiter is not None:
            await self._limiter.acquire()
        now = anyio.current_time()
        self._recent.append(now)
        while self._recent[0] <= now - 1.0:
            self._recent.popleft()

    def answered(self) -> None:
        self._consecutive_429 = 0

    def rate_limited(self, retry_after: float | None) -> None:
        """A global 429: pause everyone, and send slower than we just did from now on."""
        now = anyio.current_time()
        self._consecutive_429 += 1
        wait = retry_after if retry_after is not None else backoff(self._consecutive_429)
        self._blocked_until = max(self._blocked_until, now + wait)
        observed = float(len(self._recent))
        slower = max(1.0, 0.9 * min(observed, self.rate or math.inf))
        if self.rate is None or slower < self.rate:
            self.rate = slower
            self._limiter = self._make_limiter(slower)


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
    ``limited``: a 429 naming the door's or the global limit, with its ``retry_after``.
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
        self._timers: list[tuple[float, int, int, str]] = []
        self._delayed: list[tuple[float, int, Job]] = []
        self._order = itertools.count()
        self._queued = 0
        self._in_flight = 0
        self._changed = anyio.Event()
        self._error: Exception | None = None
        self._closed: set[str] = set()
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
        ready_at = door.ready_at(now)
        if ready_at <= now:
            # Longest backlog first: the busiest door bounds the whole run.
            entry = (-len(door.jobs), next(self._order), door.token, door.device_id)
            heapq.heappush(self._ready, entry)
        elif ready_at < math.inf:
            heapq.heappush(self._timers, (ready_at, next(self._order), door.token, door.device_id))
        self._changed.set()

    def stop(self, error: Exception) -> None:
        """Send nothing more: the jobs in flight finish, then ``run`` raises ``error`` (unless
        ``send`` raised first)."""
        self._error = self._error or error
        self._changed.set()

    async def run(self, send: Callable[[Job], Awaitable[Outcome]]) -> None:
        """Send every queued job (and every job ``send`` queues again) until none is left.

        An exception from ``send`` stops the sending: nothing more is dispatched, the jobs in
        flight finish (so their outcome is known and recorded), then the first exception is
        raised here as itself.
        """
        await self._dispatch(send)
        if self._error is not None:
            raise self._error

    async def _dispatch(self, send: Callable[[Job], Awaitable[Outcome]]) -> None:
        async with anyio.create_task_group() as group:
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
            door.pace.rate_limited(now, outcome.retry_after)
        elif outcome.limited == "global":
            self.stats.rate_limited_global += 1
            if self._global is not None:
                self._global.rate_limited(outcome.retry_after)
        elif self._global is not None:
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

    def _free_slot(self) -> None:
        self._slots.release()
        self._in_flight -= 1

    async def _next_ready_door(self) -> _Door | None:
        while self._error is None:
            now = anyio.current_time()
            self._release_due(now)
            while self._ready:
                _, _, token, device_id = heapq.heappop(self._ready)
                door = self._doors[device_id]
                if token != door.token:
                    continue
                # A limit learnt since the door was queued may hold it back after all.
                if door.ready_at(now) <= now:
                    return door
                self._schedule(door, now)
            if self._queued == 0 and self._in_flight == 0:
                return None
            wake = min(
                self._timers[0][0] if self._timers else math.inf,
                self._delayed[0][0] if self._delayed else math.inf,
            )
            self._changed = anyio.Event()
            with anyio.move_on_after(wake - now):
                await self._changed.wait()
        return None

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
