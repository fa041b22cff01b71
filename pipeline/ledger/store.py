"""The ledger: what the pipeline did, in SQLite, so that no crash or rerun creates a code twice.

Tables
    runs    one row per ``apply`` run: command, inputs, pid, host, start, end, exit code, counts
    codes   one row per planned code (a reservation on a door with its window), keyed by the
            idempotency tag; ``state`` goes pending → sending → created | failed
    events  append-only: every request sent to Seam with its answer, every state change
    run_doors    per ``apply`` run: input rows per door, outcome and reason (for the report)
    run_budgets  per ``apply`` run: each budgeted door's budget, codes used before the run and
                 after it

A code is marked ``sending`` (and committed) before its create leaves the process; only a
``created`` code is final. A ``sending`` code has an unknown outcome until someone looks for it
on the door. The ledger holds PINs, so the file is created readable by its owner only; it never
holds an API key (requests are logged without headers).

All database work runs in one worker thread (``anyio.to_thread`` with a limiter of 1), never on
the event loop. Commits are durable (WAL, ``synchronous=FULL``) and shared: an awaited change
returns once committed, together with every change queued before it. What Seam answered a
create (``mark_created``, ``mark_failed``, ``mark_pending``) is queued, not awaited: it goes in
with the next commit (the next ``sending``, any read, ``commit_every``'s beat, ``close``). Until
then the code is still ``sending`` on disk, which is the safe side: a run that stops before the
answer is committed looks for the code on its door before sending anything for it again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import functools
import json
import logging
import os
import socket
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

import anyio
import anyio.to_thread

from pipeline.errors import CorruptLedgerError, LedgerError, PipelineError, UsageError
from pipeline.seam.client import Exchange
from pipeline.seam.models import AccessCode

log = logging.getLogger(__name__)
DEFAULT_LEDGER = Path("outputs/ledger.sqlite")
# States from which a create may be sent: the compare-and-set into ``sending`` starts from these.
SENDABLE = ("pending", "failed")
# What the ledger keeps of a planned row, besides its state.
CODE_COLUMNS = (
    "idempotency_tag",
    "reservation_id",
    "device_id",
    "door_name",
    "site_name",
    "user_level_name",
    "starts_at",
    "ends_at",
    "max_time_rounding",
    "name",
)
# What a code is for, as a person reads it: the reservation, its door and its window.
STAY_COLUMNS = ("reservation_id", "device_id", "door_name", "site_name", "starts_at", "ends_at")
LEDGER_CODE_COLUMNS = (
    "idempotency_tag",
    "device_id",
    "name",
    "state",
    "access_code_id",
    "attempts",
    "sent_at",
)
RESULT_COLUMNS = (
    "idempotency_tag",
    "state",
    "reason",
    "message",
    "access_code_id",
    "code",
    "code_status",
    "attempts",
    "seam_request_id",
    "last_run_id",
)

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
        # When the last create for it was sent (wall clock, UTC): its outcome settles from there
        "sent_at": ("TEXT", None),
    },
    "run_doors": {
        # Rows kept before it: a row that named a device_id counted as a door's, as the
        # report showed them then.
        "matched": (
            "INTEGER NOT NULL DEFAULT 1",
            "UPDATE run_doors SET matched = device_id IS NOT NULL",
        ),
    },
}

T = TypeVar("T")


def _add_columns(db: sqlite3.Connection) -> None:
    """Give a ledger made by an earlier version the columns added since, in one transaction."""
    db.execute("BEGIN")
    for table, columns in ADDED_COLUMNS.items():
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for name, (kind, fill) in columns.items():
            if name not in present:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
                if fill is not None:
                    db.execute(fill)
    db.execute("COMMIT")


@dataclass(frozen=True)
class LedgerCode:
    """A ``codes`` row as the apply stage needs it."""

    idempotency_tag: str
    device_id: str
    name: str
    state: str
    access_code_id: str | None
    attempts: int
    sent_at: str | None = None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _request_event(exchange: Exchange) -> tuple[Any, ...]:
    """An exchange's ``events`` columns: path, status, request id and its detail as JSON."""
    detail = {
        "body": exchange.body,
        "error_type": exchange.error_type,
        "message": exchange.message,
        "seconds": round(exchange.seconds, 4),
    }
    return exchange.path, exchange.status, exchange.request_id, json.dumps(detail)


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


