"""Naming codes: each planned row's idempotency tag, and the code name that carries it.

The tag is how apply finds a code on its door (Seam has no idempotency key): it is in every
code's name, and it never changes for one reservation, door and window.
"""

from __future__ import annotations

import string

import polars as pl
from polars_hash import NonCryptographicHashingNameSpace

from pipeline.common.reasons import text
from pipeline.common.tags import TAG_PREFIX


def name_codes(frame: pl.DataFrame, template: str) -> pl.DataFrame:
    """Add ``idempotency_tag`` and ``name`` (from ``template``) to the planned rows of
    ``frame`` (null on the others); ``frame`` already has its ``outcome``."""
    frame = frame.with_columns(idempotency_tag=_tag())
    frame = frame.with_columns(name=_render_name(template))
    return frame.with_columns(_fold_blanks(frame["name"]))


def _planned_only() -> pl.Expr:
    """An empty string on planned rows, null on the others: appended to a ``concat_str``, it
    leaves planned rows as they are and nulls the rest, without a second pass over the strings
    (a ``when/then`` around them copies every string again)."""
    return pl.when(pl.col("outcome") == "planned").then(text(""))


def _tag() -> pl.Expr:
    """Idempotency tag: ``opl-`` and XXH3-64 of reservation id, door and window, in decimal.

    Polars' own ``hash`` is documented as unstable across versions, and a tag must stay the
    same for as long as the code exists (apply finds existing codes by it), so this is XXH3,
    a fixed, specified algorithm, computed column-wise by polars-hash. 64 bits make an
    accidental collision among one door's codes vanishingly unlikely.
    """
    key = pl.concat_str("reservation_id", "device_id", "starts_at", "ends_at", separator="\x1f")
    digest = NonCryptographicHashingNameSpace(key).xxh3_64().cast(pl.String).str.zfill(20)
    return pl.concat_str(text(TAG_PREFIX), digest, _planned_only())


def _render_name(template: str) -> pl.Expr:
    """The code name from the template (validated in settings to contain ``{tag}``), before
    ``_fold_blanks``; null unless planned."""
    fields = {
        "tag": pl.col("idempotency_tag"),
        "reservation_id": pl.col("reservation_id"),
        "guest_name": pl.col("guest_name"),
        "door_name": pl.col("door_name"),
        "site_name": pl.col("site_name"),
        "user_level_name": pl.col("user_level_name"),
    }
    pieces: list[pl.Expr] = []
    for literal, field, _, _ in string.Formatter().parse(template):
        if literal:
            pieces.append(text(literal))
        if field is not None:
            pieces.append(fields[field].fill_null(""))
    return pl.concat_str([*pieces, _planned_only()])


def _fold_blanks(names: pl.Series) -> pl.Series:
    """Blank fields leave their surrounding spaces behind, control characters become spaces:
    fold doubled spaces (twice) and trim.

    Only the names that hold a doubled space are folded, then put back in place; usually every
    field is filled and none is. (Two literal passes, as a regex costs far more.)
    """
    # A control character (a NUL, a line break) in any field would reach the lock's display
    # and Seam: each becomes a space, folded with the rest.
    controlled = names.str.contains(r"\p{Cc}").fill_null(False)
    if controlled.any():
        names = names.scatter(
            controlled.arg_true(), names.filter(controlled).str.replace_all(r"\p{Cc}+", " ")
        )
    doubled = names.str.contains("  ", literal=True).fill_null(False)
    positions = doubled.arg_true()
    if positions.len():
        folded = names.filter(doubled)
        for _ in range(2):
            folded = folded.str.replace_all("  ", " ", literal=True)
        names = names.scatter(positions, folded)
    return names.str.strip_chars()
