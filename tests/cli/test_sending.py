"""apply's summary line on its sending: what was sent, made and refused, said apart."""

from __future__ import annotations

import polars as pl

from pipeline.apply.run import ApplyResult
from pipeline.apply.scheduler import SchedulerStats
from pipeline.cli.sending import sending_line


def result(outcomes: list[str], stats: SchedulerStats, requests: int) -> ApplyResult:
    return ApplyResult(
        results=pl.DataFrame({"outcome": outcomes}, schema={"outcome": pl.String}),
        run_id="run-1",
        stats=stats,
        seconds=1.84,
        requests=requests,
    )


def test_a_run_whose_every_create_met_a_429_says_it_made_no_code():
    """17 creates all refused by the door's limit: 0 made a code, 17 refused, said apart."""
    line = sending_line(
        result(["failed"] * 17, SchedulerStats(creates=17, rate_limited_door=17), 21)
    )
    assert line == (
        "17 creates sent in 1.8 s: 0 made a code, 17 refused by a rate limit (429: 17 door,"
        " 0 global), 0 refused otherwise or unanswered; 21 requests to Seam"
    )


def test_made_refused_and_unanswered_add_up_to_the_creates_sent():
    """12 creates: 8 made a code, 3 met a 429 (2 door, 1 global), 1 refused or lost."""
    outcomes = ["created"] * 8 + ["failed", "already_created"]
    stats = SchedulerStats(creates=12, rate_limited_door=2, rate_limited_global=1)
    assert sending_line(result(outcomes, stats, 20)) == (
        "12 creates sent in 1.8 s: 8 made a code, 3 refused by a rate limit (429: 2 door,"
        " 1 global), 1 refused otherwise or unanswered; 20 requests to Seam (2.50 per new code)"
    )
