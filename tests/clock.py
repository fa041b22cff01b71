"""One wall clock for every process of a test session, set to ``TEST_NOW`` and ticking.

The tests' stays are dated (2027, DST weekends), and the planner, the sandbox and the ledger
compare them with the wall clock: left to the machine's clock, a suite that passes today would
reject them as ``in_the_past`` next year. So the session's clock starts at ``TEST_NOW``
(``time_machine``, ticking with real time), and every Python subprocess a test starts reads the
same clock, shifted by the same offset, through ``tests/clock_shim/sitecustomize.py``
(``PYTHONPATH`` and ``CLOCK_OFFSET_VARIABLE`` are set in the session's environment, which
subprocesses inherit). Monotonic clocks are left alone.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import time_machine

TEST_NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
CLOCK_OFFSET_VARIABLE = "ORACODE_TESTS_CLOCK_OFFSET"
SHIM = Path(__file__).resolve().parent / "clock_shim"


@contextmanager
def session_clock() -> Iterator[None]:
    """The session's wall clock at ``TEST_NOW``, for this process and its subprocesses."""
    offset = TEST_NOW.timestamp() - time.time()
    saved = {name: os.environ.get(name) for name in (CLOCK_OFFSET_VARIABLE, "PYTHONPATH")}
    os.environ[CLOCK_OFFSET_VARIABLE] = repr(offset)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(SHIM), saved["PYTHONPATH"]) if part
    )
    with time_machine.travel(TEST_NOW, tick=True):
        time.time()  # the traveller ticks from its first reading: make that now
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
