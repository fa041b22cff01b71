"""A ledger that is damaged, holds another schema or sits on a full disk: one line naming the
file and what is wrong, the documented exit code, never a traceback; what was committed stays."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from pipeline.cli import main
from pipeline.common.errors import LedgerError
from pipeline.ledger.store import Ledger
from pipeline.sandbox import Faults, SandboxState, create_app
from pipeline.sandbox.server import serve_in_thread
from tests.ledger.helpers import planned
from tests.paths import ROOT, SANDBOX_DEVICES

CORRUPT_HINT = (
    "(restore it from a backup, or move it aside and pass it on to the pipeline's maintainers:"
    " a new ledger does not know which codes were already sent)"
)


def report(ledger: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """``report`` on the ledger: its exit code and its lines on stderr."""
    code = main(["report", "--ledger", str(ledger)])
    return code, capsys.readouterr().err.strip().splitlines()


async def make_ledger(path: Path, codes: int = 3) -> None:
    ledger = await Ledger.open(path)
    run_id = await ledger.start_run("apply", [])
    await ledger.register(run_id, [planned(f"t{i}") for i in range(codes)])
    await ledger.close()


def test_a_file_of_random_bytes_is_not_a_ledger(tmp_path, capsys):
    """Random bytes at --ledger: exit 2, one line naming the file and SQLite's finding."""
    path = tmp_path / "ledger.sqlite"
    path.write_bytes(random.Random(1).randbytes(64 * 1024))
    assert report(path, capsys) == (
        2,
        [f"error: ledger {path} is damaged or not a ledger: file is not a database {CORRUPT_HINT}"],
    )


def test_a_ledger_with_overwritten_pages_is_damaged(tmp_path, capsys):
    """A real ledger whose middle pages were overwritten: exit 2, one line with what
    ``PRAGMA quick_check`` found (its wording is SQLite's, so only its frame is checked)."""
    path = tmp_path / "ledger.sqlite"
    anyio.run(functools.partial(make_ledger, path, codes=2000))
    page_size = 4096
    pages = path.stat().st_size // page_size
    assert pages > 20
    with path.open("r+b") as file:
        for page in range(pages // 2, pages // 2 + 3):
            file.seek(page * page_size)
            file.write(random.Random(page).randbytes(page_size))
    code, lines = report(path, capsys)
    assert code == 2
    assert len(lines) == 1
    assert lines[0].startswith(f"error: ledger {path} is damaged or not a ledger: ")
    assert lines[0].endswith(CORRUPT_HINT)


def test_a_codes_table_of_another_schema_is_refused(tmp_path, capsys):
    """A file whose ``codes`` table has other columns: exit 2, one line listing what it lacks."""
    path = tmp_path / "ledger.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE codes (id INTEGER PRIMARY KEY, pin TEXT, door TEXT)")
    missing = (
        "access_code_id, attempts, code, code_status, created_at, device_id, door_name, ends_at,"
        " first_run_id, idempotency_tag, last_run_id, max_time_rounding, message, name, reason,"
        " reservation_id, seam_request_id, site_name, starts_at, state, updated_at,"
        " user_level_name"
    )
    assert report(path, capsys) == (
        2,
        [
            f"error: ledger {path} is damaged or not a ledger: its table codes lacks columns"
            f" {missing} {CORRUPT_HINT}"
        ],
    )


def test_a_dropped_column_is_named(tmp_path, capsys):
    """A ledger whose ``codes`` lost ``ends_at``: exit 2, one line naming the column."""
    path = tmp_path / "ledger.sqlite"
    anyio.run(make_ledger, path)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("ALTER TABLE codes DROP COLUMN ends_at")
    assert report(path, capsys) == (
        2,
        [
            f"error: ledger {path} is damaged or not a ledger: its table codes lacks column"
            f" ends_at {CORRUPT_HINT}"
        ],
    )


@pytest.mark.parametrize("value", ["next tuesday", "2027-13-45T10:00:00Z", "2460000"])
def test_an_ends_at_that_isnt_an_instant_is_named(tmp_path, capsys, value):
    """A code whose ``ends_at`` isn't an instant: exit 2, one line naming the code and value."""
    path = tmp_path / "ledger.sqlite"
    anyio.run(make_ledger, path)
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE codes SET ends_at = ? WHERE idempotency_tag = 't1'", (value,))
    assert report(path, capsys) == (
        2,
        [
            f"error: ledger {path} is damaged or not a ledger: code t1 has ends_at {value!r},"
            f" which is not an instant {CORRUPT_HINT}"
        ],
    )


# -- a full disk --------------------------------------------------------------------------------


def full_line(path: Path) -> str:
    return (
        f"ledger {path} can't be written: database or disk is full"
        f" (free space on {path.parent} and rerun: the ledger is intact)"
    )


