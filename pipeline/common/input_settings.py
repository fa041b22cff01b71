"""How the reservation files are written: ``[input]``, and ``[sources.NAME]`` for a night fed
by several property systems; the config's tables for the read stage."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

# Where the read settings are written in the config, as messages name them: the top-level
# tables, or a source's own (``source_section("pms")`` is ``[sources.pms]``, its renames
# ``[sources.pms.columns]``, its skip values ``[sources.pms.skip]``).
INPUT_SECTION = "[input]"
COLUMNS_SECTION = "[columns]"
# The strftime directives the date and time formats are read with (chrono's, as Polars reads
# them); any other letter after a % reads no value at all.
_DIRECTIVES = set("YCymbhBdeaAwuUWGgVjDxFvHkIlPpMSfRTXrZzcstn")


def source_section(name: str) -> str:
    """The config table of the source ``name``: ``[sources.NAME]``."""
    return f"[sources.{name}]"


def columns_section(section: str) -> str:
    """The renames of the settings written in ``section``: ``[columns]`` beside ``[input]``,
    a source's own ``[sources.NAME.columns]``."""
    return COLUMNS_SECTION if section == INPUT_SECTION else f"{section[:-1]}.columns]"


def skip_section(section: str) -> str:
    """The skip values of the settings written in ``section``: ``[input.skip]``,
    ``[sources.NAME.skip]``."""
    return f"{section[:-1]}.skip]"


class InputConfig(BaseModel):
    """How the reservation files are written (``[input]``): their text encoding (None: detected),
    strftime-style formats of their dates and times (None: ISO 8601), the sheet of a workbook
    (None: the first), the row that holds the headers (1-based; None: found among the first
    rows), and ``skip``: rows whose column holds one of the listed values are skipped
    (``excluded``), e.g. cancelled bookings."""

    model_config = ConfigDict(extra="forbid")

    encoding: str | None = None
    date_format: str | None = None
    time_format: str | None = None
    sheet: str | None = None
    header_row: Annotated[int, Field(ge=1)] | None = None
    skip: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("encoding")
    @classmethod
    def _encoding_is_known(cls, value: str | None) -> str | None:
        """An encoding Python can decode text with: a misspelt one must stop the run at start,
        not on the night a file of that source first comes."""
        if value is None:
            return value
        try:
            # Encoding to a codec that isn't a text encoding (base64, rot13) fails like this.
            "".encode(value)
        except LookupError as exc:
            raise ValueError(
                f"{value!r} is not a known text encoding (use e.g. utf-8, cp1252, utf-16 or"
                " latin-1, or remove it to detect)"
            ) from exc
        return value

    @field_validator("date_format", "time_format")
    @classmethod
    def _formats_say_one_thing(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A date format holds the date, a time format the time, each with ``%`` directives:
        a time inside ``date_format`` would be read and thrown away, and an offset (``%z``)
        would shift the lock-local time, so both are refused at start."""
        if value is None:
            return value
        directives = set(re.findall(r"%[-:]?([A-Za-z])", value))
        if not directives:
            raise ValueError(f"{value!r} has no strftime directive (e.g. %d.%m.%Y, %H:%M)")
        unknown = directives - _DIRECTIVES
        if unknown:
            raise ValueError(
                f"{value!r} holds %{min(unknown)}, which is no strftime directive (e.g. %d.%m.%Y,"
                " %H:%M)"
            )
        offsets = directives & set("zZ")
        if offsets:
            raise ValueError(
                f"{value!r} holds an offset (%{min(offsets)}); the export's times are read as the"
                " lock's local time: leave the offset out"
            )
        misplaced = directives & (
            set("HIMSpTRX") if info.field_name == "date_format" else set("dmyYbBajUWc")
        )
        if misplaced:
            other = "time_format" if info.field_name == "date_format" else "date_format"
            raise ValueError(
                f"{value!r} holds %{min(misplaced)}, which belongs in {other}"
                " (date and time combine as date_format, a space, time_format)"
            )
        return value


def _check_files_glob(glob: str) -> str:
    if not glob.strip():
        raise ValueError("is empty: give a pattern of file names, e.g. pms-*.xlsx")
    if "/" in glob or "\\" in glob:
        raise ValueError(
            f"{glob!r} names a folder: the pattern is matched against the file's name only"
            " (e.g. pms-*.xlsx)"
        )
    return glob


class SourceConfig(InputConfig):
    """One property system's files (``[sources.NAME]``): ``files`` is a glob (``*``, ``?``,
    ``[...]``) matched against each input file's name, case aside; the rest says how those
    files are written, as ``[input]`` does, with the source's own ``columns`` (as the top-level
    ``[columns]``) and ``skip``. Nothing is taken from the top-level ``[input]`` or
    ``[columns]``: each system is read on its own terms."""

    files: Annotated[str, AfterValidator(_check_files_glob)]
    columns: dict[str, str] = Field(default_factory=dict)


def read_settings_problem(exc: ValidationError) -> tuple[str, str | None] | None:
    """The first error of ``exc`` when it is in ``[input]`` or ``[sources]``, said as the
    config's other errors are: what is wrong in which table and key, and what to do (None for
    an error elsewhere)."""
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    if not loc or loc[0] not in ("input", "sources"):
        return None
    if loc[0] == "input":
        section, keys = INPUT_SECTION, loc[1:]
    elif len(loc) == 1:
        section, keys = "[sources]", []
    else:
        section, keys = source_section(loc[1]), loc[2:]
    kind, message = error["type"], error["msg"].removeprefix("Value error, ")
    example = 'e.g. [sources.pms] with files = "pms-*.csv"'
    if loc[0] == "sources" and len(loc) == 2 and kind in ("model_type", "dict_type"):
        return (
            f"[sources] {loc[1]} = {error['input']!r} is not a source's table",
            f"write each source as a [sources.NAME] table with its files glob, {example}",
        )
    if kind == "missing":
        return f"{section} has no {'.'.join(keys)}", f"give the glob of its files' names, {example}"
    if kind == "value_error" and not keys:
        return message, None  # a check of the whole table, which names what it checks
    where = " ".join([section, ".".join(keys)]) if keys else section
    if kind == "value_error":
        return f"{where} {message}", None
    if kind == "greater_than_equal":
        return f"{where} = {error['input']!r} must be {error['ctx']['ge']} or more", None
    return f"{where} = {error['input']!r}: {message[:1].lower()}{message[1:]}", None
