"""apply as operators run it: a real process against the sandbox served over HTTP.

Killed with SIGKILL at random moments and rerun until it finishes, each reservation has exactly
one code; the CLI's exit codes and lines; the API key in no file and no log.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import polars as pl
import pytest

from pipeline.cli import main
from pipeline.sandbox import Faults
from tests.apply_helpers import API_KEY
from tests.generate import make_devices, make_stays
from tests.ledger.helpers import ledger_argument
from tests.paths import ROOT, SANDBOX_DEVICES
from tests.servers import environment, served, tags_on_doors

SAMPLE = ROOT / "inputs" / "reservations-sample.csv"
SAMPLE_CONFIG = ROOT / "inputs" / "pipeline.toml"


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_killed_at_random_moments_then_rerun_each_code_exists_once(tmp_path, seed, ledger_location):
    """SIGKILL mid-run (several times), rerun until exit 0: one code per reservation, no loss;
    with the ledger in a SQLite file or in PostgreSQL (whose session, and run lock, die with
    the process)."""
    ledger = ledger_argument(ledger_location)
    rng = random.Random(seed)
    payload = make_devices(15, seed=seed)
    stays = make_stays([(d["device_id"], 20) for d in payload["devices"]], seed=seed)
    source = tmp_path / "stays.csv"
    stays.write_csv(source)
    faults = Faults(drop_after=0.1, latency_ms=(5.0, 15.0))
    state, server = served(payload, faults)
    command = [
        sys.executable, "-m", "pipeline", "apply", str(source),
        "--ledger", ledger,
        "--results", str(tmp_path / "results.csv"),
        "--door-rate", "10/2s",
        # The sandbox makes a code before it drops the answer: a second settles it.
        "--settle-after", "1",
    ]  # fmt: skip
    with server as url:
        kills = 0
        for attempt in range(8):
            process = subprocess.Popen(
                command,
                cwd=tmp_path,
                env=environment(url),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            # The first three are killed while creating: once the sandbox holds a code more
            # than before, then at a random moment within the next second.
            if attempt < 3 and creating(state, process):
                time.sleep(rng.uniform(0.0, 1.0))
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    process.wait()
                    kills += 1
                    continue
            process.wait(timeout=120)
            if process.returncode == 0:
                break
            assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()
        assert process.returncode == 0
        assert kills >= 1
        on_doors = tags_on_doors(state)
    results = pl.read_csv(tmp_path / "results.csv", schema_overrides={"code": pl.String})
    assert results.height == stays.height
    assert set(results["outcome"]) <= {"created", "already_created"}
    assert sorted(on_doors) == sorted(results["idempotency_tag"])
    assert set(on_doors.values()) == {1}


def creating(state, process: subprocess.Popen, within: float = 60.0) -> bool:
    """Waits until the sandbox holds a code more than now (True), or the process has ended
    (False)."""
    before = len(state.codes)
    deadline = time.monotonic() + within
    while len(state.codes) == before:
        if process.poll() is not None:
            return False
        assert time.monotonic() < deadline, "apply made no code within a minute"
        time.sleep(0.01)
    return True


def run_cli(args: list[str], url: str, key: str, monkeypatch) -> int:
    for name, value in environment(url, key).items():
        if name.startswith("SEAM_"):
            monkeypatch.setenv(name, value)
    return main(args)


@pytest.mark.slow
def test_a_refused_key_exits_3_with_one_line(tmp_path, monkeypatch, capsys):
    """A revoked key: exit 3, the endpoint line, then one error line saying which variable to
    check."""
    faults = Faults(revoked_keys={API_KEY})
    state, server = served(json.loads(SANDBOX_DEVICES.read_text()), faults, door_rate=None)
    ledger = tmp_path / "ledger.sqlite"
    with server as url:
        code = run_cli(
            ["apply", str(SAMPLE), "--ledger", str(ledger), "--results", str(tmp_path / "r.csv")],
            url,
            API_KEY,
            monkeypatch,
        )
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 3
    assert len(lines) == 2
    assert lines[0] == f"info: talking to {url} (not Seam's production endpoint)"
    assert lines[1].startswith("error: Seam refused the API key: Seam error unauthorized")
    assert "check SEAM_API_KEY" in lines[1]
    assert state.codes == {}
    with sqlite3.connect(ledger) as db:
        assert db.execute("SELECT exit_code FROM runs").fetchall() == [(3,)]


def test_missing_key_exits_2_before_anything_is_written(tmp_path, monkeypatch, capsys):
    """No SEAM_API_KEY: exit 2, one line naming the variable, no ledger created."""
    for name in list(os.environ):
        if name.startswith("SEAM_"):
            monkeypatch.delenv(name)
    ledger = tmp_path / "ledger.sqlite"
    code = main(["apply", str(SAMPLE), "--ledger", str(ledger)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == ["error: no Seam API key: this command talks to the Seam API (set SEAM_API_KEY)"]
    assert not ledger.exists()


DOORS_HINT = "set SEAM_API_KEY, or pass --devices FILE, a saved list of the doors"


@pytest.mark.parametrize(
    ("command", "hint"),
    [
        (["plan", str(SAMPLE)], DOORS_HINT),
        (["doors"], DOORS_HINT),
        (["apply", str(SAMPLE), "--ledger", "ledger.sqlite"], "set SEAM_API_KEY"),
        (["nightly", str(SAMPLE), "--ledger", "ledger.sqlite"], "set SEAM_API_KEY"),
    ],
)
def test_a_missing_key_s_line_offers_only_what_the_command_can_do(
    monkeypatch, capsys, command, hint
):
    """Without a key, plan and doors suggest --devices (they take one); the commands that
    must talk to Seam (apply, nightly) suggest only the key."""
    for name in list(os.environ):
        if name.startswith("SEAM_"):
            monkeypatch.delenv(name)
    main(command)
    said = [line for line in capsys.readouterr().err.splitlines() if "no Seam API key" in line]
    assert said
    assert all(line.endswith(f"the Seam API ({hint})") for line in said)


@pytest.mark.slow
def test_json_logs_and_no_api_key_in_any_output(tmp_path, monkeypatch, capsys):
    """--log-format json: one JSON object per line; the key is in no log, ledger or result."""
    faults = Faults(drop_after=0.5)
    state, server = served(json.loads(SANDBOX_DEVICES.read_text()), faults, door_rate=None)
    results = tmp_path / "results.jsonl"
    with server as url:
        code = run_cli(
            [
                "apply", str(SAMPLE), "--config", str(SAMPLE_CONFIG),
                "--ledger", str(tmp_path / "ledger.sqlite"), "--results", str(results),
                "--log-format", "json", "--settle-after", "0.5",
            ],
            url,
            API_KEY,
            monkeypatch,
        )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 1  # the sample has rows meant to be rejected
    logs = [json.loads(line) for line in err.splitlines()]
    assert any(entry["message"].startswith("create outcome unknown") for entry in logs)
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in logs)
    assert "results:" in out
    assert len(state.codes) > 0
    written = [results, *tmp_path.glob("ledger.sqlite*")]
    for text in (out, err, *(path.read_bytes().decode("latin-1") for path in written)):
        assert API_KEY not in text
        assert "5ecret" not in text
    assert all(path.stat().st_mode & 0o077 == 0 for path in written)


def test_results_path_with_a_wrong_extension_is_refused_first(tmp_path, monkeypatch, capsys):
    """--results x.txt: exit 2 before any request or ledger (a request would have met the
    closed port and ended in exit 3)."""
    monkeypatch.setenv("SEAM_API_KEY", API_KEY)
    monkeypatch.setenv("SEAM_ENDPOINT", "http://127.0.0.1:9")
    code = main(
        ["apply", str(SAMPLE), "--ledger", str(tmp_path / "l.sqlite"), "--results", "x.txt"]
    )
    assert code == 2
    assert "extension '.txt'" in capsys.readouterr().err
    assert not (tmp_path / "l.sqlite").exists()