# SQLite's primary result codes that say the file or its disk failed us, not our SQL.
_DISK_FAILURES = frozenset(
    {
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PERM,
    }
)
_DAMAGE = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
# What an instant in ``codes`` looks like (``2027-03-12T15:00:00-08:00``); SQLite's julianday()
# then says whether it is a date at all (it is NULL for ``2027-13-45`` or ``soon``).
_INSTANT_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]*"
# Less free space than this on the ledger's disk makes an I/O error a full disk.
_NO_SPACE_BYTES = 64 * 1024
_CORRUPT_HINT = (
    "restore it from a backup, or move it aside and pass it on to the pipeline's maintainers:"
    " a new ledger does not know which codes were already sent"
)


def _sqlite_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _is_disk_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is the disk (or the file) failing rather than a change's own error."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS)
    return isinstance(exc, sqlite3.Error) and _sqlite_code(exc) in _DISK_FAILURES | _DAMAGE


def _is_out_of_space(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return _sqlite_code(exc) == sqlite3.SQLITE_FULL


def _has_no_space(folder: Path) -> bool:
    """Whether the file system of ``folder`` has (nearly) no space left for us."""
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < _NO_SPACE_BYTES


def _first_disk_failure(exc: BaseException) -> BaseException:
    """``exc``, or the disk failure it happened while handling: when SQLite rolls a whole
    transaction back on a full disk, undoing a savepoint then fails with 'no such savepoint',
    which hides the cause."""
    seen: BaseException | None = exc
    while seen is not None:
        if _is_disk_failure(seen):
            return seen
        seen = seen.__context__
    return exc


def _write_failure(path: Path, exc: BaseException) -> PipelineError:
    """The one-line error for a ledger that couldn't be written (LedgerError, exit 3), naming
    the file and SQLite's or the system's own words; a damaged file is CorruptLedgerError."""
    exc = _first_disk_failure(exc)
    if _sqlite_code(exc) in _DAMAGE:
        return _damaged(path, str(exc))
    cause = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__
    folder = path.parent
    full = _is_out_of_space(exc)
    if not full and _sqlite_code(exc) == sqlite3.SQLITE_IOERR and _has_no_space(folder):
        # SQLite says only "disk I/O error" when, say, the -shm file can't grow on a full disk.
        cause = f"{cause} ({getattr(exc, 'sqlite_errorname', 'SQLITE_IOERR')}), its disk is full"
        full = True
    hint = (
        f"free space on {folder} and rerun: the ledger is intact"
        if full
        else f"check the disk and permissions of {folder} and rerun: the ledger is intact"
    )
    return LedgerError(f"ledger {path} can't be written: {cause}", hint=hint)


def _damaged(path: Path, what: str) -> CorruptLedgerError:
    return CorruptLedgerError(
        f"ledger {path} is damaged or not a ledger: {what}", hint=_CORRUPT_HINT
    )


@functools.cache
def _expected_columns() -> dict[str, set[str]]:
    """Each table of ``SCHEMA`` and its columns, as SQLite itself reads the schema."""
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        db.executescript(SCHEMA)
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            table: {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            for table in tables
            if not table.startswith("sqlite_")
        }


def _check_ledger(db: sqlite3.Connection, path: Path) -> None:
    """Raise CorruptLedgerError (exit 2) when the file at ``path`` can't be this ledger.

    Run before the schema is brought up to date: damaged pages (``PRAGMA quick_check``: a
    read of every page, no index cross-check), a table of ours that lacks one of its first
    release's columns (another program's table, a dropped column), and a ``codes`` window end
    that isn't an instant. Columns added since the first release are not required: opening
    adds them.
    """
    problems = [str(row[0]) for row in db.execute("PRAGMA quick_check(3)")]
    if problems != ["ok"]:
        raise _damaged(path, " ".join("; ".join(problems).split()))
    present: dict[str, set[str]] = {}
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        present[table] = {row[1] for row in db.execute(f"PRAGMA table_info({table!r})")}
    for table, expected in _expected_columns().items():
        if table not in present:
            continue  # a ledger of an earlier release: opening creates it
        missing = expected - present[table] - set(ADDED_COLUMNS.get(table, {}))
        if missing:
            noun = "column" if len(missing) == 1 else "columns"
            raise _damaged(path, f"its table {table} lacks {noun} {', '.join(sorted(missing))}")
    if "codes" not in present:
        return
    for column in ("starts_at", "ends_at"):
        bad = db.execute(
            f"SELECT idempotency_tag, {column} FROM codes WHERE {column} IS NULL"
            f" OR typeof({column}) != 'text' OR {column} NOT GLOB ?"
            f" OR julianday({column}) IS NULL LIMIT 1",
            (_INSTANT_GLOB,),
        ).fetchone()
        if bad is not None:
            tag, value = bad
            raise _damaged(
                path, f"code {tag} has {column} {str(value)[:40]!r}, which is not an instant"
            )


@dataclass(eq=False)
class _Change:
    """A change waiting for a commit; ``awaited``: a caller waits for its result."""

    apply: Callable[[sqlite3.Connection], Any]
    awaited: bool
    done: bool = False
    result: Any = None
    error: BaseException | None = None

    def run(self, db: sqlite3.Connection) -> None:
        """Apply it in its own savepoint, so that its failure undoes only itself."""
        db.execute("SAVEPOINT change")
        try:
            self.result = self.apply(db)
        except Exception as exc:
            db.execute("ROLLBACK TO change")
            self.error = exc
        db.execute("RELEASE change")


def _nothing(db: sqlite3.Connection) -> None:
    return None


class Ledger:
    """The SQLite ledger; open it with ``await Ledger.open(path)`` and close it when done."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path
        self._thread = anyio.CapacityLimiter(1)
        self._exchanges: list[tuple[str, Exchange]] = []
        self._queue: list[_Change] = []
        self._committing: anyio.Event | None = None

    @classmethod
    async def open(cls, path: Path = DEFAULT_LEDGER) -> Self:
        """Open (creating if needed) the ledger at ``path``, checked and brought up to date.

        Raises UsageError (exit 2) when it can't be opened (a wrong path, permissions),
        CorruptLedgerError (exit 2) when the file is damaged or isn't this ledger, and
        LedgerError (exit 3) when its disk is full or failing.
        """

        def connect() -> sqlite3.Connection:
            _create_private(path)
            connection = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            try:
                connection.execute("PRAGMA journal_mode = WAL")
                connection.execute("PRAGMA synchronous = FULL")
                connection.execute("PRAGMA foreign_keys = ON")
                _check_ledger(connection, path)
                connection.executescript(SCHEMA)
                _add_columns(connection)
            except BaseException:
                connection.close()
                raise
            return connection

        try:
            connection = await anyio.to_thread.run_sync(connect)
        except (OSError, sqlite3.Error) as exc:
            if _is_out_of_space(exc) or _sqlite_code(exc) in _DAMAGE | {sqlite3.SQLITE_IOERR}:
                raise _write_failure(path, exc) from exc
            raise UsageError(
                f"ledger {path} can't be opened: {exc}",
                hint="check --ledger and the folder's permissions",
            ) from exc
        return cls(connection, path)

    async def close(self) -> None:
        """Commit what is queued and close; shielded, so that a run being cancelled (Ctrl-C)
        still records the answers it got."""
        with anyio.CancelScope(shield=True):
            await self.commit()
            await self._run(self._db.close)

    async def commit(self) -> None:
        """Commit what is queued (changes and exchanges) now; returns once it is on disk."""
        if self._queue or self._exchanges or self._committing is not None:
            await self.write(_nothing)

    async def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``query`` in the ledger's thread, after committing what is queued (for other
        stages' reads)."""
        await self.commit()
        try:
            return await self._run(lambda: query(self._db))
        except sqlite3.Error as exc:
            raise _write_failure(self.path, exc) from exc

    async def _run(self, function: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(function, limiter=self._thread)

    async def write(self, change: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``change`` in the ledger's thread and return its result once it is committed,
        with every change queued before it and the buffered exchanges (other stages write
        through this too). Writes that arrive while a commit is going on share the next one."""
        queued = _Change(change, awaited=True)
        self._queue.append(queued)
        while not queued.done:
            if self._committing is not None:
                await self._committing.wait()
            else:
                await self._commit()
        if queued.error is not None:
            raise queued.error
        return queued.result  # type: ignore[no-any-return]

    def defer(self, change: Callable[[sqlite3.Connection], object]) -> None:
        """Queue ``change`` for the next commit, without waiting for it. Only for changes whose
        loss in a crash is safe; one that fails is logged (nobody waits to hear of it)."""
        self._queue.append(_Change(change, awaited=False))

    @asynccontextmanager
    async def commit_every(self, seconds: float) -> AsyncIterator[None]:
        """While the block runs, queued changes wait at most ``seconds`` for their commit
        (they would otherwise wait for the next write or read)."""

        async def beat() -> None:
            while True:
                await anyio.sleep(seconds)
                if self._queue:
                    await self.commit()

        failure: Exception | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(beat)
            try:
                yield
            except Exception as exc:
                failure = exc  # raised below as itself, not inside an exception group
            finally:
                group.cancel_scope.cancel()
        if failure is not None:
            raise failure

    async def _commit(self) -> None:
        """Commit everything queued, in one transaction in the ledger's thread."""
        batch, self._queue = self._queue, []
        exchanges, self._exchanges = self._exchanges, []
        self._committing = committed = anyio.Event()
        try:
            failure = await self._run(lambda: self._transaction(batch, exchanges))
        except BaseException:
            # Cancelled before the thread took it: the next commit takes it instead.
            if not any(change.done for change in batch):
                self._queue[:0] = batch
                self._exchanges[:0] = exchanges
            raise
        finally:
            self._committing = None
            committed.set()
        if failure is not None:
            # Nothing was committed. The requests happened whatever became of the changes:
            # log them next time.
            self._exchanges[:0] = exchanges
            unawaited = sum(not change.awaited for change in batch)
            if unawaited:
                log.error(
                    f"{unawaited} ledger change(s) nobody waits for were not recorded",
                    extra={"error": f"{type(failure).__name__}: {failure}"},
                )
            return
        for change in batch:
            if change.error is not None and not change.awaited:
                log.error(
                    "a ledger change was not recorded",
                    extra={"error": f"{type(change.error).__name__}: {change.error}"},
                )

    def _transaction(
        self, batch: list[_Change], exchanges: list[tuple[str, Exchange]]
    ) -> BaseException | None:
        """In the ledger's thread: every change in its own savepoint, then the exchanges, then
        COMMIT. Returns None when committed, else the error that undid the whole batch."""
        failure: BaseException | None = None
        try:
            self._db.execute("BEGIN IMMEDIATE")
            for change in batch:
                change.run(self._db)
                if change.error is not None and _is_disk_failure(change.error):
                    # The disk, not the change, failed: nothing of this batch can be trusted.
                    raise change.error
            self._db.executemany(
                "INSERT INTO events (run_id, at, kind, path, http_status, seam_request_id,"
                " detail) VALUES (?, ?, 'request', ?, ?, ?, ?)",
                [(run_id, _now(), *_request_event(exchange)) for run_id, exchange in exchanges],
            )
            self._db.execute("COMMIT")
        except BaseException as exc:
            # SQLite may have rolled the transaction back itself (a full disk at COMMIT does):
            # a ROLLBACK then fails with "no transaction is active" and hides the cause.
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            failure = exc
            if isinstance(exc, sqlite3.Error | OSError):
                failure = _write_failure(self.path, exc)
                failure.__cause__ = exc
        for change in batch:
            if failure is not None:
                change.error, change.result = failure, None
            change.done = True
        return failure

    def observe(self, run_id: str) -> Callable[[Exchange], None]:
        """A ``SeamClient`` observer that logs every exchange with the next commit."""
        return lambda exchange: self._exchanges.append((run_id, exchange))

    async def start_run(self, command: str, inputs: Sequence[str]) -> str:
        """Record a new run; returns its id."""
        run_id = f"run-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        await self.write(
            lambda db: db.execute(
                "INSERT INTO runs (run_id, command, inputs, pid, host, started_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    command,
                    json.dumps(list(inputs)),
                    os.getpid(),
                    socket.gethostname(),
                    _now(),
                ),
            )
        )
        return run_id

    async def finish_run(self, run_id: str, exit_code: int, counts: dict[str, int]) -> None:
        await self.write(
            lambda db: db.execute(
                "UPDATE runs SET finished_at = ?, exit_code = ?, counts = ? WHERE run_id = ?",
                (_now(), exit_code, json.dumps(counts), run_id),
            )
        )

    async def register(self, run_id: str, rows: Iterable[dict[str, Any]]) -> dict[str, LedgerCode]:
        """Add planned codes not yet in the ledger (as ``pending``); returns every given code."""
        rows = list(rows)

        def change(db: sqlite3.Connection) -> dict[str, LedgerCode]:
            now = _now()
            db.executemany(
                f"INSERT INTO codes ({', '.join(CODE_COLUMNS)}, state, first_run_id,"
                f" last_run_id, updated_at) VALUES ({', '.join('?' * len(CODE_COLUMNS))},"
                " 'pending', ?, ?, ?) ON CONFLICT (idempotency_tag) DO NOTHING",
                [(*(row[c] for c in CODE_COLUMNS), run_id, run_id, now) for row in rows],
            )
            wanted = [row["idempotency_tag"] for row in rows]
            return {code.idempotency_tag: code for code in _select_codes(db, wanted)}

        return await self.write(change)

    async def has_codes(self) -> bool:
        """Whether the ledger holds any code at all (a new or lost ledger holds none)."""
        return await self.read(
            lambda db: bool(db.execute("SELECT EXISTS (SELECT 1 FROM codes)").fetchone()[0])
        )

    async def codes_in_state(self, state: str) -> list[LedgerCode]:
        """Every code in ``state`` (e.g. the ``sending`` ones a killed run left behind)."""

        def query(db: sqlite3.Connection) -> list[LedgerCode]:
            cursor = db.execute(
                f"SELECT {', '.join(LEDGER_CODE_COLUMNS)} FROM codes WHERE state = ?", (state,)
            )
            return [LedgerCode(*row) for row in cursor]

        return await self.read(query)

    async def mark_sending(self, tag: str, run_id: str) -> bool:
        """Committed before the create is sent: from here on the outcome must be checked.

        A compare-and-set: only a ``pending`` or ``failed`` code becomes ``sending``. Returns
        False when the code was in another state (another process got to it first, or it was
        found on its door): the caller must not send it.
        """
        return await self.write(
            lambda db: _transition(
                db, tag, run_id, "sending", 1, {"sent_at": _now()}, from_states=SENDABLE
            )
        )

    async def mark_sent_now(self, tag: str) -> None:
        """A ``sending`` code leaves later than its ``sent_at`` says: record now, committed."""
        await self.write(
            lambda db: db.execute(
                "UPDATE codes SET sent_at = ? WHERE idempotency_tag = ? AND state = 'sending'",
                (_now(), tag),
            )
        )

    async def states(self, tags: Sequence[str]) -> dict[str, str]:
        """The ledger's state of each given tag it has (tags it hasn't are left out)."""

        def query(db: sqlite3.Connection) -> dict[str, str]:
            return dict(_select_by_tags(db, tags, ("idempotency_tag", "state")).fetchall())

        return await self.read(query)

    def mark_created(
        self, tag: str, run_id: str, code: AccessCode, request_id: str | None, *, how: str
    ) -> None:
        """``how``: ``created`` (Seam's answer), ``adopted`` (found on the door after an unknown
        outcome) or ``found_on_door`` (found before anything was sent: a new, lost or copied
        ledger). From any state: Seam says the code exists. Queued for the next commit, like
        the other answers."""
        self._answered(
            tag,
            run_id,
            "created",
            reason=how,
            message=None,
            access_code_id=code.access_code_id,
            code=code.code,
            code_status=code.status,
            seam_request_id=request_id,
            created_at=_now(),
        )

    def mark_failed(
        self, tag: str, run_id: str, reason: str, message: str, request_id: str | None
    ) -> None:
        """Seam refused the create: no code exists; a later run may try again."""
        self._answered(
            tag, run_id, "failed", reason=reason, message=message, seam_request_id=request_id
        )

    def mark_pending(self, tag: str, run_id: str, reason: str, message: str) -> None:
        """Known not to exist on the door (refused before acting, or looked for and not found)."""
        self._answered(tag, run_id, "pending", reason=reason, message=message)

    def _answered(self, tag: str, run_id: str, state: str, **fields: Any) -> None:
        """Queue a code's next state. Lost in a crash, a ``sending`` code stays ``sending`` and
        is looked for on its door before anything is sent for it again. A ``created`` code is
        never moved back: Seam said it exists."""
        origins = None if state == "created" else ("pending", "sending", "failed")
        self.defer(lambda db: _transition(db, tag, run_id, state, 0, fields, from_states=origins))

    async def mark_failed_many(self, run_id: str, refusals: Sequence[tuple[str, str, str]]) -> None:
        """``(tag, reason, message)`` for codes that were not sent after all (e.g. their door's
        budget ran out): ``failed``, in one transaction; a later run may try them again."""

        def change(db: sqlite3.Connection) -> None:
            for tag, reason, message in refusals:
                _transition(
                    db,
                    tag,
                    run_id,
                    "failed",
                    0,
                    {"reason": reason, "message": message},
                    from_states=SENDABLE,
                )

        await self.write(change)

    async def codes_on_doors(self, device_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The codes on these doors that exist or may exist (``created`` or ``sending``):
        ``idempotency_tag, device_id, access_code_id, starts_at, ends_at``."""
        columns = ("idempotency_tag", "device_id", "access_code_id", "starts_at", "ends_at")

        def query(db: sqlite3.Connection) -> list[dict[str, Any]]:
            keys = fill_keys(db, "device_id", device_ids)
            cursor = db.execute(
                f"SELECT {', '.join(columns)} FROM codes JOIN {keys} USING (device_id)"
                " WHERE state IN ('created', 'sending')"
            )
            return [dict(zip(columns, row, strict=True)) for row in cursor]

        return await self.read(query)

    async def record_apply(
        self,
        run_id: str,
        doors: Sequence[Sequence[Any]],
        budgets: Sequence[Sequence[Any]],
        reservation_ids: Iterable[str],
        *,
        now: dt.datetime,
    ) -> int:
        """Keep an apply run's summary for the report, and mark the orphaned codes.

        ``doors``: ``(device_id, door_name, site_name, matched, outcome, reason, rows)``;
        ``budgets``: ``(device_id, mode, budget, budget_source, reserve, used, after)``. A code
        that exists or may exist (``created``, ``sending``), whose window hasn't ended and whose
        reservation is not among ``reservation_ids`` (the run's inputs) becomes orphaned by
        this run, unless an earlier run already found it so; one whose reservation is back is
        no longer orphaned. Both are events. Returns how many codes this run found orphaned.
        """

        def change(db: sqlite3.Connection) -> int:
            db.executemany(
                "INSERT INTO run_doors (run_id, device_id, door_name, site_name, matched,"
                " outcome, reason, rows) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, *row) for row in doors],
            )
            db.executemany(
                "INSERT INTO run_budgets (run_id, device_id, mode, budget, budget_source,"
                " reserve, used, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, *row) for row in budgets],
            )
            keys = fill_keys(db, "reservation_id", reservation_ids)
            present = f"reservation_id IN (SELECT reservation_id FROM {keys})"
            was_orphaned = f"orphaned_run_id IS NOT NULL AND {present}"
            back = db.execute(f"SELECT idempotency_tag FROM codes WHERE {was_orphaned}").fetchall()
            db.execute(f"UPDATE codes SET orphaned_run_id = NULL WHERE {was_orphaned}")
            # Offsets differ from code to code: compare the ends as instants, not as text.
            absent = db.execute(
                f"SELECT idempotency_tag, ends_at FROM codes WHERE orphaned_run_id IS NULL"
                f" AND state IN ('created', 'sending') AND NOT {present}"
            ).fetchall()
            orphaned = [
                (tag,) for tag, ends_at in absent if dt.datetime.fromisoformat(ends_at) > now
            ]
            tags = fill_keys(db, "idempotency_tag", (tag for (tag,) in orphaned))
            db.execute(
                f"UPDATE codes SET orphaned_run_id = ?"
                f" WHERE idempotency_tag IN (SELECT idempotency_tag FROM {tags})",
                (run_id,),
            )
            at = _now()
            for kind, found in (("orphaned", orphaned), ("orphan_back", back)):
                db.executemany(
                    "INSERT INTO events (run_id, at, kind, idempotency_tag) VALUES (?, ?, ?, ?)",
                    [(run_id, at, kind, tag) for (tag,) in found],
                )
            return len(orphaned)

        return await self.write(change)

    async def code_table(self, tags: Sequence[str]) -> list[dict[str, Any]]:
        """The outcome columns of the given codes, for the results file."""

        def query(db: sqlite3.Connection) -> list[dict[str, Any]]:
            cursor = _select_by_tags(db, tags, RESULT_COLUMNS)
            return [dict(zip(RESULT_COLUMNS, row, strict=True)) for row in cursor]

        return await self.read(query)


def _transition(
    db: sqlite3.Connection,
    tag: str,
    run_id: str,
    state: str,
    attempts: int,
    fields: dict[str, Any],
    *,
    from_states: Sequence[str] | None = None,
) -> bool:
    """Move one code to ``state`` and log the change (inside the caller's transaction).

    With ``from_states`` it is a compare-and-set: a code in another state is left alone and
    False is returned. Raises KeyError when the ledger has no such code.
    """
    assignments = "".join(f", {name} = ?" for name in fields)
    guard = ""
    guard_values: tuple[str, ...] = ()
    if from_states is not None:
        guard = f" AND state IN ({', '.join('?' * len(from_states))})"
        guard_values = tuple(from_states)
    updated = db.execute(
        f"UPDATE codes SET state = ?, attempts = attempts + ?, last_run_id = ?,"
        f" updated_at = ?{assignments} WHERE idempotency_tag = ?{guard}",
        (state, attempts, run_id, _now(), *fields.values(), tag, *guard_values),
    )
    if updated.rowcount != 1:
        if db.execute("SELECT 1 FROM codes WHERE idempotency_tag = ?", (tag,)).fetchone():
            return False
        raise KeyError(f"no code {tag} in the ledger")
    db.execute(
        "INSERT INTO events (run_id, at, kind, idempotency_tag, seam_request_id, detail)"
        " VALUES (?, ?, 'state', ?, ?, ?)",
        (
            run_id,
            _now(),
            tag,
            fields.get("seam_request_id"),
            json.dumps(
                {"state": state, **{k: v for k, v in fields.items() if k in {"reason", "message"}}}
            ),
        ),
    )
    return True


def _select_codes(db: sqlite3.Connection, tags: Sequence[str]) -> list[LedgerCode]:
    return [LedgerCode(*row) for row in _select_by_tags(db, tags, LEDGER_CODE_COLUMNS)]


def _select_by_tags(
    db: sqlite3.Connection, tags: Iterable[str], columns: Sequence[str]
) -> sqlite3.Cursor:
    """``columns`` of the codes with the given tags (any number of them: a temporary join)."""
    keys = fill_keys(db, "idempotency_tag", tags)
    return db.execute(f"SELECT {', '.join(columns)} FROM codes JOIN {keys} USING (idempotency_tag)")


def fill_keys(db: sqlite3.Connection, column: str, values: Iterable[str]) -> str:
    """A temporary table ``keys_<column>`` holding just ``values``, to join ``codes`` with on
    ``column`` (any number of values, where an ``IN (...)`` list would hit SQLite's limit);
    returns its name. Outside a transaction (a read) the filling gets one of its own: without
    it every row would be its own commit, 25 µs each."""
    table = f"keys_{column}"
    own = not db.in_transaction
    if own:
        db.execute("BEGIN")  # takes no lock on the ledger: only the temporary table is written
    try:
        db.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} ({column} TEXT PRIMARY KEY)")
        db.execute(f"DELETE FROM {table}")
        db.executemany(f"INSERT OR IGNORE INTO {table} VALUES (?)", ((v,) for v in values))
    except BaseException:
        if own:
            db.execute("ROLLBACK")
        raise
    if own:
        db.execute("COMMIT")
    return table
