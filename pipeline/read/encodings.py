"""The text encoding of a CSV export: configured, or told by its bytes, never assumed silently.

Without ``[input] encoding``: a byte-order mark says UTF-8 or UTF-16 (Excel's "Unicode text"
is UTF-16 with a BOM, tab-separated); else the file is UTF-8 when every byte decodes as such;
else it is read as cp1252 (what Windows Excel writes for Western Europe) with a warning that
names the file. With ``[input] encoding`` set to a legacy encoding (cp1252, latin-1, ...), a
file that is UTF-8 all the same, and not plain ASCII, is read as UTF-8 with a warning: decoded
as configured, every accented letter would become two (``Jürgen`` as ``JÃ¼rgen``) in the names
of codes that can never be deleted. UTF-8 files go to Polars as they are; any other encoding
is decoded here and handed over as UTF-8 bytes.
"""

from __future__ import annotations

import codecs
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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
_CHUNK = 1 << 20
_HEAD = 64 * 1024
# Encodings whose bytes are nothing like UTF-8's: a file in them is never UTF-8 by chance.
_WIDE_UNICODE = ("utf-16", "utf-32")


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

    Undecodable bytes become the replacement character (the read stage warns about the rows
    they land in). Raises ConfigError for an encoding Python doesn't know, InputFileError for
    a file with nothing but whitespace (and a BOM).
    """
    if encoding is not None:
        try:
            codec = codecs.lookup(encoding).name
        except LookupError as exc:
            raise ConfigError(
                f"{section} encoding {encoding!r} is not a known text encoding",
                hint="use e.g. utf-8, cp1252, utf-16 or latin-1, or remove it to detect",
            ) from exc
        if codec.startswith(_WIDE_UNICODE):
            return _transcoded(path, codec)
        kind = _utf8_kind(path)
        if kind is None:
            return _transcoded(path, codec)
        if kind == "utf-8" and not codec.startswith("utf-8"):
            log.warning(
                "%s is UTF-8, not %s as %s encoding says: read as UTF-8, which keeps its names'"
                ' letters; set encoding = "utf-8" there if its exports are UTF-8 now',
                path,
                encoding,
                section,
            )
        return _as_is(path, is_ascii=kind == "ascii")
    with path.open("rb") as handle:
        head = handle.read(4)
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return _as_is(path) if codec == "utf-8-sig" else _transcoded(path, codec)
    kind = _utf8_kind(path)
    if kind is not None:
        return _as_is(path, is_ascii=kind == "ascii")
    if _holds_utf8_sequences(path):
        # Mostly UTF-8 with a stray byte: read as cp1252, every name would be mangled (and
        # an [input.skip] value like "Annulé" would stop matching). Read as UTF-8 instead:
        # only the stray byte becomes the replacement character, whose lines are named.
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


def _utf8_kind(path: Path) -> Literal["ascii", "utf-8"] | None:
    """``ascii`` when every byte of the file is ASCII, ``utf-8`` when every byte decodes as
    UTF-8, else None (read in chunks: no copy of the file). An ASCII file reads the same in any
    of the usual encodings; a UTF-8 one that isn't ASCII seldom decodes as UTF-8 by chance."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    is_ascii = True
    with path.open("rb") as handle:
        try:
            while chunk := handle.read(_CHUNK):
                is_ascii = is_ascii and chunk.isascii()
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return None
    return "ascii" if is_ascii else "utf-8"


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


def _as_is(path: Path, *, is_ascii: bool = False) -> DecodedExport:
    with path.open("rb") as handle:
        head = handle.read(_HEAD)
    text = head.decode("utf-8", errors="replace").removeprefix("\ufeff")
    _require_text(path, text)
    return DecodedExport(path, text, "utf-8", is_ascii)


def _transcoded(path: Path, codec: str) -> DecodedExport:
    # "replace", not "strict": a wrong byte costs its row a warning, not the whole file.
    text = path.read_bytes().decode(codec, errors="replace").removeprefix("\ufeff")
    _require_text(path, text)
    return DecodedExport(text.encode("utf-8"), text[:_HEAD], codec, text.isascii())


def _require_text(path: Path, text: str) -> None:
    if not text.strip():
        raise InputFileError(f"reservation file {path} is empty")
