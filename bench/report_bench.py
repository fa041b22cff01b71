"""The HTML report at scale: ``report --format html`` on a ledger of 100,000 codes over 5,000
doors, seven nightly runs (the target: written in under 5 s), and the page's size for 10,000.

The ledgers are written through the ledger's own operations (``tests/generate_ledger.py``),
not through the sandbox; their making isn't timed. The page's time is a fresh process's, from
its start to its exit, as a nightly run pays it: Python's start, the imports (Polars, Altair,
Jinja2, vl-convert), the report, the page's reads, vl-convert's engine started, the charts, the
file. Each size runs in a process of its own, so that nothing one loaded helps the next.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from tests.generate_ledger import fill_ledger

SIZES = ((100_000, 5_000), (10_000, 500))  # codes, doors
NOW = dt.datetime(2027, 3, 1, 3, tzinfo=dt.UTC)


def _measure(folder: Path, codes: int, doors: int) -> dict[str, Any]:
    ledger = folder / f"ledger-{codes}.sqlite"
    started = time.perf_counter()
    anyio.run(lambda: fill_ledger(ledger, codes=codes, doors=doors, now=NOW))
    made = time.perf_counter() - started
    out = folder / f"report-{codes}.html"
    command = [sys.executable, "-m", "pipeline", "report", "--ledger", str(ledger)]
    command += ["--format", "html", "--out", str(out), "--as-of", NOW.isoformat()]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode > 1:  # 1: reservations need a person, as in a real ledger
        raise RuntimeError(f"report exited {done.returncode}: {done.stderr.strip()}")
    return {
        "codes": codes,
        "doors": doors,
        "ledger_seconds": made,
        "seconds": seconds,
        "bytes": out.stat().st_size,
    }


def run(sizes: tuple[tuple[int, int], ...] = SIZES) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as folder:
        return [_measure(Path(folder), codes, doors) for codes, doors in sizes]


def report(figures: list[dict[str, Any]]) -> None:
    print("== report --format html (target: 100,000 codes in under 5 s, the page under 5 MB) ==")
    for figure in figures:
        print(
            f"  {figure['codes']:>7,} codes over {figure['doors']:,} doors:"
            f" page written in {figure['seconds']:.2f} s by a fresh process (its start and"
            f" imports included), {figure['bytes'] / 1e6:.2f} MB"
            f" (ledger made in {figure['ledger_seconds']:.1f} s, not counted)"
        )
