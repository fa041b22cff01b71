"""A CSV export's bytes that say it is in another encoding than the one it would be read in.

Read all the same, its names would reach codes that can never be deleted as ``J�rgen`` or
as CJK characters, so each case is refused (InputFileError, exit 2) with one line naming the
line and the encoding the file most likely is:

- NUL bytes every other byte (UTF-16 text of Latin letters), or a UTF-16 byte-order mark,
  under a setting that isn't UTF-16 (or none, without the mark); NUL bytes at random: no text;
- a UTF-16 setting on a file with neither;
- a byte that isn't UTF-8 under a UTF-8 setting: the file is likely cp1252, or, when the rest
  of it is UTF-8, holds a stray byte to mend.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import NoReturn

from pipeline.common.errors import InputFileError

# How many of a stretch's byte pairs hold a NUL in one place, and at most in the other, for
# UTF-16 text: Latin letters are one byte and a NUL; digits, punctuation and spaces too.
_WIDE_SHARE = 0.3
_STRAY_SHARE = 0.05
# A multi-byte UTF-8 sequence: seldom found in a cp1252 text ("Ã¼" is two letters nobody types).
UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)


def is_utf16_codec(codec: str) -> bool:
    """Whether ``codec`` (a normalised codec name) is one of UTF-16's or UTF-32's, whose bytes
    are nothing like UTF-8's."""
    return codec.startswith(("utf-16", "utf-32"))


# NUL bytes a text export may hold by accident (a broken value), beyond one per thousand bytes.
_STRAY_NULS = 8


def utf16_kind(head: bytes) -> str | None:
    """The UTF-16 codec the start of a file says it is in: ``utf-16`` for a byte-order mark,
    ``utf-16-le`` / ``utf-16-be`` for NUL bytes in every other place; None otherwise."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    pairs = len(head) // 2
    if pairs == 0:
        return None
    even, odd = head[0 : pairs * 2 : 2].count(0), head[1 : pairs * 2 : 2].count(0)
    if odd >= pairs * _WIDE_SHARE and even <= pairs * _STRAY_SHARE:
        return "utf-16-le"
    if even >= pairs * _WIDE_SHARE and odd <= pairs * _STRAY_SHARE:
        return "utf-16-be"
    return None


def refuse_wide_bytes(path: Path, head: bytes, setting: str | None, section: str) -> None:
    """Raise InputFileError when ``head`` (the file's first bytes) is UTF-16 while ``setting``
    (the configured codec, or None for none) isn't, or holds more NUL bytes than a few stray
    ones in values (a binary file)."""
    wide = utf16_kind(head)
    if wide is None and head.count(0) <= _STRAY_NULS + len(head) // 1000:
        return  # a stray NUL in a value: the read stage cleans it out of names
    said = f", not {setting} as {section} encoding says" if setting is not None else ""
    if wide == "utf-16":
        raise InputFileError(
            f"reservation file {path} starts with a UTF-16 byte-order mark: it is UTF-16{said}",
            hint=f'set {section} encoding = "utf-16", or remove it to detect',
        )
    line = head.count(b"\n", 0, head.find(0)) + 1
    where = f"reservation file {path} line {line}"
    if wide is not None:
        order = "little" if wide.endswith("le") else "big"
        raise InputFileError(
            f"{where} holds a NUL byte every other byte: the file is likely UTF-16"
            f" ({order}-endian, without a byte-order mark){said}",
            hint=f'set {section} encoding = "{wide}"',
        )
    raise InputFileError(
        f"{where} holds NUL bytes: it is not a text export",
        hint="export the bookings again as CSV, or give a workbook under its own extension",
    )


def refuse_narrow_bytes(path: Path, head: bytes, codec: str, section: str) -> None:
    """Raise InputFileError when ``codec`` is UTF-16 (or UTF-32) but ``head`` has neither a
    byte-order mark nor a NUL byte, as any such text of Latin letters has."""
    if 0 in head or head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return
    likely = "utf-8" if _decodes(head, "utf-8") else "cp1252"
    raise InputFileError(
        f"reservation file {path} is not {codec} as {section} encoding says: it holds no NUL"
        " byte, as UTF-16 text of these letters would",
        hint=f'the file is likely {likely}: set {section} encoding = "{likely}", or remove it'
        " to detect",
    )


def refuse_non_utf8(path: Path, offset: int, setting: str, section: str) -> NoReturn:
    """Raise InputFileError for the byte at ``offset`` of ``path``, which isn't UTF-8 while
    ``setting`` says the file is: naming its line, the value it is in, how cp1252 reads it, and
    what to do (another encoding, or mending a stray byte in a UTF-8 file)."""
    data = path.read_bytes()
    newline = b"\n" if b"\n" in data else b"\r"
    start = data.rfind(newline, 0, offset) + 1
    end = data.find(newline, offset)
    line = data[start : end if end >= 0 else len(data)].rstrip(b"\r")
    field = _field_at(line, offset - start)
    likely = "cp1252" if _decodes(data, "cp1252") else "latin-1"
    shown = field.decode("utf-8", errors="backslashreplace")
    where = f"reservation file {path} line {data.count(newline, 0, offset) + 1}"
    if UTF8_SEQUENCE.search(data):
        hint = "the rest of the file is UTF-8: mend that value, or export the file again as UTF-8"
    else:
        hint = f'the file is likely {likely}: set {section} encoding = "{likely}"'
    raise InputFileError(
        f"{where} is not {setting} as {section} encoding says: byte 0x{data[offset]:02X} in"
        f" '{shown}' (as {likely} it reads {field.decode(likely, errors='replace')!r})",
        hint=hint,
    )


def _field_at(line: bytes, offset: int) -> bytes:
    """The field of ``line`` (split at the delimiter it holds most) that holds ``offset``."""
    delimiter = max((b",", b";", b"\t", b"|"), key=line.count)
    before = line.rfind(delimiter, 0, offset) + 1
    after = line.find(delimiter, offset)
    return line[before : after if after >= 0 else len(line)].strip(b'" ')


def _decodes(data: bytes, codec: str) -> bool:
    """Whether ``data`` (perhaps cut in the middle of a character) decodes in ``codec``."""
    try:
        codecs.getincrementaldecoder(codec)().decode(data)
    except UnicodeDecodeError:
        return False
    return True
