"""The run lock: two ``apply`` runs on one ledger never overlap.

Who holds the lock is read from the ledger (the newest apply run that hasn't finished: pid,
host, start), else from where the lock itself is kept. A lock left by a killed run is simply
free: the next run takes it and says whose it was.

**SQLite**: an exclusive ``flock`` on the ledger's database file itself, so it follows the
file, not the name it was reached by: a symlink, a relative path or another working directory
all reach the same lock, and there is no side file to delete. A ledger with hard links is
refused: SQLite names its write-ahead log after the path it opens, so two names would not share
it. The operating system drops a ``flock`` when its process dies, however it dies. SQLite's own
locks are POSIX record locks, which Linux keeps apart from ``flock``, so this lock never blocks
the ledger's readers (``report``). (``flock`` is only as good as the file system: on a network
file system shared by several hosts it may not exclude; keep ledgers on local disk.)

**PostgreSQL**: a session-level advisory lock (``pg_try_advisory_lock``) held by a connection
of its own for the run. Its key is derived from the ledger's identity in the server, its
database and schema, so every host, container or working directory that reaches the same
ledger, by whatever URL, takes the same lock. The server drops it with its session: a killed
run's lock goes with its connection (at once when its process dies, within the keepalive time
when its host does). Its holder, until it has recorded its run, is named by its connection's
``application_name`` (``pipeline.ledger.postgres``). The lock never blocks the ledger's
readers and writers that take no lock (``report``, ``status``, ``webhooks``).
"""

from __future__ import annotations

import errno
import fcntl
import functools
import hashlib
import logging
import os
import re
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import psycopg

from pipeline.common.errors import LedgerError, RunLocked, UsageError
from pipeline.ledger import postgres
from pipeline.ledger.location import LedgerLocation, PostgresLedger

log = logging.getLogger(__name__)
POLL_SECONDS = 0.2
# The advisory lock's key is this and the ledger's database and schema, hashed: another
# program's advisory locks in the same database won't meet it by chance.
LOCK_KEY_PREFIX = "oracode-provision run lock"
# What ``postgres.application_name`` says of a connection's process.
_NAMED = re.compile(r"\bpid=(?P<pid>\d+) host=(?P<host>\S+)")
# The newest apply run started but not finished; runs older than the newest finished one were
# taken over already, so they aren't named again. (One text for SQLite and PostgreSQL, whatever
# type ``started_at`` has there.)
_UNFINISHED_APPLY_RUN = (
    "SELECT run_id, pid, host, started_at FROM runs AS r WHERE command = 'apply'"
    " AND finished_at IS NULL AND NOT EXISTS (SELECT 1 FROM runs AS f WHERE"
    " f.command = 'apply' AND f.finished_at IS NOT NULL AND f.started_at >= r.started_at)"
    " ORDER BY started_at DESC LIMIT 1"
)
_RUN_FIELDS = ("run_id", "pid", "host", "started_at")
T = TypeVar("T")


@dataclass(frozen=True)
class AdvisoryLock:
    """A PostgreSQL run lock as the ledger's own session can check it: the lock's key and the
    server process (backend pid) of the connection holding it (``Ledger.hold``)."""

    key: int
    backend: int

    @property
    def parts(self) -> tuple[int, int, int]:
        """``pg_locks``' classid and objid of the key, and the holder's pid."""
        return (*_key_parts(self.key), self.backend)


