"""``[input.skip]``: rows whose column holds one of the listed values (cancelled bookings,
no-shows) are marked here, and planning skips them with the reason ``excluded``.

A key names a header of the file, matched as ``[columns]`` keys are (case and spacing
aside), or else the pipeline column a header was renamed to. Values compare trimmed and
case-insensitively. A key that matches no header gets one warning line per file: a misspelt
key must not let cancelled bookings through silently.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import polars as pl

from pipeline.common.names import name_key

log = logging.getLogger(__name__)

# The read stage's marker column: null, or why the row is excluded ("Status is Cancelled").
EXCLUDED_COLUMN = "excluded_because"


def skip_columns(
    skip: Mapping[str, Sequence[str]],
    renamed: Mapping[str, str | None],
    source: str,
    section: str,
) -> dict[str, list[str]]:
    """The file's header for each ``skip`` key (written in ``section``) that matches one, with
    its values.

    ``renamed`` maps each header to its pipeline column (or None); warns for a key that
    matches no header.
    """
    by_key = {name_key(header.strip().lstrip("\ufeff")): header for header in renamed}
    by_target = {target: header for header, target in renamed.items() if target is not None}
    found: dict[str, list[str]] = {}
    for key, values in skip.items():
        header = by_key.get(name_key(key)) or by_target.get(key.strip().lower())
        if header is None:
            log.warning(
                "%s: %s column %r matches no header (its headers: %s); no row is excluded by it",
                source,
                section,
                key,
                ", ".join(renamed),
            )
            continue
        found.setdefault(header, []).extend(values)
    return found


def mark_excluded(columns: Mapping[str, Sequence[str]], section: str) -> pl.Expr:
    """The EXCLUDED_COLUMN expression over the skip ``columns`` (header -> values, written in
    ``section``): the first column whose trimmed value equals one of its values, ignoring
    case, names it."""
    reasons = [
        pl.when(
            pl.col(header)
            .str.strip_chars()
            .str.to_lowercase()
            .is_in([value.strip().lower() for value in values])
        ).then(
            pl.concat_str(
                pl.lit(f"{header} is "), pl.col(header).str.strip_chars(), pl.lit(f" ({section})")
            )
        )
        for header, values in columns.items()
    ]
    if not reasons:
        return pl.lit(None, pl.String).alias(EXCLUDED_COLUMN)
    return pl.coalesce(reasons).cast(pl.String).alias(EXCLUDED_COLUMN)
