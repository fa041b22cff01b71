"""Sandbox benchmark: its own request throughput on loopback, and list latency at 100k codes.

The server runs in its own process (as `oracode-provision sandbox`), the load from this one, so
the two share the machine's two cores the way a real run and the sandbox would.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import httpx

from tests.generate import make_devices

KEY = {"Authorization": "Bearer seam_bench"}


@contextmanager
def sandbox_process(devices: Path, *extra: str) -> Iterator[str]:
    """Start `oracode-provision sandbox` on a free loopback port; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "sandbox",
            "--port",
            str(port),
            "--devices",
            str(devices),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(f"{url}/devices/list", json={"limit": 1}, headers=KEY)
                break
            except httpx.ConnectError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("sandbox did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


async def _throughput(
    url: str, path: str, bodies: list[dict[str, object]], workers: int
) -> tuple[float, dict[int, int]]:
    statuses: dict[int, int] = {}
    queue = iter(bodies)
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    async with httpx.AsyncClient(base_url=url, headers=KEY, limits=limits, timeout=30) as client:

        async def worker() -> None:
            for body in queue:
                answer = await client.post(path, json=body)
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for _ in range(workers):
                group.start_soon(worker)
        elapsed = time.perf_counter() - started
    return len(bodies) / elapsed, statuses


def _create_bodies(devices: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """Valid creates for the generated doors' Guest level (15:00-11:00 local), spread over dates."""
    doors = devices["devices"]
    bodies = []
    for n in range(count):
        device = doors[n % len(doors)]
        zone = ZoneInfo(device["properties"]["dormakaba_oracode_metadata"]["iana_timezone"])
        start = dt.date(2027, 1, 1) + dt.timedelta(days=(n // len(doors)) % 700)
        bodies.append(
            {
                "device_id": device["device_id"],
                "is_offline_access_code": True,
                "starts_at": dt.datetime.combine(start, dt.time(15), zone).isoformat(),
                "ends_at": dt.datetime.combine(
                    start + dt.timedelta(days=2), dt.time(11), zone
                ).isoformat(),
                "name": f"bench {n}",
            }
        )
    return bodies


def _latencies(url: str, body: dict[str, object], rounds: int) -> list[float]:
    samples = []
    with httpx.Client(base_url=url, headers=KEY, timeout=30) as client:
        for _ in range(rounds):
            started = time.perf_counter()
            answer = client.post("/access_codes/list", json=body)
            samples.append((time.perf_counter() - started) * 1000)
            answer.raise_for_status()
    return samples


def run() -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        devices = make_devices(1_000)
        path = Path(folder) / "devices.json"
        path.write_text(json.dumps(devices))
        with sandbox_process(path, "--door-rate", "off") as url:
            reads = [{"device_id": devices["devices"][n % 1000]["device_id"]} for n in range(4_000)]
            for workers in (4, 32):
                figures[f"get_rps_{workers}"], _ = anyio.run(
                    _throughput, url, "/devices/get", reads, workers
                )
            creates = _create_bodies(devices, 4_000)
            figures["create_rps"], statuses = anyio.run(
                _throughput, url, "/access_codes/create", creates, 4
            )
            figures["create_errors"] = sum(v for k, v in statuses.items() if k != 200)
            httpx.post(
                f"{url}/_sandbox/seed_codes", json={"per_door": 96}, headers=KEY, timeout=120
            )
            figures["codes_held"] = httpx.get(f"{url}/_sandbox/stats").json()["codes"]
            door = devices["devices"][7]["device_id"]
            plain = _latencies(url, {"device_id": door}, 200)
            searched = _latencies(url, {"device_id": door, "search": "bench 7"}, 200)
            figures["list_p50_ms"], figures["list_p95_ms"] = _p50_p95(plain)
            figures["search_p50_ms"], figures["search_p95_ms"] = _p50_p95(searched)
            listed = httpx.post(f"{url}/access_codes/list", json={"device_id": door}, headers=KEY)
            figures["codes_on_door"] = len(listed.json()["access_codes"])
    return figures


def _p50_p95(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1]


def report(figures: dict[str, float]) -> None:
    print("== sandbox on loopback (server process + load process, 2 cores) ==")
    print(f"  /devices/get, 4 connections    {figures['get_rps_4']:>8,.0f} requests/s")
    print(f"  /devices/get, 32 connections   {figures['get_rps_32']:>8,.0f} requests/s")
    print(
        f"  /access_codes/create, 4 conn.  {figures['create_rps']:>8,.0f} requests/s "
        f"(no rate limit; {figures['create_errors']:.0f} errors)"
    )
    print(f"  codes held                     {figures['codes_held']:>8,.0f} over 1,000 doors")
    print(
        f"  /access_codes/list             p50 {figures['list_p50_ms']:.1f} ms, "
        f"p95 {figures['list_p95_ms']:.1f} ms, a door with {figures['codes_on_door']:.0f} codes "
        "(target ≤ 50 ms)"
    )
    print(
        f"  ... with search                p50 {figures['search_p50_ms']:.1f} ms, "
        f"p95 {figures['search_p95_ms']:.1f} ms"
    )
