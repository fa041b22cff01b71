"""One writer per Seam workspace: two applies with two ledgers never overlap on one host, and a
ledger refuses a key of another workspace."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
import polars as pl
import pytest

from pipeline.apply.policy import CreatePolicy
from pipeline.apply.run import ApplySettings
from pipeline.apply.workspace import lock_file, run_directory, workspace_lock
from pipeline.common.errors import RunLocked, RunStopped, UsageError
from pipeline.sandbox import Faults
from pipeline.sandbox.state import WORKSPACE_ID
from tests.apply_helpers import SandboxRun, start_sandbox
from tests.generate import make_devices, make_stays
from tests.report.helpers import refresh
from tests.servers import environment, served, tags_on_doors

SETTINGS = ApplySettings(policy=CreatePolicy(settle_after=5.0))


def sandbox_with_two_folders(tmp_path, monkeypatch, faults: Faults) -> tuple[SandboxRun, ...]:
    """One sandbox (30 doors), reached from two folders, each with its own ledger."""
    payload = make_devices(30, seed=31)
    first = start_sandbox(payload, tmp_path / "cron", monkeypatch, faults=faults, seed=3)
    second = SandboxRun(first.state, first.transport, tmp_path / "manual")
    for run in (first, second):
        run.folder.mkdir()
    return first, second


def thirty_doors_of_stays(run: SandboxRun) -> pl.DataFrame:
    return make_stays([(device_id, 10) for device_id in run.state.slots], seed=8)


@pytest.mark.anyio
@pytest.mark.virtual_time
async def test_two_overlapping_applies_with_two_ledgers_make_each_code_once(tmp_path, monkeypatch):
    """A cron job and a manual run from two folders (two ledgers), started together on 300
    codes with a fifth of the answers lost: the second waits for the first (--wait-for-lock),
    then finds every code on its door: each exists once, none is lost."""
    cron, manual = sandbox_with_two_folders(tmp_path, monkeypatch, Faults(drop_after=0.2))
    stays = thirty_doors_of_stays(cron)
    results = {}

    async def apply(run: SandboxRun, name: str) -> None:
        results[name] = await run.apply(stays, SETTINGS, wait_for_lock=3600)

    async with anyio.create_task_group() as group:
        group.start_soon(apply, cron, "cron")
        group.start_soon(apply, manual, "manual")
    on_doors = tags_on_doors(cron.state)
    assert cron.creates(0) + cron.creates(502) + cron.creates(504) > 30  # answers were lost
    assert sorted(on_doors) == sorted(results["cron"].result.results["idempotency_tag"])
    assert set(on_doors.values()) == {1}
    assert len(on_doors) == 300
    outcomes = {name: set(run.result.results["outcome"]) for name, run in results.items()}
    # Whichever got the workspace first made the codes; the other found them all.
    assert sorted(map(sorted, outcomes.values())) == [["already_created"], ["created"]]


@pytest.mark.anyio
@pytest.mark.virtual_time
async def test_a_second_apply_for_the_workspace_exits_3_naming_the_holder(tmp_path, monkeypatch):
    """Without --wait-for-lock, the run from the other folder stops (exit 3) with one line
    naming the workspace, the holder's run, pid, host and ledger; it sent no create."""
    cron, manual = sandbox_with_two_folders(tmp_path, monkeypatch, Faults())
    # Fifteen a door: the first run holds the workspace through a second window of each door.
    stays = make_stays([(device_id, 15) for device_id in cron.state.slots], seed=8)
    refused: list[RunLocked] = []

    async def second() -> None:
        while not cron.creates():  # noqa: ASYNC110 - the sandbox counts, it signals nothing
            await anyio.sleep(0.05)
        with pytest.raises(RunLocked) as raised:
            await manual.apply(stays, SETTINGS)
        refused.append(raised.value)

    async with anyio.create_task_group() as group:
        group.start_soon(second)
        first = await cron.apply(stays, SETTINGS)
    assert first.exit_code == 0
    line = refused[0].one_line()
    assert refused[0].exit_code == 3
    assert line.startswith(
        f"Seam workspace {WORKSPACE_ID} is in use by another apply run on this host:"
        f" run {first.result.run_id}, pid {os.getpid()} on host {socket.gethostname()}, started "
    )
    assert f", ledger {cron.ledger} (wait for it to finish, or pass --wait-for-lock" in line
    assert set(tags_on_doors(cron.state).values()) == {1}
    # The refused run stopped before it planned a code: its ledger holds none.
    with contextlib.closing(sqlite3.connect(manual.ledger)) as db:
        assert db.execute("SELECT COUNT(*) FROM codes").fetchone() == (0,)
        assert db.execute("SELECT exit_code FROM runs").fetchall() == [(3,)]


