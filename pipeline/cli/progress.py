"""apply's progress bar on the terminal: codes done of the total, the rate, 429s, and an ETA
that counts the time doors must wait on their rate limit."""

from __future__ import annotations

import math
from collections.abc import Mapping

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from pipeline.common.rates import Rate


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.completed / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:.1f} codes/s  429s: {task.fields.get('rate_limited', 0)}")


class _PacedTimeRemainingColumn(TimeRemainingColumn):
    """The ETA, never earlier than the busiest door's rate limit allows: codes done so far
    say nothing of a door's next window (ten creates in a second, then a 60 s wait)."""

    def render(self, task: Task) -> Text:
        paced_until = task.fields.get("paced_until")
        if paced_until is not None and not task.finished:
            left = paced_until - task.get_time()
            if left > (task.time_remaining or 0.0):
                minutes, seconds = divmod(math.ceil(left), 60)
                hours, minutes = divmod(minutes, 60)
                return Text(f"{hours}:{minutes:02d}:{seconds:02d}", style="progress.remaining")
        return super().render(task)


def paced_seconds(creates_per_door: Mapping[str, int], rate: Rate | None) -> float:
    """The least time the doors' creates take under ``rate`` (a door sends ``rate.count``
    creates per ``rate.period``): the busiest door's full windows after its first; 0 without
    a known rate."""
    if rate is None or not creates_per_door:
        return 0.0
    busiest = max(creates_per_door.values())
    return max(0, (busiest - 1) // rate.count) * rate.period


class ApplyProgress:
    """Codes done/total, rate, 429s and ETA on stderr, drawn only when stderr is a terminal.
    The ETA counts the time doors must wait on their rate limit (``pace_doors``)."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("creating codes"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            _PacedTimeRemainingColumn(),
            console=console,
            disable=not console.is_terminal,
            transient=False,
        )
        self._task = self._progress.add_task("codes", total=None, rate_limited=0, start=False)
        self._rate_limited = 0

    def __enter__(self) -> ApplyProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()

    def start(self, total: int) -> None:
        self._progress.update(self._task, total=total)
        self._progress.start_task(self._task)

    def pace_doors(self, creates_per_door: Mapping[str, int], rate: Rate | None) -> None:
        """The creates each door has to send and the door rate: the ETA is never shorter than
        the busiest door's wait for its windows (``paced_seconds``) from now."""
        paced = paced_seconds(creates_per_door, rate)
        self._progress.update(self._task, paced_until=self._progress.get_time() + paced)

    def refresh(self) -> None:
        """Draw the bar now (it otherwise redraws on its own beat)."""
        self._progress.refresh()

    def advance(self, event: str) -> None:
        """``created``/``failed`` finish a code; ``rate_limited``/``unknown`` don't."""
        if event == "rate_limited":
            self._rate_limited += 1
            self._progress.update(self._task, rate_limited=self._rate_limited)
        elif event in {"created", "failed"}:
            self._progress.advance(self._task)
