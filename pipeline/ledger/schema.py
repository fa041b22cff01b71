"""The ledger's tables, the states of a code, and what opening a ledger file checks and adds.

A ledger made by an earlier version is brought up to date when it is opened (``ADDED_COLUMNS``);
a file that can't be this ledger (damaged pages, another program's tables, a window end that
isn't an instant) is refused before anything is written to it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import re
import sqlite3
from pathlib import Path

from pipeline.errors import UsageError
from pipeline.ledger import postgres
from pipeline.ledger.dialects import Db, PostgresDb, SqliteDb
from pipeline.ledger.failures import damaged
from pipeline.ledger.location import LedgerLocation, PostgresLedger

# States from which a create may be sent: the compare-and-set into ``sending`` starts from these.
SENDABLE = ("pending", "failed")
# States in which a code may exist on its door: ``created`` (Seam said so) and ``sending`` (its
# create left, the answer is unknown). Such codes count on their doors' budgets, can become
# orphans, and make a moved reservation's row wait for a person; ``MAY_EXIST_SQL`` says it in SQL.
MAY_EXIST = ("created", "sending")
MAY_EXIST_SQL = f"state IN ({', '.join(repr(state) for state in MAY_EXIST)})"

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    command TEXT NOT NULL,
    inputs TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    exit_code INTEGER,
    counts TEXT
);
CREATE TABLE IF NOT EXISTS codes (
    idempotency_tag TEXT PRIMARY KEY,
    reservation_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    door_name TEXT,
    site_name TEXT,
    user_level_name TEXT,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    max_time_rounding TEXT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'created', 'failed')),
    reason TEXT,
    message TEXT,
    access_code_id TEXT,
    code TEXT,
    code_status TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    seam_request_id TEXT,
    first_run_id TEXT NOT NULL REFERENCES runs (run_id),
    last_run_id TEXT NOT NULL REFERENCES runs (run_id),
    created_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS codes_by_reservation ON codes (reservation_id, device_id);
CREATE INDEX IF NOT EXISTS codes_by_state ON codes (state);
CREATE TABLE IF NOT EXISTS events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    idempotency_tag TEXT,
    path TEXT,
    http_status INTEGER,
    seam_request_id TEXT,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS run_doors (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    device_id TEXT,
    door_name TEXT,
    site_name TEXT,
    matched INTEGER NOT NULL,  -- 1: device_id is a door of the workspace
    outcome TEXT NOT NULL,
    reason TEXT,
    rows INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS run_doors_by_run ON run_doors (run_id);
CREATE TABLE IF NOT EXISTS run_budgets (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    device_id TEXT NOT NULL,
    mode TEXT NOT NULL,
    budget INTEGER NOT NULL,
    budget_source TEXT,
    reserve INTEGER NOT NULL,
    used INTEGER NOT NULL,
    after INTEGER NOT NULL,
    PRIMARY KEY (run_id, device_id)
);
-- Seam's events as they came (webhook deliveries, one row per event id): never a PIN, never
-- the raw body; ``outcome`` says what the event did to the ledger (``pipeline.ledger.events``).
CREATE TABLE IF NOT EXISTS seam_events (
    event_id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    access_code_id TEXT,
    device_id TEXT,
    occurred_at TEXT,
    created_at TEXT,
    delivery_id TEXT UNIQUE,  -- the webhook's svix-id: a retried delivery has the same one
    received_at TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS seam_events_by_code ON seam_events (access_code_id);
-- Webhooks find their code by Seam's id.
CREATE INDEX IF NOT EXISTS codes_by_access_code ON codes (access_code_id);
-- The hand-off (``pins``): each planned code's guest name, the instant up to which status
-- knows every unfinished code (its catch-up from events starts there), and what the last
-- nightly summary reported (so the next one reports only what is new).
CREATE TABLE IF NOT EXISTS guests (
    idempotency_tag TEXT PRIMARY KEY,
    guest_name TEXT
);
CREATE TABLE IF NOT EXISTS status_cursor (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    known_until TEXT NOT NULL
);
-- One of our tags found on more than one code of its door (``pipeline.ledger.duplicates``):
-- every code found carrying it, as JSON (with their PINs: never in the report), and when it
-- was first and last seen; the codes' window end, for tags the ledger has no code of.
CREATE TABLE IF NOT EXISTS duplicates (
    idempotency_tag TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    name TEXT,
    ends_at TEXT,
    codes TEXT NOT NULL,
    first_seen_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    first_run_id TEXT NOT NULL,
    last_run_id TEXT NOT NULL
);
-- The Seam workspace whose codes the ledger records (the first key's, kept): a key for another
-- workspace is refused (``pipeline.ledger.workspace``).
CREATE TABLE IF NOT EXISTS workspace (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    workspace_id TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
-- When each door's codes were last listed in full (every page, no search): a door holding an
-- open code is looked at for duplicates again once this is old (``pipeline.ledger.duplicates``);
-- none yet for the doors of a ledger an earlier version made.
CREATE TABLE IF NOT EXISTS door_looks (
    device_id TEXT PRIMARY KEY,
    looked_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS known_trouble (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
"""