@pytest.mark.anyio
@pytest.mark.virtual_time
@pytest.mark.usefixtures("restore_logging")
async def test_a_ledger_refuses_a_key_of_another_workspace(tmp_path, monkeypatch, capsys):
    """The ledger records the workspace of the key that first used it; apply and status with
    a key of another workspace stop with exit 2 and one line, before a code is sent or
    looked for."""
    payload = make_devices(2, seed=5)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    stays = make_stays([(d["device_id"], 2) for d in payload["devices"]], seed=2)
    await run.apply(stays)
    creates = run.creates()
    monkeypatch.delenv("SEAM_API_KEY")
    monkeypatch.setenv("SEAM_PERSONAL_ACCESS_TOKEN", "seam_at_someone_else")
    monkeypatch.setenv("SEAM_WORKSPACE_ID", "ws-another")
    line = (
        f"ledger {run.ledger} records the codes of Seam workspace {WORKSPACE_ID}, but the API"
        " key is for workspace ws-another (use that workspace's key with this ledger, or"
        " another --ledger for this workspace)"
    )
    with pytest.raises(UsageError) as refused:
        await run.apply(stays)
    assert refused.value.one_line() == line
    lists = run.state.requests[("/access_codes/list", 200)]
    with pytest.raises(UsageError) as refused:
        await refresh(run, dt.datetime.now(dt.UTC))
    assert refused.value.one_line() == line
    assert run.creates() == creates
    assert run.state.requests[("/access_codes/list", 200)] == lists


class WorkspaceAnswer(httpx.AsyncBaseTransport):
    """Answers /workspaces/get with ``status`` (Seam's error body); the rest goes on."""

    def __init__(self, inner: httpx.AsyncBaseTransport, status: int, error_type: str) -> None:
        self.inner, self.status, self.error_type = inner, status, error_type

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/workspaces/get":
            return await self.inner.handle_async_request(request)
        error = {"type": self.error_type, "message": "no such thing here"}
        headers = {"seam-request-id": "req-9"}
        return httpx.Response(self.status, headers=headers, json={"error": error, "ok": False})


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "error_type", "fix"),
    [
        (404, "not_found", "check SEAM_ENDPOINT (now http://sandbox)"),
        (500, "internal_server_error", "rerun later"),
    ],
)
async def test_a_workspace_seam_cannot_name_stops_the_run_saying_what_was_asked(
    tmp_path, monkeypatch, status, error_type, fix
):
    """/workspaces/get answered 404 (no such endpoint) or 500 (after its retries): exit 3,
    one line naming what was asked, where, Seam's answer and the fix; nothing is sent."""
    payload = make_devices(1, seed=7)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    run.transport = WorkspaceAnswer(run.transport, status, error_type)
    stays = make_stays([(payload["devices"][0]["device_id"], 1)], seed=1)
    with pytest.raises(RunStopped) as stopped:
        await run.apply(stays)
    assert stopped.value.exit_code == 3
    assert stopped.value.one_line() == (
        "could not ask Seam which workspace the key belongs to (/workspaces/get at"
        f" http://sandbox: {status} {error_type}, seam-request-id req-9: no such thing here):"
        f" {fix}"
    )
    assert run.creates() == 0


