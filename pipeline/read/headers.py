"""A file's headers against the config: which header is which pipeline column (``[columns]``
renames, then the canonical names), the columns a file must bring, and a ``[columns]`` key no
header matches. ``columns`` is the file's own map: ``[columns]``, or its source's."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from pipeline.common.columns import CANONICAL_COLUMNS, SPLIT_COLUMNS
from pipeline.common.errors import InputFileError
from pipeline.common.names import did_you_mean, name_key

log = logging.getLogger(__name__)

DELIMITERS = (",", ";", "\t", "|")
# The columns a file may bring: the canonical ones and the split check-in/out date and time.
READ_COLUMNS = (*CANONICAL_COLUMNS, *SPLIT_COLUMNS)


def rename_to_canonical(headers: list[str], columns: Mapping[str, str]) -> dict[str, str | None]:
    """Map each header to its canonical column (None when it is not one we use)."""
    renamed: dict[str, str | None] = {}
    mapping = {name_key(k): v for k, v in columns.items()}
    for header in headers:
        clean = header.strip().lstrip("\ufeff")
        target = mapping.get(name_key(clean))
        if target is None and clean.lower() in READ_COLUMNS:
            target = clean.lower()
        if target is not None and target in renamed.values():
            target = None  # the first header that maps to a column wins
        renamed[header] = target
    return renamed


def warn_unmatched_renames(
    path: Path, headers: list[str], columns: Mapping[str, str], section: str
) -> None:
    """One warning line per ``columns`` key (written in ``section``) that no header of the file
    matches (a typo, or another export's header): the column it names would otherwise be
    missing without a word."""
    present = {name_key(header.strip().lstrip("\ufeff")) for header in headers}
    for key, target in columns.items():
        if name_key(key) not in present:
            log.warning(
                f"{section} {key!r} matches no header of {path}"
                f"{did_you_mean(key, headers, form='; {}')} (its headers: {', '.join(headers)};"
                f" {target} is read from a header of that name, if any)"
            )


def missing_columns(renamed: Mapping[str, str | None]) -> list[str]:
    """The columns a file must bring that ``renamed`` (header -> column) lacks."""
    found = set(renamed.values())
    missing = [
        name
        for name in ("reservation_id", "check_in", "check_out")
        if name not in found and f"{name}_date" not in found
    ]
    if not found & {"device_id", "door_name"}:
        missing.append("device_id or door_name")
    return missing


def require_columns(
    path: Path,
    renamed: dict[str, str | None],
    columns_section: str,
    input_section: str,
) -> None:
    """Raise InputFileError naming the columns the file lacks (and its headers), if any; the
    hint names the file's settings (``columns_section``, ``input_section``)."""
    missing = missing_columns(renamed)
    if not missing:
        return
    headers = list(renamed)
    hint = f"rename the file's headers with a {columns_section} table in the config"
    if not any(renamed.values()):
        hint += f", or set {input_section} header_row to the row that holds them"
    if len(headers) == 1 and any(sep in headers[0] for sep in DELIMITERS):
        hint = "the delimiter was guessed wrong: the header is one column"
    raise InputFileError(
        f"reservation file {path} lacks column {', '.join(missing)}; it has {headers}",
        hint=hint,
    )
