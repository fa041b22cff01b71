"""The run lock: two ``apply`` runs on one ledger never overlap.

The lock is an exclusive ``flock`` on ``<ledger>.lock``, a file that also names its holder
(pid, host, start time, as JSON). The operating system drops a ``flock`` when its process dies,
however it dies, so a lock left by a killed run is simply free: the next run takes it, says
whose it was, and writes its own name. (``flock`` is only as good as the file system: on a
network file system shared by several hosts it may not exclude; keep ledgers on local disk.)
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from pipeline.errors import RunStopped, UsageError

log = logging.getLogger(__name__)
POLL_SECONDS = 0.2


class RunLocked(RunStopped):
    """Another run holds the ledger's lock (exit 3)."""


def lock_path(ledger: Path) -> Path:
    return ledger.with_name(ledger.name + ".lock")


@asynccontextmanager
async def run_lock(ledger: Path, *, wait: float = 0.0) -> AsyncIterator[dict[str, Any]]:
    """Hold the ledger's run lock for the block; yields the holder record written.

    Waits up to ``wait`` seconds for another run to finish, then raises RunLocked naming the
    holder. Raises UsageError when the lock file can't be created.
    """
    path = lock_path(ledger)
    try:
        descriptor = await anyio.to_thread.run_sync(_open, path)
    except OSError as exc:
        raise UsageError(f"run lock {path} can't be created: {exc}", hint="check --ledger") from exc
    try:
        deadline = anyio.current_time() + wait
        while not await anyio.to_thread.run_sync(_try_lock, descriptor):
            if anyio.current_time() >= deadline:
                holder = await anyio.to_thread.run_sync(_read, descriptor)
                raise RunLocked(
                    f"ledger {ledger} is in use by another apply run: {_describe(holder)}",
                    hint="wait for it to finish, or pass --wait-for-lock SECONDS",
                )
            await anyio.sleep(POLL_SECONDS)
        left = await anyio.to_thread.run_sync(_read, descriptor)
        if left:
            log.warning(
                "took over the run lock of a run that ended without releasing it",
                extra={"holder": _describe(left)},
            )
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        await anyio.to_thread.run_sync(_write, descriptor, holder)
        try:
            yield holder
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_release, descriptor)
    finally:
        os.close(descriptor)


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


def _release(descriptor: int) -> None:
    _write(descriptor, None)
    fcntl.flock(descriptor, fcntl.LOCK_UN)


def _try_lock(descriptor: int) -> bool:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read(descriptor: int) -> dict[str, Any] | None:
    os.lseek(descriptor, 0, os.SEEK_SET)
    raw = os.read(descriptor, 4096)
    try:
        holder = json.loads(raw) if raw.strip() else None
    except ValueError:
        return None
    return holder if isinstance(holder, dict) else None


def _write(descriptor: int, holder: dict[str, Any] | None) -> None:
    os.ftruncate(descriptor, 0)
    os.lseek(descriptor, 0, os.SEEK_SET)
    if holder is not None:
        os.write(descriptor, json.dumps(holder).encode())
    os.fsync(descriptor)


def _describe(holder: dict[str, Any] | None) -> str:
    if holder is None:
        return "its holder hasn't written its name yet"
    return (
        f"pid {holder.get('pid')} on host {holder.get('host')}, started {holder.get('started_at')}"
    )