# Columns added after the first release, per table: ledgers made before them get them on open,
# with the statement (if any) that fills them in for the rows already there.
ADDED_COLUMNS: dict[str, dict[str, tuple[str, str | None]]] = {
    "codes": {
        # JSON list of Seam's errors on the code, as last seen; and of its warnings
        "code_errors": ("TEXT", None),
        "code_warnings": ("TEXT", None),
        "needs_attention": ("TEXT", None),  # why a person should look at it (null: nothing)
        "status_checked_at": ("TEXT", None),  # when Seam was last asked
        "replaces_tag": ("TEXT", None),  # a reissued code: the tag of the code it replaces
        # The first apply run whose inputs no longer had the code's reservation (null: it had)
        "orphaned_run_id": ("TEXT", None),
        # The first apply run whose input gave the code's reservation other codes only (the
        # stay moved: another door or window); null while the input still has it
        "superseded_run_id": ("TEXT", None),
        # When the last create for it was sent (wall clock, UTC): its outcome settles from there
        "sent_at": ("TEXT", None),
        # When the Seam event that last moved the code's status happened (Seam's clock): no
        # older event moves it again (``pipeline.ledger.events``)
        "status_event_at": ("TEXT", None),
        # A code made because [doors.also] asked for it: the doors of the stay it serves
        # (null: a code for a row's own door)
        "also_for": ("TEXT", None),
        # The first apply run whose config no longer asked for this [doors.also] code while
        # its reservation was still in the input (null: still asked for, or never was)
        "also_dropped_run_id": ("TEXT", None),
        # When a look after an unknown outcome last found no code, before the create was sent
        # again: the earlier create may still be carried out late, so the code's door is looked
        # at for a duplicate while its window is open (``pipeline.ledger.duplicates``)
        "not_found_at": ("TEXT", None),
        # Another PIN than ``code`` that a Seam event gave the code (never swapped in: the code
        # needs attention until ``status`` asks Seam); null once status has
        "reported_code": ("TEXT", None),
    },
    "run_doors": {
        # Rows kept before it: a row that named a device_id counted as a door's, as the
        # report showed them then.
        "matched": (
            "INTEGER NOT NULL DEFAULT 1",
            "UPDATE run_doors SET matched = CASE WHEN device_id IS NULL THEN 0 ELSE 1 END",
        ),
    },
}
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


def timestamp() -> str:
    """The current time as the ledger records it (UTC, to the millisecond)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


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
    Raises CorruptLedgerError when the tables there can't be this ledger's; psycopg's errors as
    they come (``failures.open_failure`` translates them)."""
    db = PostgresDb(postgres.connect(ledger, purpose="ledger"))
    try:
        db.execute("BEGIN")
        # Hosts opening a new ledger at once: one creates the tables and columns, the others
        # wait for it. The tables are created only when missing: a role without CREATE on the
        # schema can use a ledger made by another.
        db.execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK_KEY,))
        present = _check_ledger(db, ledger)
        if not present.keys() >= _expected_columns().keys():
            db.execute(postgres_schema())
        _add_columns(db)
        db.execute("COMMIT")
    except BaseException:
        db.close()
        raise
    return db


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
    "postgresql": "SELECT table_name, column_name FROM information_schema.columns"
    " WHERE table_schema = current_schema()",
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
