"""Pacing: how fast requests may go to Seam, per door and overall, and how long a 429 pauses.

Seam allows 10 access-code creations per minute on each door (API notes, "Rate limits"). A
create occupies a place in its door's window from when it is sent until one period after its
answer arrived: Seam counts it at some moment between the two, so the door's limit holds
whatever the latency. A 429 pauses the limit it names (the door's or the global one) for
``Retry-After`` (or an exponential backoff with jitter without one) and slows it. A door
whose limit isn't configured learns it from its first 429 (``LearntRate``).
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

import anyio
from aiolimiter import AsyncLimiter

from pipeline.common.rates import Rate

# The server counts a request when it arrives; pacing slightly under the configured global rate
# keeps the jitter between sending and arriving from ever pushing one over.
GLOBAL_PACE_MARGIN = 0.98
# At most this many requests at once past the global limiter (a door's burst, as Seam's is 10).
GLOBAL_BURST = 10
# The part of the global limiter's burst that doors with slack may fill; the rest is kept for
# the doors that bound the run. Three rather than one, so that a token taken a little after its
# dispatch doesn't make the next slack request miss its turn (``GlobalPace.slack_at``).
SLACK_SHARE = 3
BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0
# Which limit a 429 names: the door's or the global one.
Scope = Literal["door", "global"]


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
    when a global rate is known, and a pause for everyone after a global 429.

    The limiter's burst is kept for the doors that bound the run. A request from a door with
    slack (the scheduler says which) is dispatched only while one more token leaves the limiter
    holding at most ``SLACK_SHARE``, and at most one per drip interval (``slack_at``): when the
    global limit binds, such doors still get about the drip, and a busiest door whose window
    opens finds tokens free instead of queueing behind theirs at every window.
    """

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._limiter = self._make_limiter(rate)
        self._blocked_until = 0.0
        self._consecutive_429 = 0
        self._recent: deque[float] = deque()
        # The next slack turn; None until the first slack request is dispatched.
        self._slack_next: float | None = None

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

    def slack_at(self, now: float) -> float:
        """When a request from a door with slack may be dispatched (``now``: at once): not
        during a global 429's pause; with a limiter whose burst is over ``SLACK_SHARE``, one
        drip interval after the last such request (``slack_sent``) and while one more token
        leaves the limiter holding at most ``SLACK_SHARE``."""
        if now < self._blocked_until:
            return self._blocked_until
        kept = self._kept()
        if self._limiter is None or kept == 0:
            return now
        if self._slack_next is not None and now < self._slack_next:
            return self._slack_next
        if self._limiter.has_capacity(1 + kept):
            return now
        # The limiter doesn't say when it drains: look again a quarter interval on.
        return now + self._interval() / 4

    def slack_sent(self, now: float) -> None:
        """A request from a door with slack was dispatched at ``now``: the next turn is one
        drip interval later. The first turn ever counts from ``now``; later ones count from
        the turn this request took, so a wake-up late by less than an interval doesn't push
        every later turn back. One late by more (the limiter was busy with the busiest doors)
        makes the next turn due at once: at most one turn is made up, never a burst."""
        if self._limiter is not None and self._kept():
            interval = self._interval()
            turn = now if self._slack_next is None else max(self._slack_next, now - interval)
            self._slack_next = turn + interval

    def _interval(self) -> float:
        assert self._limiter is not None
        return self._limiter.time_period / self._limiter.max_rate

    def _kept(self) -> int:
        """How much of the limiter's burst doors with slack leave free (0: none held back)."""
        if self._limiter is None:
            return 0
        return max(0, math.floor(self._limiter.max_rate) - SLACK_SHARE)

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
