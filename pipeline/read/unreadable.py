"""Bytes a file's encoding couldn't read, which decoding turned into U+FFFD (``�``).

Such text must never become a code's name (which can never change), nor find a door or a
level, nor decide whether ``[input.skip]`` excludes a row. So a row holding one in a column a
name, a door or a level is made of (``NAME_COLUMNS``), or in a skip column, is marked here
(``UNREADABLE_COLUMN``: the column, its value, the line and the fix), and planning rejects it
(``invalid_row``); the file's other rows go on. One warning line names the lines.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import polars as pl

from pipeline.read.mojibake import NAME_COLUMNS

log = logging.getLogger(__name__)

REPLACEMENT_CHARACTER = "\ufffd"
# The read stage's column: why the row's text can't be trusted, or null.
UNREADABLE_COLUMN = "unreadable_because"
# The read stage's working column: the first skip column whose value holds one, as
# ``Status 'Annul�'``, or null.
UNREADABLE_SKIP = "_unreadable_skip"
# How many lines the warning names before it says "and N more".
_LINES_SHOWN = 10


def _holds_one(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.String).str.contains(REPLACEMENT_CHARACTER, literal=True)


def unreadable_skip(skips: Iterable[str]) -> pl.Expr:
    """The UNREADABLE_SKIP expression over the file's skip columns ``skips`` (as read)."""
    found = [
        pl.when(_holds_one(header)).then(pl.format(f"{header} '{{}}'", pl.col(header)))
        for header in skips
    ]
    return pl.coalesce(pl.lit(None, pl.String), *found).alias(UNREADABLE_SKIP)


def mark_unreadable(
    table: pl.DataFrame, source: str, section: str, skip_section: str
) -> pl.DataFrame:
    """``table`` (the canonical columns, UNREADABLE_SKIP and ``source_line``) with
    UNREADABLE_COLUMN in place of UNREADABLE_SKIP; logs one warning naming the lines of the
    rows marked (``source`` names the file, ``section`` and ``skip_section`` its settings)."""
    fix = f": set {section} encoding to the file's own, or mend that line"
    reasons = [
        pl.when(_holds_one(name)).then(
            pl.format(
                f"{name} '{{}}' holds a byte the file's encoding can't read (line {{}}){fix}",
                pl.col(name),
                pl.col("source_line"),
            )
        )
        for name in NAME_COLUMNS
    ]
    skip = pl.when(pl.col(UNREADABLE_SKIP).is_not_null()).then(
        pl.format(
            f"{{}} holds a byte the file's encoding can't read (line {{}}), so {skip_section}"
            f" can't tell whether to skip the row{fix}",
            pl.col(UNREADABLE_SKIP),
            pl.col("source_line"),
        )
    )
    table = table.with_columns(pl.coalesce(*reasons, skip).alias(UNREADABLE_COLUMN))
    _warn(table, source, section)
    return table.drop(UNREADABLE_SKIP)


def _warn(table: pl.DataFrame, source: str, section: str) -> None:
    """A warning naming the lines whose values hold U+FFFD (those marked, and a date)."""
    hit = pl.any_horizontal(
        pl.col(UNREADABLE_COLUMN).is_not_null(),
        *(_holds_one(name) for name in ("check_in", "check_out")),
    )
    lines = table.filter(hit)["source_line"]
    if lines.len() == 0:
        return
    shown = ", ".join(str(line) for line in lines.head(_LINES_SHOWN))
    more = f" and {lines.len() - _LINES_SHOWN} more" if lines.len() > _LINES_SHOWN else ""
    log.warning(
        "%s: line(s) %s%s hold a replacement character (\N{REPLACEMENT CHARACTER}): bytes the"
        " encoding can't read; those rows are not planned; set %s encoding to the file's"
        " encoding",
        source,
        shown,
        more,
        section,
    )
