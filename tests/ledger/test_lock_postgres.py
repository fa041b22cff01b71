"""The run lock on a PostgreSQL ledger: an advisory lock on the ledger's database and schema,
whatever URL, host or folder reaches it; its holder named; a killed holder's lock released
with its connection; a server that refuses or can't be reached is the one-line error of
``pipeline.ledger.postgres``."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import anyio
import psycopg
import pytest

from pipeline.cli import main
from pipeline.common.errors import LedgerError, RunLocked, UsageError
from pipeline.ledger.location import PostgresLedger
from pipeline.ledger.lock import run_lock, unfinished_apply_run
from pipeline.ledger.postgres import application_name
from tests.paths import ROOT

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SAMPLE = ROOT / "inputs" / "reservations-sample.csv"

# The ledger's runs table, as far as the lock reads it (the ledger's own schema creates it).
RUNS = (
    "CREATE TABLE runs (run_id text PRIMARY KEY, command text NOT NULL, pid integer,"
    " host text, started_at timestamptz NOT NULL, finished_at timestamptz)"
)


def sql(url: str, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as connection:
        cursor = connection.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def socket_url(server, url: str) -> str:
    """The same database reached through the server's unix socket (no password: trusted)."""
    database = url.rsplit("/", 1)[1]
    folder = quote(str(server.root), safe="")
    return f"postgresql://{server.user}@/{database}?host={folder}&port={server.port}"


def lock_connections(url: str) -> list[tuple[object, ...]]:
    """The run lock's connections to the database of ``url`` still open."""
    return sql(
        url,
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name LIKE 'oracode-provision apply %%'",
    )


def host_as_the_server_keeps_it() -> str:
    """The host name as it reaches the server in ``application_name``, which PostgreSQL cuts
    at 63 bytes (a long CI runner's name loses its end)."""
    kept = application_name("apply").encode()[:63].decode("utf-8", "ignore")
    return kept.partition(" host=")[2]


async def test_a_second_run_on_the_same_database_is_refused_naming_the_holder(
    postgres_server, postgres_url
):
    """Another connection to the same database, by another URL (the unix socket, no
    password): RunLocked (exit 3) naming the holder's pid and host from its connection's name
    (no runs table yet); the password never shown."""
    async with run_lock(PostgresLedger(postgres_url)):
        with pytest.raises(RunLocked) as refused:
            async with run_lock(PostgresLedger(socket_url(postgres_server, postgres_url))):
                pass
    line = refused.value.one_line()
    assert refused.value.exit_code == 3
    assert line == (
        f"ledger {PostgresLedger(socket_url(postgres_server, postgres_url))} is in use by another"
        f" apply run: pid {os.getpid()} on host {host_as_the_server_keeps_it()} (wait for it to"
        " finish, or pass --wait-for-lock SECONDS)"
    )
    assert lock_connections(postgres_url) == []


async def test_the_holder_is_named_by_its_recorded_run(postgres_server, postgres_url):
    """Once the holder has recorded its run, the refusal names the run, pid, host and start."""
    sql(postgres_url, RUNS)
    ledger = PostgresLedger(postgres_url)
    async with run_lock(ledger):
        sql(
            postgres_url,
            "INSERT INTO runs VALUES ('run-1', 'apply', %s, %s, '2027-03-01T03:00:00Z', NULL)",
            (os.getpid(), socket.gethostname()),
        )
        with pytest.raises(RunLocked) as refused:
            async with run_lock(ledger):
                pass
    assert (
        f"in use by another apply run: run run-1, pid {os.getpid()} on host"
        f" {socket.gethostname()}, started 2027-03-01T03:00:00+00:00"
    ) in refused.value.one_line()
    assert "***" in refused.value.one_line()
    assert postgres_server.password not in refused.value.one_line()


async def test_two_databases_and_two_schemas_do_not_exclude_each_other(postgres_server):
    """The key is the ledger's database and schema: other ledgers on the server run freely."""
    first = postgres_server.new_database()
    second = postgres_server.new_database()
    sql(first, "CREATE SCHEMA other")
    other_schema = f"{first}?options={quote('-csearch_path=other')}"
    async with (
        run_lock(PostgresLedger(first)),
        run_lock(PostgresLedger(second)),
        run_lock(PostgresLedger(other_schema)),
    ):
        with pytest.raises(RunLocked):
            async with run_lock(PostgresLedger(first)):
                pass


