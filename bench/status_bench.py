"""Status at scale: the requests ``status`` sends to refresh 10,000 unfinished codes over 5,000
doors (the issue's target: at most 110; one list per door would be 5,000).

The sandbox runs in this process (``httpx.ASGITransport``), ``/events/list`` included; its
requests are counted by path.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import httpx
import polars as pl

from pipeline.apply.run import ApplySettings
from pipeline.commands import apply_files, status_files
from pipeline.sandbox import create_app
from pipeline.sandbox.state import SandboxState
from tests.generate import make_devices

DOORS = 5_000
PER_DOOR = 2


async def _measure(folder: Path) -> dict[str, Any]:
    payload = make_devices(DOORS, seed=91)
    state = SandboxState.from_payload(payload, door_rate=None)
    transport = httpx.ASGITransport(app=create_app(state))
    os.environ["SEAM_API_KEY"] = "seam_bench_key"
    os.environ["SEAM_ENDPOINT"] = "http://sandbox"
    doors = [device["device_id"] for device in payload["devices"]]
    stays = pl.DataFrame(
        {
            "reservation_id": [f"R{n}" for n in range(DOORS * PER_DOOR)],
            "device_id": [door for door in doors for _ in range(PER_DOOR)],
            "check_in": ["2027-02-01", "2027-02-06"] * DOORS,
            "check_out": ["2027-02-05", "2027-02-09"] * DOORS,
        }
    )
    source = folder / "stays.csv"
    stays.write_csv(source)
    ledger = folder / "ledger.sqlite"
    await apply_files(
        [source],
        ledger_path=ledger,
        out=folder / "results.parquet",
        settings=ApplySettings(door_rate=None, concurrency=16),
        transport=transport,
    )
    figures: dict[str, Any] = {}

    async def status(name: str, now: dt.datetime) -> None:
        before = state.requests.copy()
        started = time.perf_counter()
        run = await status_files(
            ledger_path=ledger, out=folder / f"{name}.parquet", transport=transport, now=now
        )
        by_path = Counter({path: n for (path, _), n in (state.requests - before).items()})
        figures[name] = {
            "codes": run.result.codes.height,
            "requests": run.result.requests,
            "by_path": dict(by_path),
            "from_events": run.result.from_events,
            "seconds": time.perf_counter() - started,
        }

    now = dt.datetime.now(dt.UTC)
    await status("by_ids", now)  # the first status: the ledger knows no events yet
    await status("events_none_set", now + dt.timedelta(minutes=1))
    for name, day in (("events_half_set", 3), ("events_rest_set", 8)):
        # 3 Feb: the stays from 1 Feb have started, their codes are set; 8 Feb: all of them.
        instant = dt.datetime(2027, 2, day, tzinfo=dt.UTC)
        state.clock.advance((instant - state.clock.now()).total_seconds())
        await status(name, instant)
    return figures


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        return anyio.run(_measure, Path(folder))


def report(figures: dict[str, Any]) -> None:
    print(
        f"== status: {DOORS * PER_DOOR:,} unfinished codes over {DOORS:,} doors (target ≤ 110) =="
    )
    labels = {
        "by_ids": "first status, by ids only",
        "events_none_set": "next, none set meanwhile",
        "events_half_set": "next, half of them set meanwhile",
        "events_rest_set": "next, the other half set",
    }
    for name, label in labels.items():
        figure = figures[name]
        paths = ", ".join(f"{path} {n}" for path, n in sorted(figure["by_path"].items()))
        print(
            f"  {label:<34} {figure['requests']:>4} requests ({paths}); {figure['codes']:,} codes,"
            f" {figure['from_events']:,} from events, {figure['seconds']:.1f} s"
        )