@pytest.mark.anyio
async def test_a_write_past_the_files_size_limit_is_a_ledger_error(tmp_path):
    """``database or disk is full`` (here from ``PRAGMA max_page_count``): LedgerError naming
    the file and the cause; the batch is rolled back, what was committed before stays, and the
    ledger is usable once there is room again."""
    path = tmp_path / "ledger.sqlite"
    ledger = await Ledger.open(path)
    run_id = await ledger.start_run("apply", [])
    connection = ledger._db  # the limit is per connection: it must be the ledger's own
    (pages,) = connection.execute("PRAGMA page_count").fetchone()
    connection.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(LedgerError) as caught:
        await ledger.register(run_id, [planned(f"t{i}") for i in range(500)])
    assert caught.value.one_line() == full_line(path)
    assert caught.value.exit_code == 3
    assert not connection.in_transaction
    connection.execute("PRAGMA max_page_count = 1073741823")
    await ledger.register(run_id, [planned("after")])
    await ledger.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT idempotency_tag FROM codes").fetchall() == [("after",)]
        assert db.execute("SELECT run_id FROM runs").fetchall() == [(run_id,)]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted on a folder of tmp_path (skipped where mounting is forbidden)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"can't mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> None:
    """Write a file into ``folder`` until its file system is full."""
    descriptor = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(descriptor, b"\0" * 4096)
    finally:
        os.close(descriptor)


@pytest.mark.anyio
async def test_a_disk_that_fills_up_fails_the_commit_with_one_line(small_disk):
    """A real full disk under a commit (SQLite rolls the transaction back itself): LedgerError
    naming the file and the cause, not 'cannot rollback - no transaction is active'."""
    path = small_disk / "ledger.sqlite"
    ledger = await Ledger.open(path)
    run_id = await ledger.start_run("apply", [])
    fill(small_disk)
    with pytest.raises(LedgerError) as caught:
        await ledger.register(run_id, [planned(f"t{i}") for i in range(2000)])
    assert caught.value.one_line() == full_line(path)
    (small_disk / "filler").unlink()
    await ledger.register(run_id, [planned("after")])
    await ledger.close()


def test_status_on_a_full_disk_exits_3_with_one_line(small_disk, monkeypatch, capsys):
    """status on a ledger whose disk is full: exit 3 and the one line, before Seam is asked."""
    path = small_disk / "ledger.sqlite"
    anyio.run(make_ledger, path)
    fill(small_disk)
    monkeypatch.setenv("SEAM_API_KEY", "seam_test_key")
    monkeypatch.setenv("SEAM_ENDPOINT", "http://127.0.0.1:9")
    results = small_disk.parent / "status.csv"
    code = main(["status", "--ledger", str(path), "--results", str(results)])
    # SQLite can't grow the ledger's -shm file: it says only "disk I/O error".
    assert (code, capsys.readouterr().err.strip().splitlines()) == (
        3,
        [
            f"error: ledger {path} can't be written: disk I/O error (SQLITE_IOERR_SHMSIZE), its"
            f" disk is full (free space on {small_disk} and rerun: the ledger is intact)"
        ],
    )


def test_a_new_ledger_on_a_full_disk_exits_3_with_one_line(small_disk, capsys):
    """report creating nothing, but apply's open of a new ledger on a full disk: the same line."""
    fill(small_disk)
    path = small_disk / "ledger.sqlite"
    with pytest.raises(LedgerError) as caught:
        anyio.run(Ledger.open, path)
    assert caught.value.one_line() == full_line(path)


@pytest.mark.slow
def test_apply_whose_disk_fills_up_mid_run_exits_3_with_one_line(small_disk, tmp_path):
    """apply whose ledger disk fills while codes are being created: the run ends by itself,
    exit 3, its last line the full-disk line, no traceback."""
    path = small_disk / "ledger.sqlite"
    anyio.run(make_ledger, path)
    fill(small_disk)
    filler = small_disk / "filler"
    os.truncate(filler, filler.stat().st_size - 200 * 1024)  # room for a few commits
    payload = json.loads(SANDBOX_DEVICES.read_text())
    state = SandboxState.from_payload(payload, door_rate=None, seed=1)
    with serve_in_thread(create_app(state, Faults())) as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEAM_")}
        env |= {"SEAM_API_KEY": "seam_test_key", "SEAM_ENDPOINT": url}
        done = subprocess.run(
            [
                sys.executable, "-m", "pipeline", "apply",
                str(ROOT / "inputs" / "reservations-sample.csv"),
                "--config", str(ROOT / "inputs" / "pipeline.toml"),
                "--ledger", str(path), "--results", str(tmp_path / "results.csv"),
            ],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 3
    assert lines[-1] == f"error: {full_line(path)}"
    assert not any("Traceback" in line or "internal error" in line for line in lines)