async def test_the_lock_is_released_when_the_block_is_cancelled(postgres_url):
    """A run cancelled inside the block lets the lock go and closes its connection."""
    ledger = PostgresLedger(postgres_url)
    with anyio.move_on_after(0.3):
        async with run_lock(ledger):
            await anyio.sleep(10)
    assert lock_connections(postgres_url) == []
    async with run_lock(ledger):
        pass


async def test_the_lock_outlives_the_server_s_idle_session_timeout(postgres_url, caplog):
    """A database whose idle sessions end after a second: the lock's connection, silent for the
    whole run, keeps its session and its lock."""
    database = postgres_url.rsplit("/", 1)[1]
    sql(postgres_url, f"ALTER DATABASE {database} SET idle_session_timeout = '1s'")
    ledger = PostgresLedger(postgres_url)
    with caplog.at_level(logging.WARNING, logger="pipeline.ledger.lock"):
        async with run_lock(ledger):
            await anyio.sleep(2.5)
            with pytest.raises(RunLocked):
                async with run_lock(ledger):
                    pass
    assert not caplog.records


async def test_a_lock_left_by_a_killed_run_is_taken_over(postgres_url, tmp_path, caplog):
    """A holder in another folder killed with SIGKILL: its session ends with its process, the
    next run takes the lock within seconds and names the run it took it from, once."""
    sql(postgres_url, RUNS)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    holder_script = textwrap.dedent(
        f"""
        import os, socket
        import anyio, psycopg
        from pipeline.ledger.location import PostgresLedger
        from pipeline.ledger.lock import run_lock
        URL = {postgres_url!r}
        async def hold():
            async with run_lock(PostgresLedger(URL)):
                with psycopg.connect(URL, autocommit=True) as db:
                    db.execute(
                        "INSERT INTO runs VALUES ('run-killed', 'apply', %s, %s, now(), NULL)",
                        (os.getpid(), socket.gethostname()),
                    )
                print("held", flush=True)
                await anyio.sleep(60)
        anyio.run(hold)
        """
    )
    process = await anyio.open_process([sys.executable, "-c", holder_script], cwd=elsewhere)
    try:
        assert process.stdout is not None
        assert (await process.stdout.receive()).strip() == b"held"
        with pytest.raises(RunLocked) as refused:
            async with run_lock(PostgresLedger(postgres_url)):
                pass
        assert f"run run-killed, pid {process.pid} on host {socket.gethostname()}" in (
            refused.value.one_line()
        )
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    with caplog.at_level(logging.WARNING, logger="pipeline.ledger.lock"):
        with anyio.fail_after(10):
            async with run_lock(PostgresLedger(postgres_url), wait=5):
                sql(
                    postgres_url,
                    "INSERT INTO runs VALUES ('run-next', 'apply', 1, 'h', now(), now())",
                )
        assert [record.message for record in caplog.records] == [
            "took over the run lock of a run that ended without finishing"
        ]
        assert f"run run-killed, pid {process.pid}" in caplog.records[0].holder
        caplog.clear()
        async with run_lock(PostgresLedger(postgres_url)):
            pass
        assert not caplog.records


async def test_unfinished_apply_run_reads_a_postgres_ledger(postgres_url):
    """None before the ledger has its runs table, then the newest unfinished apply run."""
    ledger = PostgresLedger(postgres_url)
    assert await anyio.to_thread.run_sync(unfinished_apply_run, ledger) is None
    sql(postgres_url, RUNS)
    sql(
        postgres_url,
        "INSERT INTO runs VALUES ('r1', 'apply', 7, 'h1', '2027-03-01T03:00:00Z', NULL),"
        " ('r2', 'status', 8, 'h1', '2027-03-01T04:00:00Z', NULL)",
    )
    assert await anyio.to_thread.run_sync(unfinished_apply_run, ledger) == {
        "run_id": "r1",
        "pid": 7,
        "host": "h1",
        "started_at": "2027-03-01T03:00:00+00:00",
    }
    sql(
        postgres_url,
        "INSERT INTO runs VALUES ('r3', 'apply', 9, 'h2', '2027-03-02T03:00:00Z', now())",
    )
    assert await anyio.to_thread.run_sync(unfinished_apply_run, ledger) is None


