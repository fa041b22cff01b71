"""``[sources.NAME]``: which settings read which file, when one night's files come from several
property systems.

A file takes the first source whose ``files`` glob matches its name (case aside), else the
top-level ``[input]``, ``[columns]`` and ``[input.skip]``. Each source stands alone: nothing is
taken from the top level, so one system's headers, encoding or date format never reach
another's files (nor do warnings about them).
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.input_settings import (
    INPUT_SECTION,
    InputConfig,
    columns_section,
    skip_section,
    source_section,
)
from pipeline.settings import Config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileSettings:
    """How one file is read: its ``input`` settings, its ``columns`` renames, and ``section``,
    where they are written in the config (``[input]`` or ``[sources.NAME]``, for messages)."""

    input: InputConfig
    columns: Mapping[str, str]
    section: str = INPUT_SECTION

    @property
    def columns_section(self) -> str:
        return columns_section(self.section)

    @property
    def skip_section(self) -> str:
        return skip_section(self.section)


def settings_by_file(paths: Sequence[Path], config: Config) -> list[FileSettings]:
    """Each file's settings, in the order of ``paths``.

    With sources configured, warns once for each file no source matches (it is read with the
    top-level settings) and once for each source that matches none of ``paths``: a missing
    export would otherwise count all its bookings as gone, and apply orphan their codes.
    """
    top = FileSettings(config.input, config.columns)
    if not config.sources:
        return [top for _ in paths]
    chosen = []
    used: set[str] = set()
    for path in paths:
        name = next(
            (
                name
                for name, source in config.sources.items()
                if fnmatch.fnmatchcase(path.name.casefold(), source.files.casefold())
            ),
            None,
        )
        if name is None:
            patterns = ", ".join(
                f"{name}: {source.files!r}" for name, source in config.sources.items()
            )
            log.warning(
                "%s matches no [sources.*] files pattern (%s): read with the top-level [input]"
                " and [columns]",
                path,
                patterns,
            )
            chosen.append(top)
            continue
        used.add(name)
        source = config.sources[name]
        chosen.append(FileSettings(source, source.columns, source_section(name)))
    for name, source in config.sources.items():
        if name not in used:
            log.warning(
                "[sources.%s] files %r matches none of the files given: its bookings are"
                " absent from this run (apply counts their codes as orphaned); give its export"
                " with the others",
                name,
                source.files,
            )
    return chosen
