"""apply's progress bar: the ETA counts the time doors wait on their rate limit."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from pipeline.cli.progress import ApplyProgress, paced_seconds
from pipeline.common.rates import Rate

PER_MINUTE = Rate(10, 60.0)


@pytest.mark.parametrize(
    ("creates", "rate", "seconds"),
    [
        ({}, PER_MINUTE, 0.0),
        ({"a": 10}, PER_MINUTE, 0.0),  # one window: no wait
        ({"a": 11}, PER_MINUTE, 60.0),  # the 11th waits for the next window
        ({"a": 3, "b": 25}, PER_MINUTE, 120.0),  # the busiest door decides
        ({"a": 25}, None, 0.0),  # no known rate: nothing to count
    ],
)
def test_the_eta_is_never_shorter_than_the_busiest_doors_windows(creates, rate, seconds):
    """A door sends `count` creates per period: n creates take (n - 1) // count periods."""
    assert paced_seconds(creates, rate) == seconds


def test_the_progress_bar_counts_a_doors_wait_instead_of_showing_a_second():
    """11 creates on one door at 10 a minute, 10 done at once: the ETA shows the minute the
    11th waits for, not the one second its speed so far suggests."""
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    with ApplyProgress(console) as progress:
        progress.start(11)
        progress.pace_doors({"door": 11}, PER_MINUTE)
        for _ in range(10):
            progress.advance("created")
        console.file.truncate(0)
        progress.refresh()
    assert re.search(r"0:0(1:00|0:59)", console.file.getvalue())
