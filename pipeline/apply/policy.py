"""How long apply waits, and when it gives up.

A create whose outcome is unknown is not sent again before its settle time has passed and a
look at its door found no code carrying its tag (``CreatePolicy.settle_after``). A run that
makes no progress for ``give_up_after`` (Seam unreachable, only 429s, only unknown outcomes)
stops (``ProgressWatch``), and so does a run whose API key Seam refuses (``key_refused``). No
single wait (a ``Retry-After``, a backoff, a read's wait, a settle time) is longer than what is
left of ``give_up_after`` (``ProgressWatch.remaining``), and a wait cut by it is the run's
last: it gives up after it rather than send again. A run ends by itself when it said it would.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from pipeline.apply.pacing import backoff
from pipeline.common.errors import RunStopped, SeamError
from pipeline.seam.answers import KEY_HINT
from pipeline.seam.answers import KEY_REFUSED_STATUS as KEY_REFUSED_STATUS

# How much earlier than its real send a code's recorded send time may be (seconds); a later
# run adds it to the settle time.
SENT_AT_SLACK = 1.0
# Less than this left before the run gives up (seconds) is none: a timer may end a wait a
# hair early, and a request sent then would have no time for its answer anyway.
_NOTHING_LEFT = 0.01
# A create with an unknown outcome may still be carried out this long after it was sent
# (seconds). Load balancers and gateways commonly give up on a backend after 30-60 s (60 s is
# the usual idle timeout) while the backend goes on; twice that covers a backend that finishes
# at the gateway's limit and a code list that lags behind it by as much again.
SETTLE_AFTER = 120.0


@dataclass(frozen=True)
class CreatePolicy:
    """``settle_after``: how long after an unknown outcome's send the door is looked at before
    the create may be sent again (``--settle-after``); ``give_up_after``: how long the run may
    make no progress (Seam unreachable, only 429s, only unknown outcomes) before it stops
    (``--give-up-after``). A code whose settle time would end later than that is left
    ``sending`` for the next run instead of being waited for."""

    settle_after: float = SETTLE_AFTER
    give_up_after: float = 300.0


class ProgressWatch:
    """Stops the run (RunStopped) once Seam has given no usable answer for ``give_up_after``.

    Progress is a code whose outcome became known: a checked 200, a refusal, a code found on
    its door. (A look that finds nothing is no progress: a backend whose every answer is
    unusable must not keep the run going create after create.) A read that keeps failing
    (429s, 5xx, no connection) is no progress either; its answer, when it comes, ends a stall
    that only reads made. No wait is longer than what is left (``bound``), and a wait cut by
    it is the run's last: once nothing is left, the run gives up instead of sending again
    (``check_before_send``).
    """

    def __init__(self, give_up_after: float) -> None:
        self._give_up_after = give_up_after
        self._stalled_since: float | None = None
        self._connect_failures = 0
        self._by_reads_only = False  # the stall so far is reads' only
        self._last = ""

    def stalled(self, exc: SeamError) -> None:
        """An answer that is no progress (no connection, an unknown outcome, a 429); raises
        RunStopped when there has been none for too long."""
        self.mark_stalled(anyio.current_time())
        self._last = exc.one_line()
        self.check(self._last)

    def mark_stalled(self, at: float) -> None:
        """No progress since ``at``, unless the stall began earlier."""
        if self._stalled_since is None:
            self._stalled_since = at
        self._by_reads_only = False

    def read_failed(self, exc: SeamError) -> None:
        """A read got no usable answer (its client tries it again): no progress since now,
        unless the stall began earlier."""
        if self._stalled_since is None:
            self._stalled_since = anyio.current_time()
            self._by_reads_only = True
        self._last = exc.one_line()

    def read_answered(self) -> None:
        """A read got its answer: a stall that only failing reads made is over."""
        if self._by_reads_only:
            self._stalled_since, self._by_reads_only = None, False

    def check(self, last: str) -> None:
        """Raises RunStopped when the stall has lasted past ``give_up_after`` (``last``: the
        last answer, for the message)."""
        if self._stalled_since is None:
            return
        stalled = anyio.current_time() - self._stalled_since
        # Reached, not only passed: waits end when it is reached (``remaining``).
        if stalled >= self._give_up_after:
            raise self._stop(stalled, last)

    def check_before_send(self) -> None:
        """Raises RunStopped instead of a request sent again once nothing is left before the
        run gives up (a wait cut to what was left has just ended)."""
        if self._stalled_since is not None and self.remaining() <= _NOTHING_LEFT:
            raise self._stop(anyio.current_time() - self._stalled_since, self._last)

    def _stop(self, stalled: float, last: str) -> RunStopped:
        return RunStopped(
            f"Seam has given no usable answer for {stalled:.0f} s (last: {last})",
            hint="check the network and SEAM_ENDPOINT, then rerun: nothing done is lost",
        )

    def progressed(self) -> None:
        """A code's outcome became known: the stall, and the backoff, start over."""
        self._stalled_since = None
        self._connect_failures = 0
        self._by_reads_only = False

    def remaining(self) -> float:
        """Seconds left before the run gives up (all of ``give_up_after`` while it isn't
        stalled): the longest any one wait may be."""
        if self._stalled_since is None:
            return self._give_up_after
        return max(0.0, self._give_up_after - (anyio.current_time() - self._stalled_since))

    def bound(self, wait: float) -> float:
        """``wait``, or what is left before the run gives up when that is less (then the run
        gives up after it: ``check_before_send``)."""
        return min(wait, self.remaining())

    def retry_wait(self) -> float:
        """Seconds to wait before trying again a request that got no answer: backs off with each
        one in a row, never past what is left before the run gives up."""
        self._connect_failures += 1
        return self.bound(backoff(self._connect_failures))


def key_refused(exc: SeamError) -> RunStopped:
    """The run can't go on: the endpoint answered 401/403 (the key is wrong, revoked or lacks
    rights; or, without Seam's error body, the endpoint may not be Seam's API)."""
    return RunStopped(f"Seam refused the API key: {exc.what()}", hint=exc.hint or KEY_HINT)
