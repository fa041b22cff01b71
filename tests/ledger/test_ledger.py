"""The SQLite ledger: private files, states and their transitions, the event log, the runs."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import sqlite3
import stat
import sys

import anyio
import pytest

from pipeline.common.errors import LedgerError, UsageError
from pipeline.ledger.dialects import SqliteDb
from pipeline.ledger.store import RESULT_COLUMNS, Ledger, LedgerCode, fill_keys
from pipeline.seam.client import Exchange
from tests.ledger.helpers import access_code, planned, rows

pytestmark = pytest.mark.anyio


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def test_ledger_files_are_private_to_their_owner(sqlite_ledger, tmp_path):
    """The database and its -wal and -shm files are mode 0600: the ledger holds PINs."""
    await sqlite_ledger.start_run("apply", [])
    files = sorted(path.name for path in tmp_path.glob("ledger.sqlite*"))
    assert files == ["ledger.sqlite", "ledger.sqlite-shm", "ledger.sqlite-wal"]
    assert all(mode(tmp_path / name) == 0o600 for name in files)


async def test_an_existing_readable_ledger_is_narrowed_to_its_owner(tmp_path):
    """A ledger file left readable by others (0644) is 0600 once opened."""
    path = tmp_path / "ledger.sqlite"
    path.touch()
    path.chmod(0o644)
    opened = await Ledger.open(path)
    await opened.start_run("apply", [])
    assert mode(path) == 0o600
    assert all(mode(file) == 0o600 for file in tmp_path.glob("ledger.sqlite*"))
    await opened.close()


async def test_journal_mode_is_wal(sqlite_ledger):
    """The ledger is in WAL mode (durable commits that readers don't block)."""
    assert rows(sqlite_ledger, "PRAGMA journal_mode") == [("wal",)]


async def test_register_adds_pending_codes_once(ledger):
    """register inserts new tags as pending and returns, for known tags, their current state."""
    run_id = await ledger.start_run("apply", ["stays.csv"])
    first = await ledger.register(run_id, [planned("t1"), planned("t2")])
    assert first == {
        tag: LedgerCode(tag, "device-1", f"Guest {tag}", "pending", None, 0) for tag in ("t1", "t2")
    }
    await ledger.mark_sending("t1", run_id)
    ledger.mark_created("t1", run_id, access_code(), "req-1", how="created")
    again = await ledger.register(run_id, [planned("t1"), planned("t3")])
    assert again["t1"].sent_at is not None
    assert again["t1"] == LedgerCode(
        "t1", "device-1", "Guest t1", "created", "ac-1", 1, again["t1"].sent_at
    )
    assert again["t3"].state == "pending"
    assert set(again) == {"t1", "t3"}
    assert rows(ledger, "SELECT count(*) FROM codes") == [(3,)]


async def test_a_create_goes_pending_sending_created(ledger):
    """sending counts an attempt; created records the code, its status and the request id."""
    run_id = await ledger.start_run("apply", [])
    await ledger.register(run_id, [planned("t1")])
    assert await ledger.mark_sending("t1", run_id)
    [sending] = await ledger.codes_in_state("sending")
    assert sending == LedgerCode("t1", "device-1", "Guest t1", "sending", None, 1, sending.sent_at)
    assert dt.datetime.fromisoformat(sending.sent_at) <= dt.datetime.now(dt.UTC)
    ledger.mark_created("t1", run_id, access_code("ac-9"), "req-9", how="created")
    assert await ledger.codes_in_state("sending") == []
    [result] = await ledger.code_table(["t1"])
    assert result == {
        "idempotency_tag": "t1",
        "state": "created",
        "reason": "created",
        "message": None,
        "access_code_id": "ac-9",
        "code": "123456",
        "code_status": "set",
        "attempts": 1,
        "seam_request_id": "req-9",
        "last_run_id": run_id,
    }
    [(created_at,)] = rows(ledger, "SELECT created_at FROM codes WHERE idempotency_tag = 't1'")
    assert created_at is not None


@pytest.mark.parametrize(
    ("mark", "state", "reason", "message", "request_id"),
    [
        ("failed", "failed", "invalid_input", "ends_at is before starts_at", "req-4"),
        ("pending", "pending", "rate_limited", "too many requests", None),
    ],
)
async def test_a_refused_create_is_failed_or_pending(
    ledger, mark, state, reason, message, request_id
):
    """mark_failed / mark_pending record the state, reason and message; attempts stay counted."""
    run_id = await ledger.start_run("apply", [])
    await ledger.register(run_id, [planned("t1")])
    await ledger.mark_sending("t1", run_id)
    if mark == "failed":
        ledger.mark_failed("t1", run_id, reason, message, request_id)
    else:
        ledger.mark_pending("t1", run_id, reason, message)
    [result] = await ledger.code_table(["t1"])
    assert (result["state"], result["reason"], result["message"]) == (state, reason, message)
    assert (result["seam_request_id"], result["attempts"]) == (request_id, 1)
    await ledger.mark_sending("t1", run_id)
    assert [code.attempts for code in await ledger.codes_in_state("sending")] == [2]


async def test_code_table_returns_the_result_columns_of_the_given_tags(ledger):
    """code_table gives exactly RESULT_COLUMNS for the tags asked for, and no other code."""
    run_id = await ledger.start_run("apply", [])
    await ledger.register(run_id, [planned(tag) for tag in ("t1", "t2", "t3")])
    table = await ledger.code_table(["t3", "t1", "unknown"])
    assert sorted(row["idempotency_tag"] for row in table) == ["t1", "t3"]
    assert all(tuple(row) == RESULT_COLUMNS for row in table)
    assert all(row["state"] == "pending" and row["attempts"] == 0 for row in table)


async def test_every_transition_appends_a_state_event(ledger):
    """Each state change is logged as a 'state' event with its state, reason and request id."""
    run_id = await ledger.start_run("apply", [])
    await ledger.register(run_id, [planned("t1")])
    await ledger.mark_sending("t1", run_id)
    ledger.mark_pending("t1", run_id, "connect_failed", "no route")
    await ledger.mark_sending("t1", run_id)
    ledger.mark_created("t1", run_id, access_code(), "req-2", how="created")
    await ledger.commit()
    events = rows(
        ledger,
        "SELECT run_id, idempotency_tag, seam_request_id, detail FROM events"
        " WHERE kind = 'state' ORDER BY event_id",
    )
    assert [(run, tag, request) for run, tag, request, _ in events] == [
        (run_id, "t1", None),
        (run_id, "t1", None),
        (run_id, "t1", None),
        (run_id, "t1", "req-2"),
    ]
    assert [json.loads(detail) for *_, detail in events] == [
        {"state": "sending"},
        {"state": "pending", "reason": "connect_failed", "message": "no route"},
        {"state": "sending"},
        {"state": "created", "reason": "created", "message": None},
    ]


async def test_observed_exchanges_are_logged_with_the_next_commit_without_headers(ledger):
    """An exchange handed to observe() is a 'request' event once the next change commits."""
    run_id = await ledger.start_run("apply", [])
    await ledger.register(run_id, [planned("t1")])
    observe = ledger.observe(run_id)
    body = {"device_id": "device-1", "name": "Guest t1", "is_offline_access_code": True}
    observe(Exchange("/access_codes/create", body, 429, "req-7", "rate_limited", "slow", 0.12))
    query = "SELECT run_id, path, http_status, seam_request_id, detail FROM events"
    assert rows(ledger, query + " WHERE kind = 'request'") == []
    await ledger.mark_sending("t1", run_id)
    [(run, path, status, request_id, detail)] = rows(ledger, query + " WHERE kind = 'request'")
    assert (run, path, status, request_id) == (run_id, "/access_codes/create", 429, "req-7")
    assert json.loads(detail) == {
        "body": body,
        "error_type": "rate_limited",
        "message": "slow",
        "seconds": 0.12,
    }
    dump = json.dumps(rows(ledger, "SELECT * FROM events")).lower()
    assert "authorization" not in dump
    assert "bearer" not in dump
    ledger.mark_pending("t1", run_id, "rate_limited", "slow")
    await ledger.commit()
    assert len(rows(ledger, query + " WHERE kind = 'request'")) == 1  # logged once


async def test_start_and_finish_run_fill_the_runs_table(ledger):
    """start_run records command, inputs, pid and host; finish_run the exit code and counts."""
    run_id = await ledger.start_run("apply", ["a.csv", "b.xlsx"])
    other = await ledger.start_run("apply", [])
    assert run_id.startswith("run-")
    assert other != run_id
    columns = "command, inputs, pid, host, started_at IS NOT NULL, finished_at, exit_code, counts"
    select = f"SELECT {columns} FROM runs WHERE run_id = ?"
    assert rows(ledger, select, run_id) == [
        ("apply", '["a.csv", "b.xlsx"]', os.getpid(), socket.gethostname(), 1, None, None, None)
    ]
    await ledger.finish_run(run_id, 1, {"created": 3, "failed": 1})
    [(*_, finished_at, exit_code, counts)] = rows(ledger, select, run_id)
    assert finished_at is not None
    assert (exit_code, json.loads(counts)) == (1, {"created": 3, "failed": 1})


async def test_a_ledger_that_cant_be_created_is_a_usage_error(tmp_path):
    """A ledger path under a file (not a folder) raises UsageError with a one-line message."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    path = blocker / "sub" / "ledger.sqlite"
    with pytest.raises(UsageError) as caught:
        await Ledger.open(path)
    line = caught.value.one_line()
    assert line.startswith(f"ledger {path} can't be opened: ")
    assert "--ledger" in line
    assert "\n" not in line


async def test_sending_on_an_unknown_tag_raises_key_error(ledger):
    """Marking a tag that was never registered ``sending`` raises KeyError and logs no event."""
    run_id = await ledger.start_run("apply", [])
    with pytest.raises(KeyError, match="nope"):
        await ledger.mark_sending("nope", run_id)
    assert rows(ledger, "SELECT count(*) FROM events WHERE kind = 'state'") == [(0,)]


@pytest.mark.parametrize(
    "answer",
    [
        lambda ledger, run_id: ledger.mark_pending("nope", run_id, "not_found", "gone"),
        lambda ledger, run_id: ledger.mark_failed("nope", run_id, "invalid_input", "bad", None),
        lambda ledger, run_id: ledger.mark_created(
            "nope", run_id, access_code(), None, how="adopted"
        ),
    ],
    ids=["pending", "failed", "created"],
)
async def test_an_answer_on_an_unknown_tag_is_logged_and_undoes_only_itself(ledger, answer, caplog):
    """A queued answer for a tag never registered is logged as an error when its commit comes;
    the changes committed with it stand."""
    run_id = await ledger.start_run("apply", [])
    await ledger.register(run_id, [planned("t1")])
    await ledger.mark_sending("t1", run_id)
    answer(ledger, run_id)
    ledger.mark_created("t1", run_id, access_code(), "req-1", how="created")
    await ledger.commit()
    assert rows(ledger, "SELECT state FROM codes") == [("created",)]
    states = rows(ledger, "SELECT idempotency_tag FROM events WHERE kind = 'state'")
    assert states == [("t1",), ("t1",)]
    [record] = [r for r in caplog.records if r.name == "pipeline.ledger.commits"]
    assert record.levelname == "ERROR"
    assert record.error == "KeyError: 'no code nope in the ledger'"


async def test_answers_are_committed_with_the_next_commit_in_order(ledger):
    """An answer is queued: the file shows the code ``sending`` until the next commit, which
    applies the queued changes in the order they were made."""
    run_id = await ledger.start_run("apply", [])
    await ledger.register(run_id, [planned("t1"), planned("t2")])
    await ledger.mark_sending("t1", run_id)
    ledger.mark_pending("t1", run_id, "rate_limited", "slow")
    assert rows(ledger, "SELECT state FROM codes WHERE idempotency_tag = 't1'") == [("sending",)]
    await ledger.mark_sending("t1", run_id)  # commits the pending first, then sending again
    ledger.mark_created("t1", run_id, access_code(), "req-1", how="created")
    await ledger.mark_sending("t2", run_id)
    assert rows(ledger, "SELECT idempotency_tag, state, attempts FROM codes ORDER BY 1") == [
        ("t1", "created", 2),
        ("t2", "sending", 1),
    ]


async def test_concurrent_writes_share_a_commit(ledger, monkeypatch):
    """Twenty creates marked ``sending`` at once take two commits, not twenty, and each caller
    returns only once its change is on disk."""
    run_id = await ledger.start_run("apply", [])
    tags = [f"t{n}" for n in range(20)]
    await ledger.register(run_id, [planned(tag) for tag in tags])
    batches: list[int] = []
    transaction = ledger._transaction

    def counted(batch, exchanges):
        batches.append(len(batch))
        return transaction(batch, exchanges)

    monkeypatch.setattr(ledger, "_transaction", counted)
    seen: dict[str, str] = {}

    async def send(tag: str) -> None:
        await ledger.mark_sending(tag, run_id)
        [(seen[tag],)] = rows(ledger, "SELECT state FROM codes WHERE idempotency_tag = ?", tag)

    async with anyio.create_task_group() as group:
        for tag in tags:
            group.start_soon(send, tag)
    assert batches == [1, 19]
    assert seen == dict.fromkeys(tags, "sending")


async def test_a_failing_write_in_a_shared_commit_fails_alone(ledger):
    """Of writes committed together, one that fails halfway raises and leaves nothing behind;
    the others stand."""
    run_id = await ledger.start_run("apply", [])
    await ledger.register(run_id, [planned("t1"), planned("t2")])
    failed: list[BaseException] = []

    def half_done(db: sqlite3.Connection) -> None:
        db.execute("UPDATE codes SET state = 'created' WHERE idempotency_tag = 't2'")
        raise RuntimeError("broken change")

    won: list[object] = []

    async def write(change) -> None:
        try:
            won.append(await change())
        except (KeyError, RuntimeError) as exc:
            failed.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(write, lambda: ledger.mark_sending("t1", run_id))
        group.start_soon(write, lambda: ledger.mark_sending("t1", run_id))
        group.start_soon(write, lambda: ledger.write(half_done))
        group.start_soon(write, lambda: ledger.mark_sending("nope", run_id))
    assert sorted(repr(exc) for exc in failed) == [
        "KeyError('no code nope in the ledger')",
        "RuntimeError('broken change')",
    ]
    # pending -> sending is a compare-and-set: of two writers of one tag, one wins.
    assert sorted(won, key=repr) == [1, None]
    select = "SELECT idempotency_tag, state, attempts FROM codes ORDER BY 1"
    assert rows(ledger, select) == [("t1", "sending", 1), ("t2", "pending", 0)]


async def test_answers_survive_a_cancelled_write_and_a_cancelled_close(tmp_path):
    """A write cancelled before its commit leaves the answers queued before it for the next
    commit, and ``close`` commits them even inside a cancelled scope (Ctrl-C)."""
    opened = await Ledger.open(tmp_path / "ledger.sqlite")
    run_id = await opened.start_run("apply", [])
    await opened.register(run_id, [planned("t1"), planned("t2")])
    await opened.mark_sending("t1", run_id)
    opened.mark_created("t1", run_id, access_code(), "req-1", how="created")
    with anyio.CancelScope() as scope:
        scope.cancel()
        await opened.mark_sending("t2", run_id)
    assert scope.cancelled_caught
    assert rows(opened, "SELECT state FROM codes ORDER BY idempotency_tag") == [
        ("sending",),
        ("pending",),
    ]
    opened.mark_failed("t1", run_id, "ignored", "superseded below", None)
    opened.mark_created("t1", run_id, access_code("ac-2"), "req-2", how="created")
    with anyio.CancelScope() as scope:
        scope.cancel()
        await opened.close()
    select = "SELECT idempotency_tag, state, access_code_id FROM codes ORDER BY 1"
    assert rows(opened, select) == [("t1", "created", "ac-2"), ("t2", "sending", None)]


async def test_commit_every_commits_queued_answers_without_another_write(ledger, monkeypatch):
    """Inside ``commit_every`` an answer reaches the file though nothing else is written."""
    run_id = await ledger.start_run("apply", [])
    await ledger.register(run_id, [planned("t1")])
    await ledger.mark_sending("t1", run_id)
    committed = anyio.Event()
    commit = ledger.commit

    async def observed() -> None:
        await commit()
        committed.set()

    monkeypatch.setattr(ledger, "commit", observed)
    async with ledger.commit_every(0.01):
        ledger.mark_created("t1", run_id, access_code(), "req-1", how="created")
        with anyio.fail_after(10):
            await committed.wait()
    assert rows(ledger, "SELECT state FROM codes") == [("created",)]


async def test_an_error_inside_commit_every_comes_out_as_itself(ledger):
    """An exception raised in the block is not wrapped in an exception group by the beat's task
    group (callers catch e.g. RunStopped by its type)."""
    with pytest.raises(LookupError, match="not wrapped"):
        async with ledger.commit_every(0.01):
            raise LookupError("not wrapped")


async def test_a_failed_beat_leaves_the_block_running_and_comes_out_as_itself(ledger, monkeypatch):
    """A commit of the beat's that fails doesn't cancel the block (requests in flight finish);
    the failure is raised after it as itself, not in an exception group."""
    run_id = await ledger.start_run("apply", [])
    await ledger.register(run_id, [planned("t1")])
    await ledger.mark_sending("t1", run_id)
    failed = anyio.Event()

    async def failing() -> None:
        failed.set()
        raise LedgerError("the ledger could not be written: disk full")

    monkeypatch.setattr(ledger, "commit", failing)
    finished = []

    async def block() -> None:
        async with ledger.commit_every(0.01):
            ledger.mark_created("t1", run_id, access_code(), "req-1", how="created")
            with anyio.fail_after(10):
                await failed.wait()
            await anyio.sleep(0.05)  # the block goes on after the beat failed
            finished.append(True)

    with pytest.raises(LedgerError, match="disk full"):
        await block()
    assert finished == [True]
    monkeypatch.undo()  # the fixture's close commits what is queued


async def test_a_ledger_from_before_the_added_columns_gets_them_on_open(tmp_path):
    """A ledger whose tables predate the added columns gets them when opened: its per-door rows
    count as matched when they named a door, and a new apply run's summary can be kept."""
    path = tmp_path / "ledger.sqlite"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE run_doors (run_id TEXT NOT NULL, device_id TEXT, door_name TEXT,"
            " site_name TEXT, outcome TEXT NOT NULL, reason TEXT, rows INTEGER NOT NULL)"
        )
        old.executemany(
            "INSERT INTO run_doors VALUES ('run-old', ?, ?, 'Hotel', 'created', NULL, 1)",
            [("device-1", "Room 101"), (None, "Room 999")],
        )
    opened = await Ledger.open(path)
    run_id = await opened.start_run("apply", [])
    await opened.record_apply(
        run_id,
        [("device-2", "Room 102", "Hotel", False, "rejected", "unknown_device", 2)],
        [],
        [],
        now=dt.datetime(2026, 11, 22, tzinfo=dt.UTC),
    )
    await opened.close()
    assert rows(opened, "SELECT door_name, matched FROM run_doors ORDER BY rowid") == [
        ("Room 101", 1),
        ("Room 999", 0),
        ("Room 102", 0),
    ]
    columns = {row[1] for row in rows(opened, "PRAGMA table_info(codes)")}
    assert {"code_errors", "needs_attention", "replaces_tag", "orphaned_run_id"} <= columns


@pytest.mark.slow
async def test_leftover_wal_and_shm_of_a_readable_ledger_are_narrowed(tmp_path):
    """A 0644 ledger whose -wal/-shm a killed run left behind: all three are 0600 once opened."""
    path = tmp_path / "ledger.sqlite"
    killed = (
        "import os, sqlite3, sys; db = sqlite3.connect(sys.argv[1]);"
        "db.execute('PRAGMA journal_mode=WAL'); db.execute('CREATE TABLE t (pin TEXT)');"
        "db.execute(\"INSERT INTO t VALUES ('123456')\"); db.commit(); os._exit(0)"
    )
    await anyio.run_process([sys.executable, "-c", killed, str(path)])
    for file in tmp_path.iterdir():
        file.chmod(0o644)
    opened = await Ledger.open(path)
    await opened.start_run("apply", [])
    modes = {f.name: mode(f) for f in tmp_path.glob("ledger.sqlite*")}
    await opened.close()
    assert modes == dict.fromkeys(
        ["ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-shm"], 0o600
    )


async def test_an_exchange_survives_a_failed_transition(tmp_path):
    """An observed exchange is logged even when the write it was buffered for fails."""
    opened = await Ledger.open(tmp_path / "ledger.sqlite")
    run_id = await opened.start_run("apply", [])
    opened.observe(run_id)(Exchange("/access_codes/create", {}, 200, "req-1", None, None, 0.1))
    with pytest.raises(KeyError):
        await opened.mark_sending("unknown", run_id)
    await opened.close()
    with sqlite3.connect(opened.path) as db:
        logged = db.execute("SELECT seam_request_id FROM events WHERE kind = 'request'")
        assert logged.fetchall() == [("req-1",)]


def test_fill_keys_fills_in_one_transaction_and_keeps_the_callers(tmp_path):
    """Outside a transaction fill_keys opens and closes its own (rolled back if the values
    fail); inside the caller's it neither commits nor ends it."""
    db = sqlite3.connect(tmp_path / "keys.sqlite", isolation_level=None, factory=SqliteDb)
    assert fill_keys(db, "device_id", ["a", "b", "a"]) == "keys_device_id"
    assert not db.in_transaction
    assert db.execute("SELECT device_id FROM keys_device_id ORDER BY 1").fetchall() == [
        ("a",),
        ("b",),
    ]

    def failing():
        yield "c"
        raise ValueError("bad values")

    with pytest.raises(ValueError, match="bad values"):
        fill_keys(db, "device_id", failing())
    assert not db.in_transaction
    db.execute("CREATE TABLE t (x)")
    db.execute("BEGIN")
    db.execute("INSERT INTO t VALUES (1)")
    fill_keys(db, "device_id", ["d"])
    assert db.in_transaction
    db.execute("ROLLBACK")
    assert db.execute("SELECT count(*) FROM t").fetchone() == (0,)
    assert db.execute("SELECT device_id FROM keys_device_id ORDER BY 1").fetchall() == [
        ("a",),
        ("b",),
    ]
    db.close()
