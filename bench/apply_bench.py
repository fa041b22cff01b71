"""Creation makespan against the lower bound, ours side by side with the naive ways.

The sandbox runs in its own process with 40-120 ms latency, a global limit and a per-door limit
scaled to 10 creates per 2 s (Seam's shape, 30 times faster), so a run takes about a minute. The
workload is Zipf-skewed over 320 doors. Each client runs in this process on a freshly reset
sandbox; the baselines stop after a time budget and their makespan is extrapolated from the
codes they finished (said so in the table).

Lower bound: LB = max(N / G, max over doors of (n_d - b) / r), b = the door's burst (10), r its
rate; efficiency = LB / makespan.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import polars as pl
from aiolimiter import AsyncLimiter

from bench.sandbox_bench import KEY, sandbox_process
from pipeline.apply.creator import create_body
from pipeline.apply.run import ApplySettings, apply_plan, apply_session
from pipeline.catalog.doors import DeviceCatalog
from pipeline.commands import apply_files
from pipeline.common.rates import Rate
from pipeline.common.settings import BudgetOptions, Config, SeamCredentials
from pipeline.ledger.location import LedgerLocation, PostgresLedger
from pipeline.ledger.store import Ledger
from pipeline.plan.planner import plan_reservations
from pipeline.seam.client import SeamClient
from tests.generate import make_devices, make_stays
from tests.postgres import running_server

DOORS = 320
CODES = 3_200
ZIPF = 0.8
DOOR_RATE = Rate(10, 2.0)
GLOBAL_RATE = 100.0
LATENCY = "40-120"
BASELINE_BUDGET = 90.0
TAG = re.compile(r"opl-\d{20}")


@dataclass
class Measured:
    name: str
    makespan: float
    creates: int
    requests: int  # creates sent
    seam_requests: int  # every request on Seam's paths (lists, creates, ...)
    rate_limited: int
    duplicates: int
    cpu_per_create_ms: float
    cpu_per_request_ms: float
    extrapolated: bool = False
    learnt: Rate | None = None
    ledger_ms_per_create: float | None = None  # the ledger's thread at work, per code made


def zipf_counts(doors: int, codes: int, exponent: float) -> list[int]:
    """Codes per door, Zipf-distributed, every door at least one, summing to ``codes``."""
    weights = [1 / (rank**exponent) for rank in range(1, doors + 1)]
    scale = codes / sum(weights)
    counts = [max(1, math.floor(w * scale)) for w in weights]
    counts[0] += codes - sum(counts)
    return counts


def lower_bound(counts: list[int], rate: Rate, global_rate: float | None) -> float:
    door_bound = max((n - rate.count) / (rate.count / rate.period) for n in counts)
    return max(door_bound, CODES / global_rate if global_rate else 0.0, 0.0)


async def _sandbox_state(url: str) -> tuple[Counter[str], int, int, int]:
    """(codes per tag, create requests, every request on Seam's paths, 429 answers) on the
    sandbox."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        codes = (await client.get("/_sandbox/codes")).json()["codes"]
        stats = (await client.get("/_sandbox/stats")).json()["requests"]
    tags = Counter(m[0] for c in codes if (m := TAG.search(c.get("name") or "")))
    creates = sum(r["count"] for r in stats if r["path"] == "/access_codes/create")
    everything = sum(r["count"] for r in stats if not r["path"].startswith("/_"))
    limited = sum(r["count"] for r in stats if r["status"] == 429)
    return tags, creates, everything, limited


async def _reset(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        await client.post("/_sandbox/reset")


async def _finish(name: str, url: str, started: float, cpu: float, **extra: Any) -> Measured:
    makespan = time.perf_counter() - started
    cpu_used = time.process_time() - cpu
    tags, creates, everything, limited = await _sandbox_state(url)
    done = len(tags)
    extrapolated = done < CODES
    return Measured(
        name=name,
        makespan=makespan * CODES / max(done, 1) if extrapolated else makespan,
        creates=done,
        requests=creates,
        seam_requests=everything,
        rate_limited=limited,
        duplicates=sum(n - 1 for n in tags.values()),
        cpu_per_create_ms=1000 * cpu_used / max(done, 1),
        cpu_per_request_ms=1000 * cpu_used / max(creates, 1),
        extrapolated=extrapolated,
    )


async def run_ours(
    url: str,
    plan: pl.DataFrame,
    folder: Path,
    name: str,
    settings: ApplySettings,
    ledger: LedgerLocation | None = None,
) -> Measured:
    """``apply_plan`` on a fresh sandbox, its ledger a new SQLite file in ``folder`` or the
    given (empty) one; also measures the ledger's thread time per code made."""
    await _reset(url)
    credentials = SeamCredentials(api_key="seam_bench", endpoint=url)
    location = ledger or folder / f"{name}.sqlite"
    opened = apply_session(credentials, location, settings, "bench", [])
    async with opened as session:
        busy = _time_ledger_work(session.ledger)
        started, cpu = time.perf_counter(), time.process_time()
        applied = await apply_plan(plan, session, settings)
        measured = await _finish(name, url, started, cpu)
    measured.learnt = applied.learnt_door_rate
    measured.ledger_ms_per_create = 1000 * busy[0] / max(measured.creates, 1)
    return measured


def _time_ledger_work(ledger: Ledger) -> list[float]:
    """Add up the seconds the ledger's thread spends on database work (a one-item list that
    grows as it works): its cost per create, whichever database it is."""
    busy = [0.0]
    run_in_thread = ledger._run

    async def timed(function: Callable[[], Any]) -> Any:
        def measured() -> Any:
            started = time.perf_counter()
            try:
                return function()
            finally:
                busy[0] += time.perf_counter() - started

        return await run_in_thread(measured)

    ledger._run = timed  # type: ignore[method-assign]
    return busy


def _retry_after(response: httpx.Response) -> float:
    return float(response.headers.get("retry-after", "1"))


async def run_sequential(url: str, bodies: list[dict[str, Any]]) -> Measured:
    """One create at a time, waiting Retry-After on a 429, as an SDK-style script would."""
    await _reset(url)
    started, cpu = time.perf_counter(), time.process_time()
    async with httpx.AsyncClient(base_url=url, headers=KEY, timeout=60) as client:
        for body in bodies:
            if time.perf_counter() - started > BASELINE_BUDGET:
                break
            response = await client.post("/access_codes/create", json=body)
            # The baseline as written by hand: wait as told, then resend.
            while response.status_code == 429:
                await asyncio.sleep(_retry_after(response))
                response = await client.post("/access_codes/create", json=body)
    return await _finish("sequential loop", url, started, cpu)


async def run_naive(url: str, bodies: list[dict[str, Any]], concurrency: int) -> Measured:
    """asyncio.gather, a semaphore and one global aiolimiter; on 429, wait and resend."""
    await _reset(url)
    started, cpu = time.perf_counter(), time.process_time()
    limiter = AsyncLimiter(GLOBAL_RATE, 1.0)
    semaphore = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, headers=KEY, timeout=60, limits=limits) as client:

        async def create(body: dict[str, Any]) -> None:
            async with semaphore:
                while time.perf_counter() - started < BASELINE_BUDGET:
                    async with limiter:
                        response = await client.post("/access_codes/create", json=body)
                    if response.status_code != 429:
                        return
                    await asyncio.sleep(_retry_after(response))

        await asyncio.gather(*(create(body) for body in bodies))
    return await _finish("naive concurrent", url, started, cpu)


async def _plan(url: str, stays: pl.DataFrame) -> pl.DataFrame:
    credentials = SeamCredentials(api_key="seam_bench", endpoint=url)
    async with SeamClient(credentials) as client:
        catalog = DeviceCatalog.from_devices([d async for d in client.list_devices()])
    reservations = stays.with_columns(
        door_name=pl.lit(None, pl.String),
        site_name=pl.lit(None, pl.String),
        user_level=pl.lit(None, pl.String),
        source_file=pl.lit("bench"),
        source_line=pl.int_range(pl.len(), dtype=pl.Int64) + 2,
    ).with_row_index("row")
    return plan_reservations(reservations, catalog, Config(), now=dt.datetime.now(dt.UTC))


NIGHTLY_DOORS = 300


async def run_nightly(url: str, payload: dict[str, Any], folder: Path) -> dict[str, float]:
    """A nightly rerun as operators run it (``apply_files``, budgeted doors): last night's file
    again with one new stay on each of 300 doors. Returns requests per new code, as the
    sandbox counted them."""
    await _reset(url)
    doors = [(d["device_id"], 1) for d in payload["devices"][:NIGHTLY_DOORS]]
    last_night = make_stays(doors, seed=1)
    tonight = pl.concat([last_night, make_stays(doors, seed=2)])
    os.environ.update(SEAM_API_KEY="seam_bench", SEAM_ENDPOINT=url)
    settings = ApplySettings(door_rate=DOOR_RATE, global_rate=GLOBAL_RATE)
    budget = BudgetOptions(per_door=50)
    ledger = folder / "nightly.sqlite"
    for night, stays in (("last", last_night), ("tonight", tonight)):
        source = folder / f"{night}.csv"
        stays.write_csv(source)
        _, _, before, _ = await _sandbox_state(url)
        applied = await apply_files(
            [source], ledger_path=ledger, out=folder / f"{night}.csv.parquet",
            settings=settings, budget=budget,
        )  # fmt: skip
        _, _, after, _ = await _sandbox_state(url)
    created = int((applied.result.results["outcome"] == "created").sum())
    return {
        "new_codes": created,
        "requests": after - before,
        "per_code": (after - before) / created,
    }


def run() -> dict[str, Any]:
    counts = zipf_counts(DOORS, CODES, ZIPF)
    payload = make_devices(DOORS, seed=17)
    stays = make_stays(
        [(d["device_id"], n) for d, n in zip(payload["devices"], counts, strict=True)]
    )
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        devices = folder / "devices.json"
        devices.write_text(json.dumps(payload))
        door_rate = f"{DOOR_RATE.count}/{DOOR_RATE.period:g}s"
        with sandbox_process(
            devices, "--door-rate", door_rate, "--global-rate", f"{GLOBAL_RATE:g}",
            "--latency-ms", LATENCY,
        ) as url:  # fmt: skip

            async def everything() -> dict[str, Any]:
                plan = await _plan(url, stays)
                planned = plan.filter(pl.col("outcome") == "planned")
                bodies = [create_body(row) for row in planned.iter_rows(named=True)]
                configured = ApplySettings(door_rate=DOOR_RATE, global_rate=GLOBAL_RATE)
                learning = ApplySettings(door_rate=None, global_rate=None)
                on_postgres = PostgresLedger(server.new_database("bench"))
                return {
                    "nightly": await run_nightly(url, payload, folder),
                    "planned": planned.height,
                    "results": [
                        await run_ours(url, plan, folder, "apply (limits configured)", configured),
                        await run_ours(
                            url, plan, folder, "... PostgreSQL ledger", configured, on_postgres
                        ),
                        await run_ours(url, plan, folder, "apply (limits learnt)", learning),
                        await run_naive(url, bodies, configured.concurrency),
                        await run_sequential(url, bodies),
                    ],
                }

            # The PostgreSQL ledger's server: throwaway, on this machine, fsync on (as the
            # tests start it).
            with running_server() as server:
                measured = anyio.run(everything)
    return {
        "counts": counts,
        "lower_bound": lower_bound(counts, DOOR_RATE, GLOBAL_RATE),
        **measured,
    }


def report(figures: dict[str, Any]) -> None:
    counts, lb = figures["counts"], figures["lower_bound"]
    print(
        f"\nCreation makespan: {figures['planned']} codes over {len(counts)} doors "
        f"(Zipf {ZIPF}, biggest door {max(counts)}, median {sorted(counts)[len(counts) // 2]}), "
        f"door limit {DOOR_RATE.count}/{DOOR_RATE.period:g}s, global {GLOBAL_RATE:g}/s, "
        f"latency {LATENCY} ms, sandbox in its own process; LB = {lb:.1f} s"
    )
    header = f"{'client':<28}{'makespan s':>12}{'efficiency':>12}{'creates/s':>11}"
    header += f"{'creates':>9}{'req/code':>10}{'429s':>7}{'dupes':>7}"
    header += f"{'CPU ms/create':>15}{'ms/request':>12}{'ledger ms/create':>18}"
    print(header)
    ours = figures["results"][0]
    for m in figures["results"]:
        mark = "*" if m.extrapolated else " "
        ledger = "" if m.ledger_ms_per_create is None else f"{m.ledger_ms_per_create:>18.2f}"
        print(
            f"{m.name:<28}{m.makespan:>11.1f}{mark}{lb / m.makespan:>12.3f}"
            f"{CODES / m.makespan:>11.1f}{m.requests:>9}"
            f"{m.seam_requests / max(m.creates, 1):>10.2f}"
            f"{m.rate_limited:>7}{m.duplicates:>7}"
            f"{m.cpu_per_create_ms:>15.2f}{m.cpu_per_request_ms:>12.2f}{ledger}"
        )
    print("ledger ms/create: the ledger's thread at work (SQLite, or PostgreSQL's round trips)")
    for m in figures["results"][3:]:
        print(f"ours (configured) vs {m.name}: {m.makespan / ours.makespan:.1f}x faster")
    print(f"* stopped after {BASELINE_BUDGET:g} s; makespan extrapolated from its codes created")
    nightly = figures["nightly"]
    print(
        f"nightly rerun, {NIGHTLY_DOORS} budgeted doors with one new stay each:"
        f" {nightly['requests']} requests for {nightly['new_codes']} new codes ="
        f" {nightly['per_code']:.3f} per new code (target <= 2.1; floor 2.0)"
    )
    naive = figures["results"][3]
    print(
        f"CPU target 0.5 ms/create; the naive client, which does little but httpx's POST, spends"
        f" {naive.cpu_per_request_ms:.2f} ms per request on this machine"
    )


if __name__ == "__main__":
    report(run())