def _key_parts(key: int) -> tuple[int, int]:
    """An advisory lock's signed 64-bit key as ``pg_locks`` shows it: classid, objid."""
    return (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF


@asynccontextmanager
async def run_lock(
    ledger: LedgerLocation, *, wait: float = 0.0
) -> AsyncIterator[AdvisoryLock | None]:
    """Hold the ledger's run lock for the block: a SQLite ledger's file (created, mode 0600,
    if it doesn't exist yet) or a PostgreSQL ledger's advisory lock, on a connection of its
    own.

    Waits up to ``wait`` seconds for another run to finish, then raises RunLocked (exit 3)
    naming the holder. Raises UsageError (exit 2) when the ledger file can't be opened, or
    when the PostgreSQL URL, password, database or role is wrong; LedgerError (exit 3) when the
    file can't be created on a full disk, or the server can't be reached or is lost while the
    lock is taken. Logs a warning naming the run it takes the lock over from when that run
    ended without finishing. For SQLite, open the ledger's database connection inside the block
    and close it before the block ends: the lock's descriptor must outlive it. For PostgreSQL
    the block gets the ``AdvisoryLock``, for the ledger to check with every code it marks
    ``sending`` (``Ledger.hold``): a lock whose connection died is then a stop, not a run
    going on without it.
    """
    if isinstance(ledger, PostgresLedger):
        async with _hold_advisory_lock(ledger, wait) as lock:
            yield lock
    else:
        async with _hold_flock(ledger, wait):
            yield None


@asynccontextmanager
async def _hold_flock(ledger: Path, wait: float) -> AsyncIterator[None]:
    try:
        descriptor = await anyio.to_thread.run_sync(_open, ledger)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise LedgerError(
                f"ledger {ledger} can't be created: {exc.strerror}",
                hint=f"free space on {ledger.parent} and rerun",
            ) from exc
        raise UsageError(
            f"ledger {ledger} can't be opened for the run lock: {exc.strerror or exc}",
            hint="check --ledger and the folder's permissions",
        ) from exc
    try:
        deadline = anyio.current_time() + wait
        while not await anyio.to_thread.run_sync(try_flock, descriptor):
            if anyio.current_time() >= deadline:
                holder = await anyio.to_thread.run_sync(_holder, ledger, descriptor)
                raise _locked(ledger, holder)
            await anyio.sleep(POLL_SECONDS)
        _warn_of_takeover(await anyio.to_thread.run_sync(unfinished_apply_run, ledger))
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(fcntl.flock, descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


@asynccontextmanager
async def _hold_advisory_lock(ledger: PostgresLedger, wait: float) -> AsyncIterator[AdvisoryLock]:
    connection = await anyio.to_thread.run_sync(
        functools.partial(postgres.connect, ledger, purpose="apply")
    )

    async def query(work: Callable[[postgres.Connection], T]) -> T:
        return await anyio.to_thread.run_sync(_on_connection, ledger, connection, work)

    try:
        await query(_allow_idling)
        key = await query(_lock_key)
        deadline = anyio.current_time() + wait
        while not await query(functools.partial(_try_advisory_lock, key=key)):
            if anyio.current_time() >= deadline:
                raise _locked(ledger, await query(functools.partial(_advisory_holder, key=key)))
            await anyio.sleep(POLL_SECONDS)
        try:
            _warn_of_takeover(await query(_unfinished_apply_run_on))
            yield AdvisoryLock(key, await query(_backend_pid))
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_release_advisory_lock, ledger, connection, key)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(connection.close)


def _locked(ledger: LedgerLocation, holder: dict[str, Any] | None) -> RunLocked:
    return RunLocked(
        f"ledger {ledger} is in use by another apply run: {describe_holder(holder)}",
        hint="wait for it to finish, or pass --wait-for-lock SECONDS",
    )


def _warn_of_takeover(left: dict[str, Any] | None) -> None:
    if left is not None:
        log.warning(
            "took over the run lock of a run that ended without finishing",
            extra={"holder": describe_holder(left)},
        )


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        info = os.fstat(descriptor)
        if info.st_nlink > 1:
            # SQLite keeps its write-ahead log beside the *name* it was opened by: through two
            # names, one run would not see what another committed through the other.
            raise UsageError(
                f"ledger {path} has {info.st_nlink} hard links; SQLite keeps its write-ahead log"
                " by name, so runs through different names could lose each other's writes",
                hint="use one name for the ledger (a symlink is fine) and remove the other links",
            )
        os.fchmod(descriptor, 0o600)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def try_flock(descriptor: int) -> bool:
    """Take an exclusive ``flock`` on ``descriptor`` if no one holds it; whether it was taken."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(ledger: Path, descriptor: int) -> dict[str, Any] | None:
    """Who holds the lock: the ledger's unfinished apply run, checked against the pid the
    kernel names as the lock's holder (which is all there is while the holder hasn't recorded
    its run yet)."""
    pid = flock_holder_pid(descriptor)
    run = unfinished_apply_run(ledger)
    if run is not None and (pid is None or run["pid"] == pid):
        return run
    if pid is None:
        return None
    return {"run_id": None, "pid": pid, "host": socket.gethostname(), "started_at": None}


def flock_holder_pid(descriptor: int) -> int | None:
    """The pid holding a ``flock`` on the descriptor's file, from Linux's ``/proc/locks``
    (None elsewhere, or when it can't be told)."""
    info = os.fstat(descriptor)
    wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 8079 fd:01:1234 0 EOF" (a waiter's line has "->")
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
            return int(fields[4])
    return None


def unfinished_apply_run(ledger: LedgerLocation) -> dict[str, Any] | None:
    """The newest apply run the ledger has as started but not finished (its holder while the
    lock is held; a run that died otherwise), or None, also for a ledger that has no runs
    table yet. Reads without writing anything; blocking (call it from a worker thread).

    For PostgreSQL, a short read on a connection of its own: raises as
    ``postgres.connect`` does, and ``postgres.lost_connection``'s error.
    """
    if isinstance(ledger, PostgresLedger):
        with postgres.connect(ledger, purpose="read") as connection:
            return _on_connection(ledger, connection, _unfinished_apply_run_on)
    try:
        with closing(sqlite3.connect(f"{ledger.resolve().as_uri()}?mode=ro", uri=True)) as db:
            row = db.execute(_UNFINISHED_APPLY_RUN).fetchone()
    except sqlite3.Error:
        return None  # a new ledger: no runs table yet
    return None if row is None else dict(zip(_RUN_FIELDS, row, strict=True))


def _on_connection(
    ledger: PostgresLedger,
    connection: postgres.Connection,
    work: Callable[[postgres.Connection], T],
) -> T:
    """``work(connection)``, a connection or server failing as ``postgres.lost_connection``."""
    try:
        return work(connection)
    except psycopg.Error as exc:
        if not postgres.is_connection_failure(exc):
            raise
        lost = postgres.lost_connection(ledger, exc)
    # Raised outside the handler: the driver's words (which may hold the URL) are neither the
    # cause nor the context of ours.
    raise lost


def _lock_key(connection: postgres.Connection) -> int:
    """The advisory lock's key: a signed 64-bit number from the ledger's identity in the server
    (its database and schema), the same however the server is reached."""
    row = connection.execute("SELECT current_database(), coalesce(current_schema(), '')").fetchone()
    assert row is not None
    identity = "\0".join((LOCK_KEY_PREFIX, *row)).encode()
    return int.from_bytes(hashlib.sha256(identity).digest()[:8], "big", signed=True)


def _allow_idling(connection: postgres.Connection) -> None:
    """The lock's connection says nothing for the whole run: a server's ``idle_session_timeout``
    (PostgreSQL 14 and later) must not end its session, and the lock with it."""
    connection.execute(
        "SELECT set_config('idle_session_timeout', '0', false)"
        " WHERE current_setting('server_version_num')::int >= 140000"
    )


def _backend_pid(connection: postgres.Connection) -> int:
    row = connection.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def _try_advisory_lock(connection: postgres.Connection, *, key: int) -> bool:
    row = connection.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()
    return bool(row and row[0])


def _release_advisory_lock(
    ledger: PostgresLedger, connection: postgres.Connection, key: int
) -> None:
    """Let the lock go. A connection lost meanwhile took it with it: the run went on without
    the lock for a while (the compare-and-set into ``sending`` still kept codes single), which
    is worth a warning."""
    try:
        row = connection.execute("SELECT pg_advisory_unlock(%s)", [key]).fetchone()
        released, reason = bool(row and row[0]), "the server no longer had it"
    except psycopg.Error as exc:
        released, reason = False, postgres.scrub(ledger, " ".join(str(exc).split()))
    if not released:
        log.warning("the run lock was lost before the run ended", extra={"reason": reason})


def _advisory_holder(connection: postgres.Connection, *, key: int) -> dict[str, Any] | None:
    """Who holds the lock: the ledger's unfinished apply run, checked against the process the
    holding connection names (which is all there is while the holder hasn't recorded its run
    yet, or before the ledger has its tables)."""
    row = connection.execute(
        "SELECT a.pid, a.application_name FROM pg_locks AS l"
        " JOIN pg_stat_activity AS a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid"
        " LIMIT 1",
        list(_key_parts(key)),
    ).fetchone()
    session = None
    if row is not None:
        backend, name = row
        named = _NAMED.search(name or "")
        session = (
            {"run_id": None, "pid": int(named["pid"]), "host": named["host"], "started_at": None}
            if named
            else {"run_id": None, "backend": backend, "application_name": name or ""}
        )
    run = _unfinished_apply_run_on(connection)
    if run is not None and (session is None or _is_same_process(run, session)):
        return run
    return session


def _is_same_process(run: dict[str, Any], session: dict[str, Any]) -> bool:
    """Whether the run is the holding session's (the server keeps the first 63 bytes of a
    connection's name, so its host may be cut short)."""
    return (
        "pid" in session
        and run["pid"] == session["pid"]
        and str(run["host"]).startswith(session["host"])
    )


def _unfinished_apply_run_on(connection: postgres.Connection) -> dict[str, Any] | None:
    try:
        row = connection.execute(_UNFINISHED_APPLY_RUN).fetchone()
    except psycopg.ProgrammingError:
        return None  # a new ledger: no runs table yet (or none this role may read)
    if row is None:
        return None
    run = dict(zip(_RUN_FIELDS, row, strict=True))
    if hasattr(run["started_at"], "isoformat"):
        run["started_at"] = run["started_at"].isoformat()
    return run


def describe_holder(holder: dict[str, Any] | None) -> str:
    if holder is None:
        return "its holder hasn't recorded its run yet"
    if "backend" in holder:
        return (
            f"PostgreSQL backend pid {holder['backend']}"
            f" (application_name {holder['application_name']!r})"
        )
    if holder["run_id"] is None:
        return f"pid {holder['pid']} on host {holder['host']}"
    return (
        f"run {holder['run_id']}, pid {holder['pid']} on host {holder['host']},"
        f" started {holder['started_at']}"
    )
