"""Instants as the ledger, Seam and the options write them: ISO 8601 with an offset or ``Z``.

A time without its offset would be the machine's zone's, so it is never an instant here.
"""

from __future__ import annotations

import datetime as dt


def parse_instant(text: str) -> dt.datetime:
    """``text`` (``2027-03-12T15:00:00Z``, ``...+01:00``) as an aware datetime; ValueError
    for anything else, a time without its offset included."""
    instant = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if instant.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return instant


def as_instant(text: object) -> dt.datetime | None:
    """``parse_instant`` of ``text``, or None when it is none, not text or not an instant."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return parse_instant(text)
    except ValueError:
        return None
