"""The ledger in PostgreSQL as teams run it: real ``apply`` processes on one database from two
working folders (the URL in ``ORACODE_LEDGER``), a run whose database connection is cut in the
middle, and ``status``, ``report`` and ``pins`` reading it. The server is the session's
throwaway one (``tests.postgres``); the sandbox serves over HTTP in a thread.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import anyio
import polars as pl
import pytest

from pipeline.apply.policy import CreatePolicy
from pipeline.apply.run import ApplySettings, apply_plan, apply_session
from pipeline.common.settings import SeamCredentials
from pipeline.ledger.location import PostgresLedger
from pipeline.sandbox import Faults
from tests.apply_helpers import API_KEY
from tests.generate import make_devices, make_stays
from tests.ledger.helpers import query
from tests.servers import environment, served, tags_on_doors, wait_for_codes

pytestmark = pytest.mark.slow


def stays_file(folder: Path, payload: dict, per_door: int) -> Path:
    source = folder / "stays.csv"
    make_stays([(d["device_id"], per_door) for d in payload["devices"]], seed=3).write_csv(source)
    return source


def apply_command(source: Path, results: Path, *more: str) -> list[str]:
    return [
        sys.executable, "-m", "pipeline", "apply", str(source), "--results", str(results),
        "--door-rate", "10/2s", "--settle-after", "1", *more,
    ]  # fmt: skip


def on_postgres(url: str, ledger: str) -> dict[str, str]:
    """A process's environment: the sandbox's, and the ledger in ``ORACODE_LEDGER``."""
    return {**environment(url), "ORACODE_LEDGER": ledger}


def test_two_applies_from_two_folders_on_one_ledger_make_each_code_once(tmp_path, postgres_url):
    """Two hosts' cron jobs at once (two folders, one database): one takes the run lock, the
    other waits for it, finds every code made, and sends nothing; each code exists once."""
    payload = make_devices(4, seed=11)
    state, server = served(payload, Faults(latency_ms=(5.0, 15.0)))
    folders = [tmp_path / "host-a", tmp_path / "host-b"]
    for folder in folders:
        folder.mkdir()
    source = stays_file(tmp_path, payload, 15)
    with server as url:
        processes = [
            subprocess.Popen(
                apply_command(source, folder / "results.csv", "--wait-for-lock", "120"),
                cwd=folder,
                env=on_postgres(url, postgres_url),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for folder in folders
        ]
        for process in processes:
            assert process.wait(timeout=180) == 0, process.stderr.read().decode()
        on_doors = tags_on_doors(state)
    outcomes = [pl.read_csv(folder / "results.csv")["outcome"] for folder in folders]
    assert sorted(sorted(set(outcome)) for outcome in outcomes) == [
        ["already_created"],
        ["created"],
    ]
    assert len(on_doors) == 60
    assert set(on_doors.values()) == {1}
    runs = query(PostgresLedger(postgres_url), "SELECT exit_code FROM runs ORDER BY started_at")
    assert runs == [(0,), (0,)]


@pytest.mark.anyio
async def test_two_runs_past_the_lock_never_both_send_a_tag(tmp_path, monkeypatch, postgres_url):
    """Two apply runs on one PostgreSQL ledger at once *without* the run lock (as if it had been
    lost), with a fifth of the creates' answers lost so that both settle codes the other may be
    sending: the compare-and-set into ``sending`` lets one send each attempt, and a move out
    of ``sending`` names the attempt it is about, so no code exists twice."""
    payload = make_devices(3, seed=12)
    faults = Faults(latency_ms=(5.0, 15.0), drop_after=0.2)
    state, server = served(payload, faults, door_rate=(10, 1.0))
    source = stays_file(tmp_path, payload, 20)
    ledger = PostgresLedger(postgres_url)
    settings = ApplySettings(
        door_rate=None, global_rate=None, policy=CreatePolicy(settle_after=1.0)
    )
    with server as url:
        from pipeline.commands import plan_files  # the plan, as apply makes it

        monkeypatch.setenv("SEAM_API_KEY", API_KEY)
        monkeypatch.setenv("SEAM_ENDPOINT", url)
        planned = await plan_files([source])
        credentials = SeamCredentials(api_key=API_KEY, endpoint=url)

        async def one_run() -> pl.DataFrame:
            async with apply_session(credentials, ledger, settings, "apply", []) as session:
                return (await apply_plan(planned.plan, session, settings)).results

        results: list[pl.DataFrame] = []

        async def run_and_keep() -> None:
            results.append(await one_run())

        async with anyio.create_task_group() as group:
            group.start_soon(run_and_keep)
            group.start_soon(run_and_keep)
        on_doors = tags_on_doors(state)
    assert len(on_doors) == 60
    assert set(on_doors.values()) == {1}
    # A run that ends while the other still has a tag out reports it as not known yet.
    for frame in results:
        assert set(frame["outcome"]) <= {"created", "already_created", "failed"}
        assert set(frame.filter(pl.col("outcome") == "failed")["reason"]) <= {"outcome_unknown"}


def cut_mid_run(
    tmp_path: Path, postgres_url: str, seed: int, cut: Callable[[], None]
) -> tuple[str, dict[str, int], Counter[str]]:
    """Apply 120 stays on six doors with the ledger at ``postgres_url``; once 20 codes exist,
    ``cut`` (a connection of the run's); the run must exit 3 with one error line, which is
    returned with the codes on the doors then; then a rerun that must finish, and the codes
    on the doors after it."""
    payload = make_devices(6, seed=seed)
    state, server = served(payload, Faults(latency_ms=(20.0, 40.0)))
    source = stays_file(tmp_path, payload, 20)
    with server as url:
        process = subprocess.Popen(
            apply_command(source, tmp_path / "results.csv"),
            cwd=tmp_path,
            env=on_postgres(url, postgres_url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for_codes(state, 20, process)
        cut()
        _, stderr = process.communicate(timeout=60)
        made_before_rerun = dict(tags_on_doors(state))
        assert process.returncode == 3, stderr
        lines = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1, stderr
        rerun = subprocess.run(
            apply_command(source, tmp_path / "rerun.csv"),
            cwd=tmp_path,
            env=on_postgres(url, postgres_url),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert rerun.returncode == 0, rerun.stderr
        return lines[0], made_before_rerun, tags_on_doors(state)


def test_a_lost_database_connection_stops_the_run_and_the_rerun_finishes(
    tmp_path, postgres_server, postgres_url
):
    """The database's connections are cut while codes are being created: apply stops sending
    at once and exits 3 with one line (the password masked); every code on the doors was
    committed as sending first; the rerun finishes with each code once."""

    def cut() -> None:
        assert postgres_server.terminate_backends(postgres_url) >= 1

    line, made, on_doors = cut_mid_run(tmp_path, postgres_url, 13, cut)
    # Whichever the run met first: its ledger connection gone, or its lock's.
    assert "lost its connection" in line or "the run lock was lost" in line
    assert postgres_server.password not in line
    assert len(made) < 120
    recorded = dict(
        query(
            PostgresLedger(postgres_url),
            "SELECT idempotency_tag, state FROM codes WHERE state IN ('sending', 'created')",
        )
    )
    assert set(made) <= set(recorded)
    assert len(on_doors) == 120
    assert set(on_doors.values()) == {1}


def test_status_report_and_pins_read_a_postgres_ledger(tmp_path, postgres_url):
    """After an apply on PostgreSQL, ``status``, ``report`` and ``pins`` read the same ledger
    (the URL on the command line): every code is there, with its status and PIN."""
    payload = make_devices(2, seed=14)
    state, server = served(payload, Faults())
    source = stays_file(tmp_path, payload, 3)
    with server as url:
        env = environment(url)

        def run(*words: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "pipeline", *words, "--ledger", postgres_url],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )

        applied = run("apply", str(source), "--results", str(tmp_path / "results.csv"))
        assert applied.returncode == 0, applied.stderr
        status = run("status", "--results", str(tmp_path / "status.csv"))
        assert status.returncode in (0, 1), status.stderr
        report = run("report", "--format", "json", "--out", str(tmp_path / "report.json"))
        assert report.returncode in (0, 1), report.stderr
        pins = run("pins", "--format", "json", "--out", str(tmp_path / "pins.json"))
        assert pins.returncode == 0, pins.stderr
        created = {code.access_code_id: code for code in state.codes.values()}
    statuses = pl.read_csv(tmp_path / "status.csv")
    assert statuses.height == 6
    assert set(statuses["access_code_id"]) == set(created)
    shown = json.loads((tmp_path / "report.json").read_text())
    assert shown["runs"][0]["command"] == "status"
    handed = json.loads((tmp_path / "pins.json").read_text())
    rows = handed if isinstance(handed, list) else handed["pins"]
    assert len(rows) == 6
    pins_known = {code.pin for code in created.values()}
    assert {row["code"] for row in rows} <= pins_known | {None}  # a PIN once its code is set
    assert {row["door_name"] for row in rows} == {
        d["properties"]["name"] for d in payload["devices"]
    }
    for output in (applied, status, report, pins):
        assert postgres_url.split("@")[0].split(":")[-1] not in output.stdout + output.stderr


def test_a_run_whose_lock_connection_dies_stops_and_the_rerun_finishes(
    tmp_path, postgres_server, postgres_url
):
    """Only the run lock's connection is cut (a pooler or a firewall ending that one session):
    the next code the run would mark ``sending`` finds the lock gone in the same statement, so
    the run sends nothing more and exits 3 with one line; the rerun finishes, each code once."""

    def cut() -> None:
        lock = "oracode-provision apply%"
        assert postgres_server.terminate_backends(postgres_url, named=lock) == 1

    line, made, on_doors = cut_mid_run(tmp_path, postgres_url, 15, cut)
    assert "the run lock was lost" in line
    assert len(made) < 120
    assert len(on_doors) == 120
    assert set(on_doors.values()) == {1}


@pytest.mark.parametrize("form", ["driver URL", "libpq string"])
def test_a_driver_url_or_a_libpq_string_is_the_postgresql_ledger(
    tmp_path, postgres_server, postgres_url, form
):
    """ORACODE_LEDGER as SQLAlchemy writes the URL (postgresql+psycopg://) or as libpq's
    key=value string, with the password in it: apply keeps its ledger in PostgreSQL (no
    folder named after the text), and neither its output nor its files show the password."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    payload = make_devices(2, seed=4)
    state, server = served(payload, Faults())
    source = stays_file(tmp_path, payload, 3)
    if form == "driver URL":
        given = postgres_url.replace("postgresql://", "postgresql+psycopg://", 1)
    else:
        given = make_conninfo(**conninfo_to_dict(postgres_url))
    assert postgres_server.password in given
    with server as url:
        done = subprocess.run(
            apply_command(source, tmp_path / "results.csv"),
            cwd=tmp_path,
            env=on_postgres(url, given),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    assert postgres_server.password not in done.stdout + done.stderr
    shown = next(line for line in done.stdout.splitlines() if line.startswith("ledger:"))
    assert "***" in shown
    assert sorted(path.name for path in tmp_path.iterdir()) == ["results.csv", "stays.csv"]
    assert query(PostgresLedger(postgres_url), "SELECT COUNT(*) FROM codes") == [(6,)]
    for path in tmp_path.iterdir():
        assert postgres_server.password.encode() not in path.read_bytes()
    assert set(tags_on_doors(state).values()) == {1}
