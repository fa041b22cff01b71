"""Mojibake: UTF-8 text read as cp1252 or latin-1, ``Jürgen`` become ``JÃ¼rgen``.

A code's name can never be changed on the lock once made, so a file whose names read so is
refused (exit 2) with one line naming the line, the value and what it should read; the text
of a used column (or an ``[input.skip]`` one) is what is looked at, never a column we drop.

What is looked for is the trace UTF-8 leaves: a lead byte read as one character (``Ã``, ``Ä``,
``â``, ``ð`` ...) followed by the one to three continuation bytes it needs, each read as the
character cp1252 or latin-1 gives it (``¼``, ``©``, ``€``, ``™`` ...). Legitimate text seldom
holds such a pair: ``São`` or ``SÃO`` are a letter and a letter, never a letter and one of
those symbols. The leads whose pairs would be IPA letters, spacing modifiers or the rare
Latin Extended-B (``É”`` is ``"CAFÉ”"``, not ``ɔ``) are left out. That search, over whole
columns, only finds the values to look at; one is refused only when it turns back into UTF-8
(its characters, as the cp1252 or latin-1 bytes they were read from, decode as UTF-8) and
ftfy's heuristics find it garbled too. Real text can hold a pair and even turn back:
``Café\u00a0\u2013 Vue mer`` (``é``, a no-break space, an en dash) is the UTF-8 of a Chinese
character between ``Caf`` and `` Vue``, which is no mojibake anyone writes; it is read as it is.
"""

from __future__ import annotations

import polars as pl
from ftfy.badness import is_bad

from pipeline.common.columns import CANONICAL_COLUMNS
from pipeline.common.errors import InputFileError

# The characters cp1252 gives bytes 0x80-0x9F (five of them are unassigned and read as the
# C1 controls latin-1 gives every one of them), then 0xA0-0xBF, the same in both.
_CONTINUATION = (
    bytes(range(0x80, 0xA0)).decode("cp1252", errors="ignore") + "\u0080-\u009f" + "\u00a0-\u00bf"
)
# Lead bytes, as cp1252 and latin-1 read them: two-byte sequences for Latin-1 and Latin
# Extended-A letters (0xC2-0xC5), combining marks, Greek, Cyrillic, Hebrew and Arabic
# (0xCC-0xDB); three-byte ones (typographic quotes and dashes, the euro sign, CJK);
# four-byte ones (emoji).
_LEAD_2 = "\u00c2-\u00c5\u00cc-\u00db"
_LEAD_3 = "\u00e0-\u00ef"
_LEAD_4 = "\u00f0-\u00f4"
MOJIBAKE = (
    f"[{_LEAD_2}][{_CONTINUATION}]"
    f"|[{_LEAD_3}][{_CONTINUATION}]{{2}}"
    f"|[{_LEAD_4}][{_CONTINUATION}]{{3}}"
)
# The read stage's working column: the used values of a row that hold the trace (a list).
MOJIBAKE_COLUMN = "_mojibake"
# The columns looked at (with the [input.skip] ones): what a code's name, its door and its
# level are made of. Dates and times don't reach a name, and a garbled one rejects its row.
NAME_COLUMNS = tuple(name for name in CANONICAL_COLUMNS if name not in ("check_in", "check_out"))


def suspect_mojibake(columns: list[str]) -> pl.Expr:
    """The MOJIBAKE_COLUMN expression: the values of ``columns`` (as text) that hold the trace
    of mojibake, in their order (an empty list for a row without)."""
    if not columns:
        return pl.lit([], pl.List(pl.String)).alias(MOJIBAKE_COLUMN)
    found = [
        pl.when(pl.col(name).cast(pl.String).str.contains(MOJIBAKE)).then(
            pl.col(name).cast(pl.String)
        )
        for name in columns
    ]
    return pl.concat_list(found).list.drop_nulls().alias(MOJIBAKE_COLUMN)


def refuse_mojibake(table: pl.DataFrame, source: str, decoded_as: str | None, section: str) -> None:
    """Raise InputFileError for the first value of ``table`` (with MOJIBAKE_COLUMN and
    ``source_line``) that holds mojibake: one that holds its trace, turns back into UTF-8 and
    looks garbled to ftfy.
    ``decoded_as`` is the encoding the file's bytes were read in here (None for a workbook or
    a Parquet file, whose text comes decoded): read as UTF-8, the mojibake is in the file
    itself; read otherwise, the file is likely UTF-8."""
    suspects = (
        table.filter(pl.col(MOJIBAKE_COLUMN).list.len() > 0)
        .select(MOJIBAKE_COLUMN, "source_line")
        .explode(MOJIBAKE_COLUMN)
    )
    found = (
        (value, line, repaired)
        for value, line in suspects.iter_rows()
        if (repaired := _as_utf8(value)) is not None and is_bad(value)
    )
    value, line, repaired = next(found, (None, None, None))
    if value is None:
        return
    shown = (
        f"{source} line {line} reads {value!r}: UTF-8 text read as cp1252 (it would read"
        f" {repaired!r})"
    )
    if decoded_as is not None and not decoded_as.startswith("utf-8"):
        hint = f'the file is likely UTF-8: set {section} encoding = "utf-8"'
    else:
        hint = (
            "the file itself holds the garbled text: export it again from the property system"
            " as UTF-8, or mend those values"
        )
    raise InputFileError(f"reservation file {shown}", hint=hint)


def _as_utf8(value: str) -> str | None:
    """``value``'s characters back to the bytes cp1252 (or latin-1) made them from, read as
    UTF-8: what the text should read (None when it doesn't come back whole)."""
    raw = bytearray()
    for character in value:
        code = ord(character)
        if code < 0x100:
            raw.append(code)
            continue
        try:
            raw += character.encode("cp1252")
        except UnicodeEncodeError:
            return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
