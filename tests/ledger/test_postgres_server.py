"""The throwaway PostgreSQL server the ledger tests run on (``tests.postgres``): passwords are
checked, databases are apart, an abrupt stop keeps what was committed, and a connection can
be cut from the server's side."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psycopg
import pytest

from tests.postgres import PostgresMissing, PostgresServer, find_binaries


def _executables(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_text("#!/bin/sh\n")
        (folder / name).chmod(stat.S_IRWXU)


def test_binaries_of_the_newest_complete_major(tmp_path: Path) -> None:
    _executables(tmp_path / "9.6" / "bin", "initdb", "pg_ctl")
    _executables(tmp_path / "16" / "bin", "initdb", "pg_ctl")
    _executables(tmp_path / "15" / "bin", "initdb", "pg_ctl")
    _executables(tmp_path / "17" / "bin", "initdb")  # a half-installed major
    found = find_binaries(tmp_path, path=str(tmp_path / "empty"))
    assert found.initdb == tmp_path / "16" / "bin" / "initdb"
    assert found.pg_ctl == tmp_path / "16" / "bin" / "pg_ctl"


def test_missing_binaries_say_how_to_install_them(tmp_path: Path) -> None:
    with pytest.raises(PostgresMissing, match=r"make postgres"):
        find_binaries(tmp_path / "none", path=str(tmp_path / "empty"))


@pytest.mark.slow
def test_the_password_is_checked(postgres_server: PostgresServer, postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
    wrong = postgres_url.replace(postgres_server.password, "not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=10)


@pytest.mark.slow
def test_a_url_without_password_takes_pgpassword_or_pgpass(
    postgres_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = postgres_server.new_database(with_password=False)
    assert postgres_server.password not in bare
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    with pytest.raises(psycopg.OperationalError, match="no password supplied"):
        psycopg.connect(bare, connect_timeout=10)

    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{postgres_server.port}:*:postgres:{postgres_server.password}\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    psycopg.connect(bare, connect_timeout=10).close()

    monkeypatch.setenv("PGPASSFILE", os.devnull)
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    psycopg.connect(bare, connect_timeout=10).close()


@pytest.mark.slow
def test_new_databases_are_apart(postgres_server: PostgresServer) -> None:
    first, second = postgres_server.new_database(), postgres_server.new_database()
    assert first != second
    with psycopg.connect(first, autocommit=True) as conn:
        conn.execute("CREATE TABLE runs (id int)")
        conn.execute("INSERT INTO runs VALUES (1)")
    with psycopg.connect(second, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('runs')").fetchone() == (None,)
        conn.execute("CREATE TABLE runs (id int)")
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (0,)


@pytest.mark.slow
def test_an_immediate_stop_keeps_what_was_committed(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE runs (id int)")
        conn.execute("INSERT INTO runs VALUES (1)")
    open_transaction = psycopg.connect(postgres_url)
    open_transaction.execute("INSERT INTO runs VALUES (2)")

    postgres_server.restart_abruptly()

    assert "not properly shut down" in postgres_server.log_tail(40)
    with pytest.raises(psycopg.OperationalError):
        open_transaction.execute("SELECT 1")
    open_transaction.close()
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT id FROM runs").fetchall() == [(1,)]


@pytest.mark.slow
def test_terminate_backends_cuts_an_open_connection(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("SELECT 1")
        assert postgres_server.terminate_backends(postgres_url) == 1
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
