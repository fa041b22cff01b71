"""The two databases the ledger can live in, behind the one connection interface its SQL uses.

The ledger's SQL is written once, in the subset SQLite and PostgreSQL share (``?`` parameters,
``ON CONFLICT ... DO NOTHING``, ``COUNT(*) FILTER (WHERE ...)``, savepoints, temporary tables),
against ``Db``: the part of ``sqlite3.Connection`` the ledger uses. A SQLite connection is one
as it is (``SqliteDb``); a PostgreSQL one is psycopg's, seen through ``PostgresDb``, which turns
``?`` into psycopg's ``%s``, booleans into the integers the schema keeps, and ``BEGIN IMMEDIATE``
into a transaction that first takes the ledger's write lock. The rare statements
that differ (the schema's identity column, a list of keys to join with, the opening checks)
branch on ``db.dialect``.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal, Protocol

import psycopg

Dialect = Literal["sqlite", "postgresql"]
# A write transaction on PostgreSQL takes this transaction-level advisory lock first, so that
# writers take turns as SQLite's BEGIN IMMEDIATE makes them: a webhook delivery's read-then-
# write, a status commit and a run's group commit never interleave, whichever process makes
# them ("oracode2"; the schema's lock is "oracode1").
WRITE_LOCK_KEY = 0x6F72_6163_6F64_6532
# The errors a database call can raise, whichever the database.
DATABASE_ERRORS = (sqlite3.Error, psycopg.Error)


class Cursor(Protocol):
    """What the ledger reads from a statement's cursor."""

    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Db(Protocol):
    """A ledger connection: SQLite's own, or PostgreSQL's through ``PostgresDb``. Transactions
    are the caller's (``BEGIN`` ... ``COMMIT``); outside one every statement commits itself."""

    @property
    def dialect(self) -> Dialect: ...

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...

    def close(self) -> None: ...


class SqliteDb(sqlite3.Connection):
    """A SQLite connection that says which database it is (``sqlite3.connect(factory=...)``)."""

    dialect: Dialect = "sqlite"


class PostgresDb:
    """A psycopg connection (in autocommit mode: the ledger sends its own ``BEGIN``) with the
    interface of ``Db``."""

    dialect: Dialect = "postgresql"

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection

    @property
    def in_transaction(self) -> bool:
        status = self.connection.info.transaction_status
        return status in (
            psycopg.pq.TransactionStatus.INTRANS,
            psycopg.pq.TransactionStatus.INERROR,
        )

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        if not parameters:
            # Without parameters psycopg reads no placeholders: the text goes as it is.
            return self.connection.execute(_begin(sql))
        return self.connection.execute(_postgres(sql), _values(parameters))

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor:
        cursor = self.connection.cursor()
        cursor.executemany(_postgres(sql), [_values(row) for row in parameters])
        return cursor

    def close(self) -> None:
        self.connection.close()


@functools.lru_cache(maxsize=512)
def _postgres(sql: str) -> str:
    """``?`` parameters as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return _begin(sql.replace("%", "%%")).replace("?", "%s")


@functools.lru_cache(maxsize=512)
def _begin(sql: str) -> str:
    """``BEGIN IMMEDIATE`` (SQLite's write lock up front) as ``BEGIN`` and the ledger's write
    lock (``WRITE_LOCK_KEY``), in one round trip."""
    return re.sub(
        r"^BEGIN IMMEDIATE\b", f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})", sql
    )


def _values(parameters: Sequence[Any]) -> tuple[Any, ...]:
    """The schema keeps flags as integers (as SQLite does): a bool is sent as 0 or 1."""
    return tuple(int(value) if isinstance(value, bool) else value for value in parameters)
