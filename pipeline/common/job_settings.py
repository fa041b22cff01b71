"""The config's sections for the nightly job and the hand-off (part of ``settings.Config``):
``[pins]`` (how the pins file writes times for messages), ``[changes]`` (what a stay that
changed after its code was made gets) and ``[nightly]`` (where the nightly job keeps its
files, and for how long)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.common.errors import ConfigError

# ``Fri 26 Mar 2027 15:00``: a check-in as a message to a guest writes it.
TIME_FORMAT = "%a %d %b %Y %H:%M"
DATE_FORMAT = "%a %d %b %Y"


class PinsConfig(BaseModel):
    """``[pins]``: strftime formats of ``check_in_local`` / ``check_out_local``, for a time on
    the lock's clock (``time_format``) and for a booking given by its dates only
    (``date_format``)."""

    model_config = ConfigDict(extra="forbid")

    time_format: str = TIME_FORMAT
    date_format: str = DATE_FORMAT

    @field_validator("time_format", "date_format")
    @classmethod
    def _has_a_directive(cls, value: str) -> str:
        if not re.search(r"%[-#]?[A-Za-z]", value):
            raise ValueError(f"{value!r} has no strftime directive (e.g. {TIME_FORMAT})")
        return value


class ChangesConfig(BaseModel):
    """``[changes]``: ``reissue_changed``, whether a stay whose window changed after its code
    was made gets a new code (as ``--reissue-changed``; ``--no-reissue-changed`` says no for
    one run). Off by default: codes can't be deleted, so the old one stays valid."""

    model_config = ConfigDict(extra="forbid")

    reissue_changed: bool = False


# How many days the nightly job keeps a night's files (logs, results, report).
KEEP_DAYS = 14


class NightlyConfig(BaseModel):
    """``[nightly]``: the folder the nightly job writes its files to (``out_dir``, as
    ``--out-dir``) and how many days a night's files are kept (``keep_days``, as
    ``--keep-days``)."""

    model_config = ConfigDict(extra="forbid")

    out_dir: Path = Path("outputs")
    keep_days: Annotated[int, Field(strict=True, ge=1)] = KEEP_DAYS


def nightly_settings(
    config: NightlyConfig, *, out_dir: Path | None = None, keep_days: int | None = None
) -> NightlyConfig:
    """The config's ``[nightly]`` with the command line's ``--out-dir`` and ``--keep-days``
    over it, checked as the config's are; ConfigError (exit 2) naming the option."""
    given: dict[str, object] = {}
    if out_dir is not None:
        given["out_dir"] = out_dir
    if keep_days is not None:
        given["keep_days"] = keep_days
    try:
        return NightlyConfig.model_validate(config.model_dump() | given)
    except ValidationError as exc:
        first = exc.errors()[0]
        option = "--" + str(first["loc"][0]).replace("_", "-")
        what = str(first["msg"])
        raise ConfigError(
            f"{option} {given.get(str(first['loc'][0]))}: {what[:1].lower()}{what[1:]}"
        ) from exc
