"""SIGTERM and SIGINT: the first stops the run cleanly (results written, one line, 143/130),
a second ends it at once; either way the rerun finishes with each code exactly once."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time

import polars as pl
import pytest

from pipeline.sandbox import Faults
from tests.generate import make_devices, make_stays
from tests.servers import environment, served, tags_on_doors, wait_for_codes

pytestmark = pytest.mark.slow


def apply_command(tmp_path, source) -> list[str]:
    return [
        sys.executable, "-m", "pipeline", "apply", str(source),
        "--ledger", str(tmp_path / "ledger.sqlite"),
        "--results", str(tmp_path / "results.csv"),
        "--door-rate", "10/2s", "--settle-after", "1",
    ]  # fmt: skip


def hundred_and_twenty_stays(tmp_path, *, seed: int, latency_ms: tuple[float, float]):
    """Six doors with twenty stays each, in a CSV, and a sandbox to serve them (not started)."""
    payload = make_devices(6, seed=seed)
    source = tmp_path / "stays.csv"
    make_stays([(d["device_id"], 20) for d in payload["devices"]], seed=seed).write_csv(source)
    state, server = served(payload, Faults(latency_ms=latency_ms))
    return state, server, source


def start_apply(tmp_path, source, url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        apply_command(tmp_path, source), cwd=tmp_path, env=environment(url),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def assert_rerun_finishes(tmp_path, source, url: str) -> None:
    rerun = subprocess.run(
        apply_command(tmp_path, source), cwd=tmp_path, env=environment(url),
        capture_output=True, timeout=120,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr.decode()


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_the_first_signal_stops_cleanly_and_the_rerun_finishes(tmp_path, signum, exit_code):
    """One signal mid-run: exit 128+n, one line with what was done, the results file for every
    row, the run recorded in the ledger; the rerun creates the rest, each code once."""
    state, server, source = hundred_and_twenty_stays(tmp_path, seed=31, latency_ms=(5.0, 15.0))
    with server as url:
        process = start_apply(tmp_path, source, url)
        wait_for_codes(state, 15, process)
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
        assert process.returncode == exit_code
        last = err.decode().strip().splitlines()[-1]
        results = pl.read_csv(tmp_path / "results.csv")
        created = int((results["outcome"] == "created").sum())
        assert 15 <= created < 120
        name = signal.Signals(signum).name
        assert last.startswith(f"error: stopped by {name}: {created} created, ")
        assert last.endswith("; rerun to finish")
        assert results.height == 120
        with sqlite3.connect(tmp_path / "ledger.sqlite") as db:
            assert db.execute("SELECT exit_code FROM runs").fetchall() == [(exit_code,)]
        assert_rerun_finishes(tmp_path, source, url)
        on_doors = tags_on_doors(state)
    assert sorted(on_doors.values()) == [1] * 120


def test_a_second_signal_ends_at_once_and_the_rerun_finishes(tmp_path):
    """Two SIGTERMs: the process ends at once (143) saying the ledger is safe; the rerun
    settles whatever was in flight and finishes: no duplicate, none lost."""
    state, server, source = hundred_and_twenty_stays(tmp_path, seed=32, latency_ms=(200.0, 400.0))
    with server as url:
        process = start_apply(tmp_path, source, url)
        wait_for_codes(state, 10, process)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 143
        assert "stopped at once by a second SIGTERM; the ledger is safe" in err.decode()
        assert_rerun_finishes(tmp_path, source, url)
        on_doors = tags_on_doors(state)
    assert sorted(on_doors.values()) == [1] * 120


def test_status_stops_on_sigterm_with_one_line(tmp_path):
    """status signalled while Seam is slow to answer: exit 143, one line, the run recorded."""
    payload = make_devices(2, seed=33)
    stays = make_stays([(d["device_id"], 3) for d in payload["devices"]], seed=33)
    source = tmp_path / "stays.csv"
    stays.write_csv(source)
    faults = Faults()
    state, server = served(payload, faults)
    with server as url:
        subprocess.run(
            apply_command(tmp_path, source), cwd=tmp_path, env=environment(url),
            capture_output=True, timeout=60, check=True,
        )  # fmt: skip
        asked = state.requests[("/access_codes/list", 200)]
        faults.latency_ms = (3_000.0, 3_000.0)
        process = subprocess.Popen(
            [
                sys.executable, "-m", "pipeline", "status",
                "--ledger", str(tmp_path / "ledger.sqlite"),
                "--results", str(tmp_path / "status.csv"),
            ],
            cwd=tmp_path, env=environment(url),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while state.requests[("/access_codes/list", 200)] == asked:  # until it has asked Seam
            assert process.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)  # while it waits for the answer
        _, err = process.communicate(timeout=30)
        faults.latency_ms = (0.0, 0.0)
    assert process.returncode == 143
    assert err.decode().strip().splitlines()[-1].startswith("error: stopped by SIGTERM")
    with sqlite3.connect(tmp_path / "ledger.sqlite") as db:
        assert db.execute("SELECT command, exit_code FROM runs ORDER BY started_at").fetchall()[
            -1
        ] == ("status", 143)
