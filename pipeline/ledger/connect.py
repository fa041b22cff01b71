"""Connecting to a ledger, and what opening it checks and adds.

A ledger made by an earlier version is brought up to date when it is opened (the tables and
indexes of ``tables.SCHEMA`` it lacks, ``ADDED_COLUMNS``): on PostgreSQL only what the catalog
says is missing, so a role without CREATE uses a ledger its owner brought up to date, and is
told (exit 2) to have the owner open it when something must be added. A file that can't be
this ledger (damaged pages, another program's tables, a window end that isn't an instant) is
refused before anything is written to it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sqlite3
from pathlib import Path

import psycopg.errors

from pipeline.common.errors import UsageError
from pipeline.ledger import postgres
from pipeline.ledger.dialects import Db, PostgresDb, SqliteDb
from pipeline.ledger.failures import damaged
from pipeline.ledger.location import LedgerLocation, PostgresLedger
from pipeline.ledger.tables import ADDED_COLUMNS, SCHEMA

# Held while a PostgreSQL ledger's tables are checked and created (a transaction's advisory lock).
SCHEMA_LOCK_KEY = 0x6F72_6163_6F64_6531  # "oracode1"
# What an instant in ``codes`` looks like (``2027-03-12T15:00:00-08:00``): a window end that
# doesn't, in each database's words. SQLite's julianday() also says whether it is a date at all
# (it is NULL for ``2027-13-45`` or ``soon``).
_NOT_AN_INSTANT = {
    "sqlite": "typeof({column}) != 'text'"
    " OR {column} NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]*'"
    " OR julianday({column}) IS NULL",
    "postgresql": "{column} !~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T[0-9]{{2}}:[0-9]{{2}}'",
}


def connect(location: LedgerLocation) -> Db:
    """Open the ledger at ``location`` (a SQLite file, created if needed, or a PostgreSQL
    database), checked and brought up to date; blocking, so for a worker thread."""
    if isinstance(location, PostgresLedger):
        return connect_postgres(location)
    return connect_sqlite(location)


def connect_sqlite(path: Path) -> SqliteDb:
    """Open (creating if needed) the ledger file at ``path``, checked and brought up to date.
    Raises CorruptLedgerError when the file can't be this ledger, UsageError when ``path``
    isn't a file; sqlite3's and the system's errors as they come (``failures.open_failure``
    translates them)."""
    _create_private(path)
    connection = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=30.0, factory=SqliteDb
    )
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("PRAGMA foreign_keys = ON")
        _check_ledger(connection, path)
        connection.executescript(SCHEMA)
        connection.execute("BEGIN")
        _add_columns(connection)
        connection.execute("COMMIT")
    except BaseException:
        connection.close()
        raise
    return connection


def connect_postgres(ledger: PostgresLedger) -> PostgresDb:
    """Open the ledger in the PostgreSQL database ``ledger`` names (its tables in the
    connection's current schema, created on first use), checked and brought up to date.
    Raises CorruptLedgerError when the tables there can't be this ledger's, UsageError (exit 2)
    when it needs a table, index or column the role may not create (naming them, the owner's
    role to open it with and the GRANTs); psycopg's errors as they come
    (``failures.open_failure`` translates them)."""
    db = PostgresDb(postgres.connect(ledger, purpose="ledger"))
    try:
        db.execute("BEGIN")
        # Hosts opening a new ledger at once: one creates the tables and columns, the others
        # wait for it. Only what is missing is created (as the catalog, not the role's
        # privileges, says): a role without CREATE on the schema uses a ledger made by another.
        db.execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK_KEY,))
        present = _check_ledger(db, ledger)
        relations = {str(name) for (name,) in db.execute(_RELATIONS).fetchall()}
        missing = [(kind, name, sql) for kind, name, sql in _objects() if name not in relations]
        needed = [f"{kind} {name}" for kind, name, _ in missing] + [
            f"column {table}.{column}"
            for table, columns in ADDED_COLUMNS.items()
            for column in columns
            if table in present and column not in present[table]
        ]
        role = str(db.execute("SELECT current_user").fetchone()[0]) if needed else ""
        refusal = None
        try:
            for _, _, sql in missing:
                db.execute(sql)
            _add_columns(db)
        except psycopg.errors.InsufficientPrivilege as exc:
            refusal = exc.diag.message_primary or postgres.reason(ledger, exc)
        if refusal is not None:  # outside the handler: the driver's words are not its context
            raise _not_upgradable(ledger, role, needed, missing, refusal)
        db.execute("COMMIT")
    except BaseException:
        db.close()
        raise
    return db


def _not_upgradable(
    ledger: PostgresLedger,
    role: str,
    needed: list[str],
    missing: list[tuple[str, str, str]],
    refusal: str,
) -> UsageError:
    """The line for a ledger that needs what its role may not create."""
    tables = [name for kind, name, _ in missing if kind == "table"]
    grant = ""
    if tables:
        grant = (
            f"; then, as the owner: GRANT SELECT, INSERT, UPDATE, DELETE ON"
            f" {', '.join(tables)} TO {role}"
        )
    return UsageError(
        f"ledger {ledger} was made by an earlier version, and role {role} can't bring it up to"
        f" date: it needs {', '.join(needed)} ({refusal})",
        hint="open it once with the role that owns its tables (e.g. oracode-provision report"
        f" --ledger <the owner's URL>){grant}",
    )


# Every table and index in the connection's current schema, whatever the role may do with them
# (``information_schema`` shows a role only the tables it has a privilege on).
_RELATIONS = (
    "SELECT relname FROM pg_catalog.pg_class"
    " WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r', 'p', 'i')"
)


@functools.cache
def _objects() -> list[tuple[str, str, str]]:
    """``SCHEMA``'s statements in PostgreSQL's words, one per object: ``(kind, name, sql)``,
    kind ``table`` or ``index``."""
    schema = postgres_schema()
    without_comments = "\n".join(line.split("--")[0] for line in schema.splitlines())
    objects = []
    for statement in filter(str.strip, without_comments.split(";")):
        found = re.search(r"CREATE (TABLE|INDEX) IF NOT EXISTS (\w+)", statement)
        if found is None:
            raise AssertionError(f"not a CREATE of the ledger's schema: {statement[:60]!r}")
        objects.append((found[1].lower(), found[2], statement.strip()))
    return objects


def postgres_schema() -> str:
    """``SCHEMA`` in PostgreSQL's words: an identity column for SQLite's autoincrement, and
    text compared byte by byte (collation "C"), as SQLite compares it, so that every ordering
    is the same on both."""
    schema = SCHEMA.replace(
        "INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    )
    return _text_as_postgres(schema)


def _text_as_postgres(sql: str) -> str:
    """Every ``TEXT`` column compared byte by byte, as SQLite compares text."""
    return re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', sql)


def _add_columns(db: Db) -> None:
    """Give a ledger made by an earlier version (or ``SCHEMA``'s first-release tables just
    created) the columns added since, in the caller's transaction."""
    present = _present_columns(db)
    for table, columns in ADDED_COLUMNS.items():
        for name, (kind, fill) in columns.items():
            if name not in present[table]:
                if db.dialect == "postgresql":
                    kind = _text_as_postgres(kind)
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
                if fill is not None:
                    db.execute(fill)


# Each table there is (PostgreSQL: in the current schema) and its columns, in one read.
_PRESENT_COLUMNS = {
    "sqlite": "SELECT m.name, c.name FROM sqlite_master m, pragma_table_info(m.name) c"
    " WHERE m.type = 'table'",
    # The catalog, not information_schema, which hides the tables a role has no privilege on.
    "postgresql": "SELECT c.relname, a.attname FROM pg_catalog.pg_class c"
    " JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid"
    " WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')"
    " AND a.attnum > 0 AND NOT a.attisdropped",
}


def _present_columns(db: Db) -> dict[str, set[str]]:
    present: dict[str, set[str]] = {}
    for table, column in db.execute(_PRESENT_COLUMNS[db.dialect]).fetchall():
        present.setdefault(str(table), set()).add(str(column))
    return present


def _create_private(path: Path) -> None:
    """Create the file with mode 0600 (it will hold PINs), or narrow an existing one to it.

    SQLite creates its ``-wal`` and ``-shm`` files with the database file's mode; ones a killed
    run left behind are narrowed too, since they may hold PINs not yet checkpointed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise UsageError(f"ledger {path} is {kind}", hint="give --ledger a file's path")
    descriptor = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
    finally:
        os.close(descriptor)
    for suffix in ("-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.chmod(0o600)


@functools.cache
def _expected_columns() -> dict[str, set[str]]:
    """Each table of ``SCHEMA`` and its columns, as SQLite itself reads the schema."""
    with contextlib.closing(sqlite3.connect(":memory:", factory=SqliteDb)) as db:
        db.executescript(SCHEMA)
        present = _present_columns(db)
    return {table: columns for table, columns in present.items() if not table.startswith("sqlite_")}


def _check_ledger(db: Db, location: LedgerLocation) -> dict[str, set[str]]:
    """Raise CorruptLedgerError (exit 2) when the ledger at ``location`` can't be this ledger;
    else return its tables and their columns (``_present_columns``).

    Run before the schema is brought up to date: damaged pages (SQLite's ``PRAGMA
    quick_check``: a read of every page, no index cross-check; on PostgreSQL they are the
    server's to find), a table of ours that lacks one of its first release's columns (another
    program's table, a dropped column), and a ``codes`` window end that isn't an instant.
    Columns added since the first release are not required: opening adds them.
    """
    if db.dialect == "sqlite":
        problems = [str(row[0]) for row in db.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            raise damaged(location, " ".join("; ".join(problems).split()))
    present = _present_columns(db)
    for table, expected in _expected_columns().items():
        if table not in present:
            continue  # a ledger of an earlier release: opening creates it
        missing = expected - present[table] - set(ADDED_COLUMNS.get(table, {}))
        if missing:
            noun = "column" if len(missing) == 1 else "columns"
            raise damaged(location, f"its table {table} lacks {noun} {', '.join(sorted(missing))}")
    if "codes" not in present:
        return present
    for column in ("starts_at", "ends_at"):
        not_an_instant = _NOT_AN_INSTANT[db.dialect].format(column=column)
        bad = db.execute(
            f"SELECT idempotency_tag, {column} FROM codes WHERE {column} IS NULL"
            f" OR {not_an_instant} LIMIT 1"
        ).fetchone()
        if bad is not None:
            tag, value = bad
            raise damaged(
                location, f"code {tag} has {column} {str(value)[:40]!r}, which is not an instant"
            )
    return present