async def test_a_wrong_password_is_a_usage_error_in_one_line(postgres_server, postgres_url):
    """The server refuses the password: UsageError (exit 2), one line, the password masked."""
    wrong = postgres_url.replace(quote(postgres_server.password, safe=""), "not-the-password")
    with pytest.raises(UsageError) as refused:
        async with run_lock(PostgresLedger(wrong)):
            pass
    line = refused.value.one_line()
    assert refused.value.exit_code == 2
    assert line.startswith(f"ledger {PostgresLedger(wrong)} can't be opened: connection to")
    assert f'password authentication failed for user "{postgres_server.user}"' in line
    assert line.endswith(
        "(check the URL in --ledger or ORACODE_LEDGER, and PGPASSWORD or ~/.pgpass)"
    )
    assert "not-the-password" not in line
    assert "\n" not in line


async def test_an_unknown_database_is_a_usage_error(postgres_server):
    """A database the server doesn't have: exit 2, naming it."""
    url = postgres_server.url("no_such_ledger")
    with pytest.raises(UsageError) as refused:
        async with run_lock(PostgresLedger(url)):
            pass
    assert 'database "no_such_ledger" does not exist' in refused.value.one_line()
    assert postgres_server.password not in refused.value.one_line()


async def test_a_connection_lost_while_waiting_is_a_ledger_error(postgres_server, postgres_url):
    """The server cuts the waiting run's connection: LedgerError (exit 3) saying so."""
    ledger = PostgresLedger(postgres_url)
    lost: list[LedgerError] = []

    async def wait_for_the_lock() -> None:
        try:
            async with run_lock(ledger, wait=10):
                pass
        except LedgerError as exc:
            lost.append(exc)

    def cut_the_waiter() -> None:
        with postgres_server.connect(postgres_url.rsplit("/", 1)[1]) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name LIKE 'oracode-%%'"
                " AND pid NOT IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')"
            )

    async with run_lock(ledger), anyio.create_task_group() as group:
        group.start_soon(wait_for_the_lock)
        await anyio.sleep(0.5)
        await anyio.to_thread.run_sync(cut_the_waiter)
    [error] = lost
    line = error.one_line()
    assert error.exit_code == 3
    assert line.startswith(f"ledger {ledger}: lost its connection to PostgreSQL (")
    assert line.endswith(
        "(rerun once the server is reachable: every code sent was committed first)"
    )
    assert postgres_server.password not in line


@contextmanager
def held_by(url: str, name: str) -> Iterator[int]:
    """The run lock's key held by a session of another program, named ``name``; gives its
    backend pid. (The key is learnt from the lock itself, taken once.)"""

    async def learn() -> tuple[int, int]:
        async with run_lock(PostgresLedger(url)):
            [(high, low)] = sql(
                url,
                "SELECT classid::bigint, objid::bigint FROM pg_locks"
                " WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database"
                " WHERE datname = current_database())",
            )
        return int(high), int(low)

    high, low = anyio.run(learn)
    key = int.from_bytes(((high << 32) | low).to_bytes(8, "big"), "big", signed=True)
    with psycopg.connect(url, autocommit=True, application_name=name) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [key])
        [(backend,)] = other.execute("SELECT pg_backend_pid()").fetchall()
        yield backend


def test_a_holder_that_is_not_ours_is_named_by_its_session(postgres_url):
    """A session that isn't a run (another program, a person in psql) holding the lock's key
    is named by its backend pid and application_name."""
    with held_by(postgres_url, "psql") as backend, pytest.raises(RunLocked) as refused:
        anyio.run(lambda: _take(postgres_url))
    assert (
        f"in use by another apply run: PostgreSQL backend pid {backend}"
        " (application_name 'psql') (wait for it"
    ) in refused.value.one_line()


async def _take(url: str) -> None:
    async with run_lock(PostgresLedger(url)):
        pass


def test_apply_on_a_held_ledger_exits_3_naming_the_holder(
    postgres_url, tmp_path, monkeypatch, capsys
):
    """The CLI: apply on a PostgreSQL ledger another run holds is exit 3, one line naming the
    holder's pid and host as its connection says them, the password masked."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEAM_API_KEY", "seam_test_key")
    monkeypatch.setenv("SEAM_ENDPOINT", "http://127.0.0.1:9")
    name = "oracode-provision apply pid=4242 host=night-runner-7"
    with held_by(postgres_url, name):
        assert main(["apply", str(SAMPLE), "--ledger", postgres_url]) == 3
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == (
        f"error: ledger {PostgresLedger(postgres_url)} is in use by another apply run: pid 4242"
        " on host night-runner-7 (wait for it to finish, or pass --wait-for-lock SECONDS)"
    )
    assert "***" in err[-1]
