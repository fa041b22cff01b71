"""The config's sections for the nightly job and the hand-off (part of ``settings.Config``):
``[pins]`` (how the pins file writes times for messages), ``[changes]`` (what a stay that
changed after its code was made gets) and ``[nightly]`` (where the nightly job keeps its
files, and for how long)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

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
