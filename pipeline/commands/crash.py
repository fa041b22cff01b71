"""Where a defect's traceback is saved for the maintainers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pipeline.common.outputs import default_output_path, write_private_text


def save_crash_details(details: str, *, now: dt.datetime | None = None) -> Path:
    """Write a defect's traceback to ``outputs/crash-<UTC time>.txt`` (mode 0600); returns
    where. Raises OSError when it can't be written."""
    now = now or dt.datetime.now(dt.UTC)
    return write_private_text(default_output_path("crash", now=now).with_suffix(".txt"), details)
