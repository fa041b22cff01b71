"""The text encoding of a CSV export: configured, or told by its bytes, never assumed silently.

Without ``[input] encoding``: a byte-order mark says UTF-8 or UTF-16 (Excel's "Unicode text"
is UTF-16 with a BOM, tab-separated); else every other byte NUL says UTF-16 without its mark
(with a warning); else the file is UTF-8 when every byte decodes as such;
else it is read as cp1252 (what Windows Excel writes for Western Europe) with a warning that
names the file. UTF-8 files go to Polars as they are; any other encoding is decoded here and
handed over as UTF-8 bytes.
"""

from __future__ import annotations

import codecs
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ConfigError, InputFileError

log = logging.getLogger(__name__)

FALLBACK_ENCODING = "cp1252"
REPLACEMENT_CHARACTER = "\ufffd"
# Longest first: the UTF-32 marks aren't read, but UTF-16 LE's mark is their prefix.
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# UTF-16 without a mark: at least this share of one half of the bytes is NUL (letters, digits
# and punctuation of a CSV header are all below U+0100), and at most that of the other half.
_UTF16_NULS = 0.4
_STRAY_NULS = 0.05
_ENDIAN = {"utf-16-le": "little-endian", "utf-16-be": "big-endian"}
_CHUNK = 1 << 20
_HEAD = 64 * 1024


@dataclass(frozen=True)
class DecodedExport:
    """A CSV export ready for Polars: ``source`` is the file itself when it is UTF-8, else its
    text re-encoded as UTF-8 bytes; ``header`` is its first line (for the delimiter guess);
    ``encoding`` is the codec it was read with (``utf-8`` for the file as it is)."""

    source: Path | bytes
    header: str
    encoding: str


def decode_export(path: Path, encoding: str | None) -> DecodedExport:
    """Read ``path`` with the configured ``encoding``, or the detected one when None.

    Undecodable bytes become the replacement character (the read stage warns about the rows
    they land in). Raises ConfigError for an encoding Python doesn't know, InputFileError for
    a file with nothing but whitespace (and a BOM).
    """
    if encoding is not None:
        try:
            codec = codecs.lookup(encoding).name
        except LookupError as exc:
            raise ConfigError(
                f"[input] encoding {encoding!r} is not a known text encoding",
                hint="use e.g. utf-8, cp1252, utf-16 or latin-1, or remove it to detect",
            ) from exc
        if codec == "utf-8" and _is_utf8(path):
            return _as_is(path)
        return _transcoded(path, codec)
    with path.open("rb") as handle:
        head = handle.read(4)
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return _as_is(path) if codec == "utf-8-sig" else _transcoded(path, codec)
    if (utf16 := _utf16_without_bom(path)) is not None:
        log.warning(
            f"{path} has no byte-order mark but is UTF-16 {_ENDIAN[utf16]} (every other byte"
            f' is NUL): read as such; set [input] encoding = "{utf16}" to say so'
        )
        return _transcoded(path, utf16)
    if _is_utf8(path):
        return _as_is(path)
    if _holds_utf8_sequences(path):
        # Mostly UTF-8 with a stray byte: read as cp1252, every name would be mangled (and
        # an [input.skip] value like "Annulé" would stop matching). Read as UTF-8 instead:
        # only the stray byte becomes the replacement character, whose lines are named.
        log.warning(
            "%s is UTF-8 with bytes that aren't: read as UTF-8, those bytes replaced (their"
            " lines are named below); if names look wrong, set [input] encoding",
            path,
        )
        return _transcoded(path, "utf-8")
    log.warning(
        "%s is not UTF-8: read as %s (Windows Western European); if names look wrong, set"
        " [input] encoding",
        path,
        FALLBACK_ENCODING,
    )
    return _transcoded(path, FALLBACK_ENCODING)


def _utf16_without_bom(path: Path) -> str | None:
    """``utf-16-le`` or ``utf-16-be`` when the file's first bytes are UTF-16 text without a
    byte-order mark (every other byte NUL, as text of Latin letters is in UTF-16), else None.
    Read as UTF-8, such a file's NULs would end up in its headers and every message naming
    them."""
    with path.open("rb") as handle:
        head = handle.read(_HEAD)
    pairs = len(head) // 2
    if pairs < 2:
        return None
    even, odd = head[0 : pairs * 2 : 2].count(0), head[1 : pairs * 2 : 2].count(0)
    if odd >= pairs * _UTF16_NULS and even <= pairs * _STRAY_NULS:
        return "utf-16-le"
    if even >= pairs * _UTF16_NULS and odd <= pairs * _STRAY_NULS:
        return "utf-16-be"
    return None


def _is_utf8(path: Path) -> bool:
    """Whether every byte of the file decodes as UTF-8 (read in chunks: no copy of the file)."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    with path.open("rb") as handle:
        try:
            while chunk := handle.read(_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


# A multi-byte UTF-8 sequence: seldom found in a cp1252 text ("Ã¼" is two letters nobody types).
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)


def _holds_utf8_sequences(path: Path) -> bool:
    """Whether the file holds multi-byte UTF-8 sequences (then its stray bytes are errors)."""
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            if _UTF8_SEQUENCE.search(chunk):
                return True
    return False


def _as_is(path: Path) -> DecodedExport:
    with path.open("rb") as handle:
        head = handle.read(_HEAD)
    text = head.decode("utf-8", errors="replace").removeprefix("\ufeff")
    _require_text(path, text)
    return DecodedExport(path, _first_line(text), "utf-8")


def _transcoded(path: Path, codec: str) -> DecodedExport:
    # "replace", not "strict": a wrong byte costs its row a warning, not the whole file.
    text = path.read_bytes().decode(codec, errors="replace").removeprefix("\ufeff")
    _require_text(path, text)
    return DecodedExport(text.encode("utf-8"), _first_line(text), codec)


def _require_text(path: Path, text: str) -> None:
    if not text.strip():
        raise InputFileError(f"reservation file {path} is empty")


def _first_line(text: str) -> str:
    return text.lstrip("\r\n").splitlines()[0] if text.strip() else ""
