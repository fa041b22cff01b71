"""Names as an operator writes them and as they are matched: doors, sites, user levels,
headers, each compared case- and space-insensitively, and the closest names to suggest when one
matches nothing (read, catalog, plan and budget all say "did you mean")."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import polars as pl

# difflib's own default: "Room 1O1" finds "Room 101", "Unit 101" doesn't find it.
CLOSENESS = 0.6
SUGGESTIONS = 3
# How much less close than the closest a suggestion may be.
NEAR = 0.1


def name_key(text: str | None) -> str | None:
    """The case- and space-insensitive key names are matched by (doors, sites, levels, headers).

    Keep in step with ``name_key_expr``: ``str.lower``, not ``casefold``, because Polars'
    ``to_lowercase`` keeps "ß" as it is.
    """
    return " ".join(text.split()).lower() if text else None


def name_key_expr(expr: pl.Expr) -> pl.Expr:
    """``name_key`` for a column of names."""
    return expr.str.replace_all(r"\s+", " ").str.strip_chars().str.to_lowercase()


def closest_names(value: str, choices: Iterable[str | None]) -> list[str]:
    """Up to three of ``choices`` closest to ``value``, compared as names are matched (case-
    and space-insensitive), closest first, each as written in the catalog. Only those about as
    close as the closest are kept: "Room 1O1" suggests "Room 101", not every room."""
    by_key: dict[str, str] = {}
    for choice in choices:
        key = name_key(choice)
        if key is not None and choice is not None:
            by_key.setdefault(key, choice)
    wanted = name_key(value) or ""
    close = difflib.get_close_matches(wanted, by_key, n=SUGGESTIONS, cutoff=CLOSENESS)
    scores = [difflib.SequenceMatcher(None, wanted, key).ratio() for key in close]
    return [
        by_key[key] for key, score in zip(close, scores, strict=True) if score >= scores[0] - NEAR
    ]


def did_you_mean(
    value: str, choices: Iterable[str | None], what: str = "", form: str = "; {}"
) -> str:
    """``did you mean "A" or "B"?`` for the closest ``choices`` (``what`` before each, e.g.
    ``site``), put into ``form`` (default ``; {}``); "" when none is close."""
    names = [f'{what} "{name}"'.lstrip() for name in closest_names(value, choices)]
    if not names:
        return ""
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return form.format(f"did you mean {listed}?")
