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

from pipeline.common.errors import UsageError
from pipeline.common.input_settings import (
    INPUT_SECTION,
    InputConfig,
    columns_section,
    skip_section,
    source_section,
)
from pipeline.common.settings import Config

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
    top-level settings), once for each file several sources match (naming them all, and the
    first, which reads it), and once for each source that matches none of ``paths``: a missing
    export would count all its bookings as gone (``require_every_source`` refuses it).
    """
    top = FileSettings(config.input, config.columns)
    if not config.sources:
        return [top for _ in paths]
    chosen = []
    for path in paths:
        names = _matching(path, config)
        if not names:
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
        if len(names) > 1:
            log.warning(
                "%s matches the files pattern of %s: read with %s, the first in the config;"
                " make the patterns tell the systems' files apart",
                path,
                " and ".join(_described(name, config) for name in names),
                source_section(names[0]),
            )
        source = config.sources[names[0]]
        chosen.append(FileSettings(source, source.columns, source_section(names[0])))
    for name in sources_without_files(paths, config):
        log.warning(
            "%s matches none of the files given: its bookings are absent from this run (apply"
            " refuses to run without them); give its export with the others",
            _described(name, config),
        )
    return chosen


def sources_without_files(paths: Sequence[Path], config: Config) -> list[str]:
    """The names of the configured sources whose ``files`` glob matches none of ``paths``
    (whether or not an earlier source reads the file it matches)."""
    matched = {name for path in paths for name in _matching(path, config)}
    return [name for name in config.sources if name not in matched]


def require_every_source(paths: Sequence[Path], config: Config) -> None:
    """Raise UsageError (exit 2) when a configured source matches none of ``paths``: apply
    judges orphans over all its input, so without that system's export every code made for
    its bookings would be orphaned."""
    missing = sources_without_files(paths, config)
    if missing:
        raise UsageError(
            f"{_described(missing[0], config)} matches none of tonight's files",
            hint="give its export too; without it every code of that system would be orphaned",
        )


def _matching(path: Path, config: Config) -> list[str]:
    """The sources whose ``files`` glob matches the file's name, case aside, in config order."""
    name = path.name.casefold()
    return [
        source_name
        for source_name, source in config.sources.items()
        if fnmatch.fnmatchcase(name, source.files.casefold())
    ]


def _described(name: str, config: Config) -> str:
    return f"{source_section(name)} (files = {config.sources[name].files!r})"
