"""The HTML report's words: counts as a reader says them, text safe to put in a chart, and the
ledger's PINs kept out of every text the page shows.

    counted       ``1 door``, ``1,204 doors``: the noun agreeing with its count, thousands
                  separated
    number        ``1,204``
    plain         text without the controls that reorder it (bidi overrides and isolates), for
                  the charts and their captions: an SVG label has no ``<bdi>`` to contain them
    scrub_pins    a table's text columns with every PIN the ledger holds replaced
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

import polars as pl

# Unicode's explicit direction controls: embeddings and overrides (U+202A-U+202E), isolates
# (U+2066-U+2069) and the marks (U+200E, U+200F). An override in a door's name reverses the
# digits that follow it, in a caption's count as much as in the name.
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f]")
# What a PIN found in a text becomes (a PIN is 4 to 10 digits: ``ledger.codes``).
PIN_REMOVED = "[PIN removed]"
_DIGITS = re.compile(r"\d+")


def number(value: int) -> str:
    """``value`` with its thousands separated: ``1,204``."""
    return f"{value:,}"


def counted(value: int, noun: str, plural: str | None = None) -> str:
    """``value`` and ``noun`` agreeing with it: ``1 door``, ``2 doors``, ``1,204 doors``
    (``plural``: when it isn't the noun and an s)."""
    return f"{number(value)} {noun if value == 1 else plural or noun + 's'}"


def plain(text: str) -> str:
    """``text`` without bidi controls, for an SVG label, a caption or a description."""
    return BIDI_CONTROLS.sub("", text)


def scrub_pins(frame: pl.DataFrame, pins: Collection[str], columns: Iterable[str]) -> pl.DataFrame:
    """``frame`` with every run of digits in ``columns`` that is one of ``pins`` replaced by
    ``PIN_REMOVED``: text that came from outside (Seam's error messages, names, reasons) may
    carry a PIN, and the page is made to be forwarded. Only whole runs of digits are PINs, so a
    date or a count that merely contains a PIN's digits stays as it is."""

    def scrubbed(text: str) -> str:
        return _DIGITS.sub(lambda run: PIN_REMOVED if run[0] in pins else run[0], text)

    changes = []
    for column in columns:
        if column not in frame.columns:
            continue
        found = {}
        for text in frame[column].drop_nulls().unique():
            if (clean := scrubbed(text)) != text:
                found[text] = clean
        if found:
            changes.append(pl.col(column).replace(found))
    return frame.with_columns(changes) if changes else frame
