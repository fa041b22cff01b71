"""A rate: ``count`` events per ``period`` seconds, as ``--door-rate`` writes it (``10/60s``).

One type for apply's pacing, the sandbox's limits and the options that set both. A named
tuple, so a rate unpacks as ``count, period`` where a sliding window wants the two numbers.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from pipeline.common.errors import UsageError

# The words of ``--door-rate`` for "no configured limit" (apply learns it from 429s).
RATE_OFF = frozenset({"off", "none", "unknown"})


class Rate(NamedTuple):
    """``count`` events per ``period`` seconds."""

    # The field hides tuple's count() method, which nothing here calls.
    count: int  # type: ignore[assignment]
    period: float

    @classmethod
    def parse(cls, text: str) -> Rate | None:
        """``--door-rate`` for apply and the sandbox alike: ``COUNT/SECONDS`` (``10/60s``; the
        ``s`` optional, spaces allowed) is ``Rate(10, 60.0)``; ``off`` is None (no limit
        configured: apply learns it from 429s).

        Raises UsageError (exit 2) for anything else, a count under 1 or a period of 0 included.
        """
        if text.strip().lower() in RATE_OFF:
            return None
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*s?\s*", text, re.IGNORECASE)
        if not match or int(match[1]) < 1 or float(match[2]) <= 0:
            raise UsageError(
                f"rate {text!r} is not COUNT/SECONDS", hint="write e.g. 10/60s, or off"
            )
        return cls(int(match[1]), float(match[2]))


def parse_rate(text: str) -> Rate | None:
    """``Rate.parse``: the one ``--door-rate`` syntax."""
    return Rate.parse(text)


def rate_text(rate: Rate | None) -> str:
    """The ``--door-rate`` text of ``rate``, as ``Rate.parse`` reads it (``10/60s``, ``off``)."""
    return "off" if rate is None else f"{rate.count}/{rate.period:g}s"


# Seam's documented limit: 10 access-code creations per minute per device (API notes).
SEAM_DOOR_RATE = Rate(10, 60.0)
