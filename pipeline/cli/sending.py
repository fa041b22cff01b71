"""What apply's summary says of its sending: creates sent, and what became of them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.apply.run import ApplyResult


def sending_line(result: ApplyResult) -> str:
    """Creates sent, then apart: those that made a code, those a rate limit refused (429s,
    queued again), the rest (refused by Seam for another reason, or whose answer was lost);
    then the requests sent in all. A run whose every create met a 429 says it made none."""
    stats = result.stats
    made = int((result.results["outcome"] == "created").sum())
    limited = stats.rate_limited_door + stats.rate_limited_global
    other = max(0, stats.creates - made - limited)
    per_code = result.requests_per_new_code
    return (
        f"{stats.creates} creates sent in {result.seconds:.1f} s: {made} made a code,"
        f" {limited} refused by a rate limit (429: {stats.rate_limited_door} door,"
        f" {stats.rate_limited_global} global), {other} refused otherwise or unanswered;"
        f" {result.requests} requests to Seam"
        + (f" ({per_code:.2f} per new code)" if per_code is not None else "")
    )
