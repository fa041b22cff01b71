"""The text encoding of a CSV export: configured, or told by its bytes, never assumed silently.

Without ``[input] encoding``: a byte-order mark says UTF-8 or UTF-16 (Excel's "Unicode text"
is UTF-16 with a BOM, tab-separated); else every other byte NUL says UTF-16 without its mark
(with a warning); else the file is UTF-8 when every byte decodes as such;
else it is read as cp1252 (what Windows Excel writes for Western Europe) with a warning that
names the file. With ``[input] encoding`` set to a legacy encoding (cp1252, latin-1, ...), a
file that is UTF-8 all the same, and not plain ASCII, is read as UTF-8 with a warning: decoded
as configured, every accented letter would become two (``Jürgen`` as ``JÃ¼rgen``) in the names
of codes that can never be deleted. Bytes that fit neither the setting nor UTF-8 as it is
(UTF-16 under a single-byte setting, a byte that isn't UTF-8 under a UTF-8 one) are refused by
``misencoded``. A file whose lines end in a carriage return alone (Excel for Mac's "CSV
(Macintosh)") is read with those as line ends. UTF-8 files go to Polars as they are; any
other encoding, and such a file, is decoded here and handed over as UTF-8 bytes.
"""

from __future__ import annotations

import codecs
import logging
from dataclasses import dataclass
from pathlib import Path

from pipeline.common.errors import InputFileError
from pipeline.read.misencoded import (
    UTF8_SEQUENCE,
    is_utf16_codec,
    refuse_narrow_bytes,
    refuse_non_utf8,
    refuse_wide_bytes,
    utf16_kind,
)

log = logging.getLogger(__name__)

FALLBACK_ENCODING = "cp1252"
# Longest first: the UTF-32 marks aren't read, but UTF-16 LE's mark is their prefix.
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_ENDIAN = {"utf-16-le": "little-endian", "utf-16-be": "big-endian"}
_CHUNK = 1 << 20
_HEAD = 64 * 1024


@dataclass(frozen=True)
class DecodedExport:
    """A CSV export ready for Polars: ``source`` is the file itself when it is UTF-8, else its
    text re-encoded as UTF-8 bytes; ``head`` is the start of its text (for the header row and
    the delimiter); ``encoding`` is the codec it was read with (``utf-8`` for the file as it
    is); ``is_ascii`` whether every character is ASCII (nothing an encoding can get wrong)."""

    source: Path | bytes
    head: str
    encoding: str
    is_ascii: bool = False


def decode_export(path: Path, encoding: str | None, section: str) -> DecodedExport:
    """Read ``path`` with the configured ``encoding``, or the detected one when None;
    ``section`` is where the setting is written, for messages.

    Bytes a legacy encoding can't read become the replacement character (planning rejects the
    rows whose names they land in). Raises InputFileError for a file with nothing but
    whitespace (and a BOM) and for bytes that say the file is in another encoding
    (``misencoded``).
    """
    with path.open("rb") as handle:
        head = handle.read(_HEAD)
    if encoding is not None:
        codec = codecs.lookup(encoding).name  # a known text encoding: the config checks it
        if is_utf16_codec(codec):
            refuse_narrow_bytes(path, head, codec, section)
            return _transcoded(path, codec)
        refuse_wide_bytes(path, head, encoding, section)
        is_ascii, bad_byte = _scan_utf8(path)
        if bad_byte is not None and codec.startswith("utf-8"):
            refuse_non_utf8(path, bad_byte, encoding, section)
        if bad_byte is not None:
            return _transcoded(path, codec)
        if not is_ascii and not codec.startswith("utf-8"):
            log.warning(
                "%s is UTF-8, not %s as %s encoding says: read as UTF-8, which keeps its names'"
                ' letters; set encoding = "utf-8" there if its exports are UTF-8 now',
                path,
                encoding,
                section,
            )
        return _as_is(path, head, is_ascii=is_ascii)
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return _as_is(path, head) if codec == "utf-8-sig" else _transcoded(path, codec)
    if (utf16 := utf16_kind(head)) is not None and utf16 != "utf-16":
        log.warning(
            f"{path} has no byte-order mark but is UTF-16 {_ENDIAN[utf16]} (every other byte"
            f' is NUL): read as such; set {section} encoding = "{utf16}" to say so'
        )
        return _transcoded(path, utf16)
    refuse_wide_bytes(path, head, None, section)
    is_ascii, bad_byte = _scan_utf8(path)
    if bad_byte is None:
        return _as_is(path, head, is_ascii=is_ascii)
    if _holds_utf8_sequences(path):
        # Mostly UTF-8 with a stray byte: read as cp1252, every name would be mangled (and
        # an [input.skip] value like "Annulé" would stop matching). Read as UTF-8 instead:
        # only the stray byte becomes the replacement character, and its row is rejected.
        log.warning(
            "%s is UTF-8 with bytes that aren't: read as UTF-8, those bytes replaced (their"
            " lines are named below); if names look wrong, set %s encoding",
            path,
            section,
        )
        return _transcoded(path, "utf-8")
    log.warning(
        "%s is not UTF-8: read as %s (Windows Western European); if names look wrong, set"
        " %s encoding",
        path,
        FALLBACK_ENCODING,
        section,
    )
    return _transcoded(path, FALLBACK_ENCODING)


def _scan_utf8(path: Path) -> tuple[bool, int | None]:
    """Whether every byte of the file is ASCII, and the offset of its first byte that isn't
    UTF-8 (None when all of it decodes), read in chunks: no copy of the file. An ASCII file
    reads the same in any of the usual encodings; a UTF-8 one that isn't ASCII seldom decodes
    as UTF-8 by chance."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    is_ascii = True
    offset = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            is_ascii = is_ascii and chunk.isascii()
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return False, offset - pending + exc.start
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            return False, offset - len(exc.object) + exc.start
    return is_ascii, None


def _holds_utf8_sequences(path: Path) -> bool:
    """Whether the file holds multi-byte UTF-8 sequences (then its stray bytes are errors)."""
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            if UTF8_SEQUENCE.search(chunk):
                return True
    return False


def _as_is(path: Path, head: bytes, *, is_ascii: bool = False) -> DecodedExport:
    text = head.decode("utf-8", errors="replace").removeprefix("\ufeff")
    _require_text(path, text)
    if _ends_lines_in_cr(text):
        # Polars ends lines at \n only: one line end for another, UTF-8 stays UTF-8.
        data = path.read_bytes().replace(b"\r", b"\n")
        return DecodedExport(data, text.replace("\r", "\n"), "utf-8", is_ascii)
    return DecodedExport(path, text, "utf-8", is_ascii)


def _transcoded(path: Path, codec: str) -> DecodedExport:
    # "replace", not "strict": a wrong byte costs its row, not the whole file.
    text = path.read_bytes().decode(codec, errors="replace").removeprefix("\ufeff")
    _require_text(path, text)
    if _ends_lines_in_cr(text[:_HEAD]):
        text = text.replace("\r", "\n")
    return DecodedExport(text.encode("utf-8"), text[:_HEAD], codec, text.isascii())


def _ends_lines_in_cr(head: str) -> bool:
    """Whether a file starting with ``head`` ends its lines in a carriage return alone."""
    return "\r" in head and "\n" not in head


def _require_text(path: Path, text: str) -> None:
    if not text.strip():
        raise InputFileError(f"reservation file {path} is empty")
