"""The run lock: two apply runs on one ledger never overlap; a killed run's lock is taken over."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time

import anyio
import polars as pl
import pytest

from bench.generate import make_devices, make_stays
from pipeline.locking import RunLocked, lock_path, run_lock
from pipeline.sandbox import Faults
from tests.test_apply_process import environment, served, tags_on_doors

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def test_a_second_run_is_refused_naming_the_holder(tmp_path):
    """While one run holds the lock, another gets RunLocked (exit 3) with pid, host, start."""
    ledger = tmp_path / "ledger.sqlite"
    async with run_lock(ledger) as holder:
        with pytest.raises(RunLocked) as refused:
            async with run_lock(ledger):
                pass
    line = refused.value.one_line()
    assert refused.value.exit_code == 3
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in line
    assert holder["started_at"] in line
    assert "--wait-for-lock" in line
    assert stat.S_IMODE(os.stat(lock_path(ledger)).st_mode) == 0o600


async def test_a_second_run_waits_for_the_first_when_asked(tmp_path):
    """--wait-for-lock: the second run gets the lock as soon as the first lets it go."""
    ledger = tmp_path / "ledger.sqlite"
    order: list[str] = []

    async def first() -> None:
        async with run_lock(ledger):
            order.append("first in")
            await anyio.sleep(0.5)
            order.append("first out")

    async def second() -> None:
        await anyio.sleep(0.1)
        async with run_lock(ledger, wait=5):
            order.append("second in")

    async with anyio.create_task_group() as group:
        group.start_soon(first)
        group.start_soon(second)
    assert order == ["first in", "first out", "second in"]


async def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path, caplog):
    """A run killed while holding the lock leaves its name behind; the next run takes over."""
    ledger = tmp_path / "ledger.sqlite"
    holder_script = textwrap.dedent(
        f"""
        import anyio, sys
        from pathlib import Path
        from pipeline.locking import run_lock
        async def hold():
            async with run_lock(Path({str(ledger)!r})):
                print("held", flush=True)
                await anyio.sleep(60)
        anyio.run(hold)
        """
    )
    process = await anyio.open_process([sys.executable, "-c", holder_script])
    assert process.stdout is not None
    assert (await process.stdout.receive()).strip() == b"held"
    with pytest.raises(RunLocked):
        async with run_lock(ledger):
            pass
    process.send_signal(signal.SIGKILL)
    await process.wait()
    left = json.loads(lock_path(ledger).read_text())
    assert left["pid"] == process.pid
    with caplog.at_level(logging.WARNING, logger="pipeline.locking"):
        async with run_lock(ledger) as holder:
            assert holder["pid"] == os.getpid()
            assert json.loads(lock_path(ledger).read_text())["pid"] == os.getpid()
    assert f"pid {process.pid}" in caplog.records[0].holder
    assert lock_path(ledger).read_text() == ""  # released cleanly: nothing to take over


@pytest.mark.slow
@pytest.mark.parametrize("wait", [0, 120])
def test_two_apply_processes_on_one_ledger_create_each_code_once(tmp_path, wait):
    """Two apply processes started together on one ledger: each code exists once. Without
    --wait-for-lock the second exits 3 naming the first; with it, it finds all created."""
    payload = make_devices(6, seed=9)
    stays = make_stays([(d["device_id"], 15) for d in payload["devices"]], seed=9)
    source = tmp_path / "stays.csv"
    stays.write_csv(source)
    state, server = served(payload, Faults(latency_ms=(5.0, 15.0)))

    def command(name: str) -> list[str]:
        return [
            sys.executable, "-m", "pipeline", "apply", str(source),
            "--ledger", str(tmp_path / "ledger.sqlite"),
            "--results", str(tmp_path / f"results-{name}.csv"),
            "--door-rate", "10/2s", "--wait-for-lock", str(wait),
        ]  # fmt: skip

    with server as url:
        first = subprocess.Popen(
            command("first"), cwd=tmp_path, env=environment(url), stderr=subprocess.PIPE
        )
        time.sleep(1.0)  # the first has the lock (it is creating: 90 codes at 10/2 s per door)
        second = subprocess.run(
            command("second"),
            cwd=tmp_path,
            env=environment(url),
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            timeout=180,
        )
        assert first.wait(timeout=180) == 0
        on_doors = tags_on_doors(state)
    assert sorted(on_doors.values()) == [1] * stays.height
    if wait == 0:
        lines = second.stderr.decode().strip().splitlines()
        assert second.returncode == 3
        assert lines[-1].startswith("error: ledger ")
        assert f"pid {first.pid}" in lines[-1]
    else:
        assert second.returncode == 0
        outcomes = pl.read_csv(tmp_path / "results-second.csv")["outcome"]
        assert set(outcomes) == {"already_created"}
