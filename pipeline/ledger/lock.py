"""The run lock: two ``apply`` runs on one ledger never overlap.

The lock is an exclusive ``flock`` on the ledger's database file itself, so it follows the
file, not the name it was reached by: a symlink, a relative path or another working directory
all reach the same lock, and there is no side file to delete. A ledger with hard links is
refused: SQLite names its write-ahead log after the path it opens, so two names would not share
it. Who holds the lock is read from the ledger (the newest apply run that hasn't finished: pid,
host, start).

The operating system drops a ``flock`` when its process dies, however it dies, so a lock left
by a killed run is simply free: the next run takes it and says whose it was. SQLite's own locks
are POSIX record locks, which Linux keeps apart from ``flock``, so this lock never blocks the
ledger's readers (``report``). (``flock`` is only as good as the file system: on a network file
system shared by several hosts it may not exclude; keep ledgers on local disk.)
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from pipeline.errors import LedgerError, RunLocked, UsageError

log = logging.getLogger(__name__)
POLL_SECONDS = 0.2


@asynccontextmanager
async def run_lock(ledger: Path, *, wait: float = 0.0) -> AsyncIterator[None]:
    """Hold the ledger's run lock for the block (creating the ledger file, mode 0600, if it
    doesn't exist yet).

    Waits up to ``wait`` seconds for another run to finish, then raises RunLocked naming the
    holder. Raises UsageError when the ledger file can't be opened. Open the ledger's database
    connection inside the block and close it before the block ends: the lock's descriptor must
    outlive it.
    """
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
        while not await anyio.to_thread.run_sync(_try_lock, descriptor):
            if anyio.current_time() >= deadline:
                holder = await anyio.to_thread.run_sync(_holder, ledger, descriptor)
                raise RunLocked(
                    f"ledger {ledger} is in use by another apply run: {_describe(holder)}",
                    hint="wait for it to finish, or pass --wait-for-lock SECONDS",
                )
            await anyio.sleep(POLL_SECONDS)
        left = await anyio.to_thread.run_sync(unfinished_apply_run, ledger)
        if left is not None:
            log.warning(
                "took over the run lock of a run that ended without finishing",
                extra={"holder": _describe(left)},
            )
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(fcntl.flock, descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


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


def _try_lock(descriptor: int) -> bool:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(ledger: Path, descriptor: int) -> dict[str, Any] | None:
    """Who holds the lock: the ledger's unfinished apply run, checked against the pid the
    kernel names as the lock's holder (which is all there is while the holder hasn't recorded
    its run yet)."""
    pid = _flock_holder_pid(descriptor)
    run = unfinished_apply_run(ledger)
    if run is not None and (pid is None or run["pid"] == pid):
        return run
    if pid is None:
        return None
    return {"run_id": None, "pid": pid, "host": socket.gethostname(), "started_at": None}


def _flock_holder_pid(descriptor: int) -> int | None:
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


def unfinished_apply_run(ledger: Path) -> dict[str, Any] | None:
    """The newest apply run the ledger has as started but not finished (its holder while the
    lock is held; a run that died otherwise), or None. Reads without writing anything."""
    try:
        with closing(sqlite3.connect(f"{ledger.resolve().as_uri()}?mode=ro", uri=True)) as db:
            # Runs older than the newest finished one were taken over already: not named again.
            row = db.execute(
                "SELECT run_id, pid, host, started_at FROM runs WHERE command = 'apply'"
                " AND finished_at IS NULL AND started_at > coalesce((SELECT max(started_at)"
                " FROM runs WHERE command = 'apply' AND finished_at IS NOT NULL), '')"
                " ORDER BY started_at DESC LIMIT 1"
            ).fetchone()
    except sqlite3.Error:
        return None  # a new ledger: no runs table yet
    if row is None:
        return None
    return dict(zip(("run_id", "pid", "host", "started_at"), row, strict=True))


def _describe(holder: dict[str, Any] | None) -> str:
    if holder is None:
        return "its holder hasn't recorded its run yet"
    if holder["run_id"] is None:
        return f"pid {holder['pid']} on host {holder['host']}"
    return (
        f"run {holder['run_id']}, pid {holder['pid']} on host {holder['host']},"
        f" started {holder['started_at']}"
    )
