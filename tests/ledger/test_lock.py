"""The run lock: two apply runs on one ledger never overlap, however the ledger is named; a
killed run's lock is taken over; two writers that got past it still can't both send a tag."""

from __future__ import annotations

import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import polars as pl
import pytest

from pipeline.common.errors import UsageError
from pipeline.ledger.lock import RunLocked, run_lock
from pipeline.ledger.store import Ledger
from pipeline.sandbox import Faults
from tests.generate import make_devices, make_stays
from tests.servers import environment, served, tags_on_doors, wait_for_codes

pytestmark = pytest.mark.anyio


async def test_a_second_run_is_refused_naming_the_holder(tmp_path):
    """While one run holds the lock, another gets RunLocked (exit 3) naming the holder's run,
    pid, host and start; the lock is on the ledger file itself (0600), with no side file."""
    path = tmp_path / "ledger.sqlite"
    async with run_lock(path):
        ledger = await Ledger.open(path)
        run_id = await ledger.start_run("apply", [])
        with pytest.raises(RunLocked) as refused:
            async with run_lock(path):
                pass
        await ledger.close()
    line = refused.value.one_line()
    assert refused.value.exit_code == 3
    assert f"run {run_id}, pid {os.getpid()} on host {socket.gethostname()}" in line
    assert "--wait-for-lock" in line
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not list(tmp_path.glob("*.lock"))


@pytest.mark.parametrize("how", ["symlink", "relative path"])
async def test_the_lock_holds_for_the_ledger_reached_by_another_name(tmp_path, monkeypatch, how):
    """A symlink or a relative path from another folder to a held ledger is refused too."""
    path = tmp_path / "ledger.sqlite"
    other = tmp_path / "elsewhere" / "other-name.sqlite"
    other.parent.mkdir()
    async with run_lock(path):
        if how == "symlink":
            other.symlink_to(path)
        else:
            monkeypatch.chdir(other.parent)
            other = Path("..") / "ledger.sqlite"
        with pytest.raises(RunLocked):
            async with run_lock(other):
                pass


async def test_a_ledger_with_a_hard_link_is_refused(tmp_path):
    """A hard link to the ledger is refused (exit 2) by either name: SQLite's write-ahead log
    goes by name, so runs through two names would not share it."""
    path = tmp_path / "ledger.sqlite"
    async with run_lock(path):
        pass
    os.link(path, tmp_path / "another-name.sqlite")
    for name in (path, tmp_path / "another-name.sqlite"):
        with pytest.raises(UsageError) as refused:
            async with run_lock(name):
                pass
        assert refused.value.exit_code == 2
        assert "has 2 hard links" in refused.value.one_line()


async def test_a_second_run_waits_for_the_first_when_asked(ledger_location):
    """--wait-for-lock: the second run gets the lock as soon as the first lets it go (a file's
    lock, or a PostgreSQL ledger's advisory lock)."""
    ledger = ledger_location
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


@pytest.mark.slow
async def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path, caplog):
    """A run killed while holding the lock leaves its run unfinished; the next run takes the
    lock over and names the run it took it from, once: after a run finished, it isn't named
    again."""
    ledger = tmp_path / "ledger.sqlite"
    holder_script = textwrap.dedent(
        f"""
        import anyio
        from pathlib import Path
        from pipeline.ledger.store import Ledger
        from pipeline.ledger.lock import run_lock
        async def hold():
            path = Path({str(ledger)!r})
            async with run_lock(path):
                ledger = await Ledger.open(path)
                await ledger.start_run("apply", [])
                print("held", flush=True)
                await anyio.sleep(60)
        anyio.run(hold)
        """
    )
    process = await anyio.open_process([sys.executable, "-c", holder_script])
    assert process.stdout is not None
    assert (await process.stdout.receive()).strip() == b"held"
    with pytest.raises(RunLocked) as refused:
        async with run_lock(ledger):
            pass
    assert f"pid {process.pid}" in refused.value.one_line()
    process.send_signal(signal.SIGKILL)
    await process.wait()
    with caplog.at_level(logging.WARNING, logger="pipeline.ledger.lock"):
        async with run_lock(ledger):
            opened = await Ledger.open(ledger)
            run_id = await opened.start_run("apply", [])
            await opened.finish_run(run_id, 0, {})
            await opened.close()
        assert f"pid {process.pid}" in caplog.records[0].holder
        caplog.clear()
        async with run_lock(ledger):
            pass
        assert not caplog.records


async def test_two_ledger_connections_past_the_lock_never_both_send_a_tag(tmp_path):
    """Two processes' ledgers on one file that both read a code as pending: the compare-and-set
    into sending lets exactly one of them send."""
    path = tmp_path / "ledger.sqlite"
    first, second = await Ledger.open(path), await Ledger.open(path)
    row = {
        "idempotency_tag": "opl-00000000000000000001",
        "reservation_id": "R1",
        "device_id": "door-1",
        "door_name": "Room 1",
        "site_name": "Site",
        "user_level_name": "Guest",
        "starts_at": "2027-01-01T15:00:00+00:00",
        "ends_at": "2027-01-02T11:00:00+00:00",
        "max_time_rounding": "1h",
        "name": "R1 [opl-00000000000000000001]",
    }
    runs = [await first.start_run("apply", []), await second.start_run("apply", [])]
    for ledger, run_id in zip((first, second), runs, strict=True):
        registered = await ledger.register(run_id, [row])
        assert registered[row["idempotency_tag"]].state == "pending"
    won = [
        await ledger.mark_sending(row["idempotency_tag"], run_id)
        for ledger, run_id in zip((first, second), runs, strict=True)
    ]
    await first.close()
    await second.close()
    assert won == [1, None]  # the first made attempt 1; the second lost the compare-and-set


@pytest.mark.slow
@pytest.mark.parametrize(("wait", "second_name"), [(0, "same"), (0, "symlink"), (120, "same")])
def test_two_apply_processes_on_one_ledger_create_each_code_once(tmp_path, wait, second_name):
    """Two apply processes started together on one ledger (the second maybe through a symlink,
    from another folder): each code exists once. Without --wait-for-lock the
    second exits 3 naming the first; with it, it finds all created."""
    payload = make_devices(6, seed=9)
    stays = make_stays([(d["device_id"], 15) for d in payload["devices"]], seed=9)
    source = tmp_path / "stays.csv"
    stays.write_csv(source)
    # Fifteen codes a door at 10 per 5 s: the first run holds the lock for 5 s after its
    # first code, time enough for the second to start.
    state, server = served(payload, Faults(latency_ms=(5.0, 15.0)), door_rate=(10, 5.0))
    ledger = tmp_path / "ledger.sqlite"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def command(name: str, ledger_name: str) -> list[str]:
        return [
            sys.executable, "-m", "pipeline", "apply", str(source),
            "--ledger", ledger_name,
            "--results", str(tmp_path / f"results-{name}.csv"),
            "--door-rate", "10/5s", "--wait-for-lock", str(wait),
        ]  # fmt: skip

    with server as url:
        first = subprocess.Popen(
            command("first", str(ledger)), cwd=tmp_path, env=environment(url),
            stderr=subprocess.PIPE,
        )  # fmt: skip
        wait_for_codes(state, 1, first)  # the first holds the lock: it is creating
        second_ledger = elsewhere / "ledger-by-another-name.sqlite"
        if second_name == "symlink":
            second_ledger.symlink_to(ledger)
        else:
            second_ledger = ledger
        second = subprocess.run(
            command("second", str(second_ledger)),
            cwd=elsewhere,
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