@pytest.fixture
def shared_parents(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """The host's run directory parents for this test: a /run/lock and a /tmp of its own (the
    machine's are never touched), both there and writable."""
    parents = (tmp_path / "run-lock", tmp_path / "tmp")
    for parent in parents:
        parent.mkdir()
    monkeypatch.setattr("pipeline.apply.workspace.SHARED_PARENTS", parents, raising=False)
    return parents


def test_the_run_directory_is_the_hosts_whatever_the_session_or_user(shared_parents, tmp_path):
    """Without ORACODE_RUN_DIR every run gets the same folder, whatever XDG_RUNTIME_DIR, HOME
    or TMPDIR say: /run/lock's (made 1777 whatever the umask), else the temporary folder's."""
    run_lock, temporary = shared_parents
    sessions = [
        {},
        {"XDG_RUNTIME_DIR": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")},
        {"TMPDIR": str(tmp_path / "elsewhere"), "HOME": "/root"},
    ]
    previous = os.umask(0o077)
    try:
        folders = {run_directory(environ) for environ in sessions}
    finally:
        os.umask(previous)
    assert folders == {run_lock / "oracode-provision"}
    assert stat.S_IMODE((run_lock / "oracode-provision").stat().st_mode) == 0o1777
    (run_lock / "oracode-provision").rmdir()
    run_lock.rmdir()
    assert run_directory({}) == temporary / "oracode-provision"


def test_a_relative_run_directory_is_refused(tmp_path):
    """ORACODE_RUN_DIR must be absolute: a relative one would be a folder per working
    directory (exit 2, one line)."""
    with pytest.raises(UsageError) as refused:
        run_directory({"ORACODE_RUN_DIR": "locks"})
    assert refused.value.exit_code == 2
    assert refused.value.one_line() == (
        "ORACODE_RUN_DIR locks is not an absolute path: runs started from other folders would"
        " each lock a folder of their own (set ORACODE_RUN_DIR to an absolute path, the same"
        " for every run)"
    )
    assert run_directory({"ORACODE_RUN_DIR": str(tmp_path / "given")}) == tmp_path / "given"


def test_a_shared_run_directory_that_is_a_link_or_not_sticky_is_refused(shared_parents, tmp_path):
    """The shared folder must be a real folder (a link is refused unless ORACODE_RUN_DIR names
    it), sticky when anyone may write it."""
    run_lock, _ = shared_parents
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run_lock / "oracode-provision").symlink_to(elsewhere)
    with pytest.raises(UsageError) as refused:
        run_directory({})
    assert refused.value.one_line() == (
        f"the run directory {run_lock / 'oracode-provision'} is a link, not a folder: another"
        " user could point it elsewhere (remove the link (a folder is made in its place), or"
        " set ORACODE_RUN_DIR)"
    )
    given = {"ORACODE_RUN_DIR": str(run_lock / "oracode-provision")}
    assert run_directory(given) == run_lock / "oracode-provision"
    (run_lock / "oracode-provision").unlink()
    (run_lock / "oracode-provision").mkdir()
    (run_lock / "oracode-provision").chmod(0o777)
    with pytest.raises(UsageError) as refused:
        run_directory({})
    assert "may be written by anyone but isn't sticky (mode 777)" in refused.value.one_line()


@pytest.mark.anyio
async def test_runs_of_two_sessions_share_the_workspace_lock(shared_parents, tmp_path):
    """A cron run (no XDG_RUNTIME_DIR, another TMPDIR) and a login session's run lock the
    same file: the second is refused while the first holds it."""
    ledger = tmp_path / "ledger.sqlite"
    login = {"XDG_RUNTIME_DIR": str(tmp_path / "xdg"), "HOME": str(tmp_path)}
    cron = {"HOME": "/root", "TMPDIR": str(tmp_path / "t")}
    async with workspace_lock("ws-1", ledger=ledger, run_id="run-a", environ=login):
        with pytest.raises(RunLocked):
            async with workspace_lock("ws-1", ledger=ledger, run_id="run-b", environ=cron):
                pass


@pytest.mark.anyio
async def test_a_lock_file_this_user_may_only_read_can_be_locked(tmp_path):
    """A lock file another user made (here: one made read-only, 0444) is opened as it is,
    without O_CREAT, and locked: a second run is refused, naming the holder's pid."""
    environ = {"ORACODE_RUN_DIR": str(tmp_path)}
    made = lock_file(tmp_path, "ws-1")
    made.touch()
    made.chmod(0o444)
    ledger = tmp_path / "ledger.sqlite"
    async with workspace_lock("ws-1", ledger=ledger, run_id="run-a", environ=environ):
        with pytest.raises(RunLocked) as refused:
            async with workspace_lock("ws-1", ledger=ledger, run_id="run-b", environ=environ):
                pass
    assert f"pid {os.getpid()}" in refused.value.one_line()
    assert stat.S_IMODE(made.stat().st_mode) == 0o444


@pytest.mark.anyio
async def test_a_link_in_place_of_the_lock_file_is_refused(tmp_path):
    """A link where the lock file should be is never followed (exit 2, one line)."""
    environ = {"ORACODE_RUN_DIR": str(tmp_path)}
    target = tmp_path / "target"
    target.touch()
    lock_file(tmp_path, "ws-1").symlink_to(target)
    with pytest.raises(UsageError) as refused:
        async with workspace_lock("ws-1", ledger=tmp_path, run_id="run-a", environ=environ):
            pass
    assert refused.value.message == (
        f"the workspace lock {lock_file(tmp_path, 'ws-1')} can't be opened: a link is in its place"
    )


def test_a_workspace_id_that_is_no_plain_name_is_hashed(tmp_path):
    """A UUID names the lock file as it is; anything else (a slash, dots) is hashed, so the
    file stays in the run directory."""
    assert lock_file(tmp_path, WORKSPACE_ID) == tmp_path / f"workspace-{WORKSPACE_ID}.lock"
    odd = lock_file(tmp_path, "../../etc/passwd")
    assert odd.parent == tmp_path
    assert odd.name.startswith("workspace-sha256-")


@pytest.mark.anyio
async def test_the_lock_file_says_who_holds_it_and_is_emptied_after(tmp_path):
    """While held, the lock file (0666: another user's run opens it too) names the run, pid
    and ledger (its absolute path: the run that reads it was started elsewhere); once let go,
    it is empty and the next run takes the lock at once."""
    environ = {"ORACODE_RUN_DIR": str(tmp_path)}
    ledger = Path("somewhere/ledger.sqlite")
    async with workspace_lock("ws-1", ledger=ledger, run_id="run-a", environ=environ) as path:
        said = path.read_text()
        assert '"run_id": "run-a"' in said
        assert f'"pid": {os.getpid()}' in said
        assert f'"ledger": "{Path.cwd() / ledger}"' in said
        assert stat.S_IMODE(path.stat().st_mode) == 0o666
        with pytest.raises(RunLocked):
            async with workspace_lock("ws-1", ledger=ledger, run_id="run-b", environ=environ):
                pass
        async with workspace_lock("ws-2", ledger=ledger, run_id="run-c", environ=environ):
            pass  # another workspace has its own lock
    assert path.read_text() == ""
    async with workspace_lock("ws-1", ledger=ledger, run_id="run-b", environ=environ):
        pass


@pytest.mark.slow
def test_two_apply_processes_from_two_folders_make_each_code_once(tmp_path):
    """Two real apply processes from two folders with their own ledgers, on one file at once
    with lost answers: the later one exits 3 with one line naming the holder; run again with
    --wait-for-lock, both finish and every code exists once."""
    payload = make_devices(10, seed=12)
    stays = make_stays([(d["device_id"], 20) for d in payload["devices"]], seed=4)
    source = tmp_path / "stays.csv"
    stays.write_csv(source)
    state, server = served(payload, Faults(drop_after=0.2, latency_ms=(5.0, 15.0)))
    folders = [tmp_path / "cron", tmp_path / "manual"]

    def start(folder: Path, url: str, *extra: str) -> subprocess.Popen[str]:
        folder.mkdir(exist_ok=True)
        command = [
            sys.executable, "-m", "pipeline", "apply", str(source), "--door-rate", "10/2s",
            "--settle-after", "1", *extra,
        ]  # fmt: skip
        return subprocess.Popen(
            command, cwd=folder, env=environment(url), stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    with server as url:
        first = start(folders[0], url)
        while not state.codes:
            assert first.poll() is None
            time.sleep(0.02)
        second = start(folders[1], url)
        assert second.wait(timeout=60) == 3
        assert second.stderr is not None
        lines = second.stderr.read().splitlines()
        refused = [line for line in lines if line.startswith("error:")]
        assert first.wait(timeout=120) == 0
        again = [start(folder, url, "--wait-for-lock", "120") for folder in reversed(folders)]
        assert [process.wait(timeout=120) for process in again] == [0, 0]
        on_doors = tags_on_doors(state)
    assert refused == [
        refused[0].split(" (")[0] + " (wait for it to finish, or pass --wait-for-lock SECONDS;"
        " runs for one workspace must not overlap, whatever their ledgers)"
    ]
    assert refused[0].startswith(f"error: Seam workspace {WORKSPACE_ID} is in use by another")
    assert f", ledger {folders[0] / 'outputs' / 'ledger.sqlite'} (wait" in refused[0]
    assert len(on_doors) == stays.height
    assert set(on_doors.values()) == {1}
