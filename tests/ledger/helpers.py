"""What the ledger tests share: planned rows, access codes, reading the committed file."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any

import psycopg

from pipeline.ledger.dialects import Db, PostgresDb, SqliteDb
from pipeline.ledger.location import LedgerLocation, PostgresLedger
from pipeline.ledger.store import Ledger
from pipeline.seam.models import AccessCode


def planned(tag: str, device_id: str = "device-1") -> dict[str, Any]:
    """A planned row as ``register`` takes it."""
    return {
        "idempotency_tag": tag,
        "reservation_id": f"res-{tag}",
        "device_id": device_id,
        "door_name": "Room 101",
        "site_name": "Hotel",
        "user_level_name": "Guest",
        "starts_at": "2026-12-01T15:00:00Z",
        "ends_at": "2026-12-03T11:00:00Z",
        "max_time_rounding": "1h",
        "name": f"Guest {tag}",
    }


def access_code(code_id: str = "ac-1") -> AccessCode:
    return AccessCode(access_code_id=code_id, device_id="device-1", code="123456", status="set")


def rows(ledger: Ledger, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Read what is committed through a second connection (SQLite's WAL lets it read
    alongside; PostgreSQL's own connection sees committed rows)."""
    return query(ledger.path, sql, *args)


def connect(location: LedgerLocation) -> Db:
    """A connection of its own to the ledger at ``location``, outside any transaction: each
    statement commits itself, and one run in ``BEGIN IMMEDIATE`` writes as the ledger does."""
    if isinstance(location, PostgresLedger):
        return PostgresDb(psycopg.connect(location.url, autocommit=True))
    return sqlite3.connect(location, isolation_level=None, factory=SqliteDb)


def query(location: LedgerLocation, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run one statement (``?`` parameters) on the ledger at ``location``, committed."""
    with contextlib.closing(connect(location)) as db:
        cursor = db.execute(sql, args)
        return [] if cursor.description is None else [tuple(row) for row in cursor.fetchall()]


def dict_rows(location: LedgerLocation, sql: str, *args: Any) -> list[dict[str, Any]]:
    """``query``'s rows as dicts by column name."""
    with contextlib.closing(connect(location)) as db:
        cursor = db.execute(sql, args)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def insertion_order(location: LedgerLocation) -> str:
    """An ORDER BY that lists an append-only table's rows as they were added (SQLite's rowid;
    a PostgreSQL table never updated keeps its rows in the order of their ctid)."""
    return "ORDER BY ctid" if isinstance(location, PostgresLedger) else "ORDER BY rowid"


@contextlib.contextmanager
def holding_ledger(location: LedgerLocation) -> Iterator[Db]:
    """Another writer holding the ledger for the block, in a write transaction as the ledger
    makes them (``BEGIN IMMEDIATE``: SQLite's write lock, or on PostgreSQL the ledger's write
    lock); yields its connection, and commits at the end."""
    other = connect(location)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield other
        other.execute("COMMIT")
    finally:
        other.close()


def ledger_argument(location: LedgerLocation) -> str:
    """``--ledger``'s value for ``location`` (a PostgreSQL URL with its password)."""
    return location.url if isinstance(location, PostgresLedger) else str(location)
