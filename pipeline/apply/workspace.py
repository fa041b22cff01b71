"""One writer per Seam workspace on this host, whatever the ledger.

Seam has no idempotency key and no lease: two runs that look at one door at once, find nothing
and send, both create. The ledger's run lock keeps two runs on one ledger apart, but two ledgers
(a cron job and a manual run started from two folders, each with its ``outputs/ledger.sqlite``)
would not see each other. So an apply run also holds a lock named after the Seam workspace it
writes to: an exclusive ``flock`` on ``workspace-<workspace_id>.lock`` in a run directory of
the user's (``run_directory``). The operating system drops it when its process dies, however it
dies. The lock file says who holds it (run, pid, host, start, ledger) for the line another run
ends with; the kernel's word (``/proc/locks``) wins when the two disagree.

The lock excludes runs of one user on one host. Runs on several hosts share one ledger
(PostgreSQL) and its lock instead; separate ledgers must never run at the same time.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from pipeline.apply.policy import KEY_REFUSED_STATUS
from pipeline.apply.run import ApplySession
from pipeline.errors import RunLocked, RunStopped, SeamError, UsageError
from pipeline.ledger.location import LedgerLocation
from pipeline.ledger.lock import POLL_SECONDS, describe_holder, flock_holder_pid, try_flock
from pipeline.plan.reasons import CONNECT_FAILED

log = logging.getLogger(__name__)
# Where the workspace locks are kept, when set (tests, or a folder several users share).
RUN_DIR_ENV = "ORACODE_RUN_DIR"
# A workspace id as Seam writes them (a UUID): used as it is in the lock file's name.
_PLAIN_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


async def check_workspace(session: ApplySession) -> str:
    """The workspace the key acts in (one ``/workspaces/get``), checked against the ledger's
    (and recorded in a ledger that has none yet). Raises UsageError (exit 2) for a key of
    another workspace than the ledger's, SeamError when Seam refuses the key, and RunStopped
    (exit 3) naming what was asked, where, and what to do when Seam can't be asked."""
    client = session.client
    try:
        workspace_id = await client.workspace_id()
    except SeamError as exc:
        if exc.status in KEY_REFUSED_STATUS:
            raise  # the key itself: said as such (``key_refused``)
        raise _not_asked(exc, client.endpoint) from exc
    await session.ledger.claim_workspace(workspace_id)
    return workspace_id


def _not_asked(exc: SeamError, endpoint: str) -> RunStopped:
    """Seam couldn't say which workspace the key is for: what was asked, where, what came
    back; the endpoint to check when there is no such path or nothing answers there."""
    answer = f"{exc.status} {exc.error_type}" if exc.status is not None else exc.error_type
    if exc.request_id:
        answer += f", seam-request-id {exc.request_id}"
    wrong_place = exc.status == 404 or exc.error_type == CONNECT_FAILED
    fix = f"check SEAM_ENDPOINT (now {endpoint})" if wrong_place else "rerun later"
    return RunStopped(
        "could not ask Seam which workspace the key belongs to (/workspaces/get at"
        f" {endpoint}: {answer}: {exc.message}): {fix}"
    )


async def hold_workspace(session: ApplySession, stack: AsyncExitStack, *, wait: float) -> str:
    """``check_workspace``, then the workspace's lock, held until ``stack`` closes; returns the
    workspace id. Raises as ``check_workspace`` and ``workspace_lock`` do."""
    workspace_id = await check_workspace(session)
    await stack.enter_async_context(
        workspace_lock(workspace_id, ledger=session.ledger.path, run_id=session.run_id, wait=wait)
    )
    return workspace_id


def run_directory(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the workspace locks live: ``ORACODE_RUN_DIR`` when set, else
    ``$XDG_RUNTIME_DIR/oracode-provision`` (systemd's per-user run directory), else
    ``oracode-provision-<uid>`` in the system's temporary folder; created (mode 0700) when
    missing. Blocking.

    Raises UsageError (exit 2) when it can't be made or used, or when the temporary folder's
    one isn't this user's own (another user could hold or fake the lock there).
    """
    given = environ.get(RUN_DIR_ENV, "").strip()
    if given:
        folder, source = Path(given), RUN_DIR_ENV
    elif runtime := environ.get("XDG_RUNTIME_DIR", "").strip():
        folder, source = Path(runtime) / "oracode-provision", "XDG_RUNTIME_DIR"
    else:
        folder = Path(tempfile.gettempdir()) / f"oracode-provision-{os.getuid()}"
        source = ""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat()
    except OSError as exc:
        raise UsageError(
            f"the run directory {folder} can't be used: {exc.strerror or exc}",
            hint=f"set {RUN_DIR_ENV} to a folder this user can write",
        ) from exc
    if not stat.S_ISDIR(info.st_mode):
        raise UsageError(
            f"the run directory {folder} is not a folder",
            hint=f"set {RUN_DIR_ENV} to a folder this user can write",
        )
    if not source and (info.st_uid != os.getuid() or info.st_mode & 0o022):
        # In a folder everyone shares, a run directory made by someone else is not ours.
        raise UsageError(
            f"the run directory {folder} isn't this user's own (owner uid {info.st_uid}, mode"
            f" {stat.S_IMODE(info.st_mode):o}): another user could hold its locks",
            hint=f"remove it, or set {RUN_DIR_ENV} to a folder of this user's",
        )
    return folder


def lock_file(folder: Path, workspace_id: str) -> Path:
    """The lock file of ``workspace_id`` in ``folder`` (an id that isn't a plain name is
    hashed, so no id can reach outside the folder)."""
    if _PLAIN_ID.fullmatch(workspace_id):
        name = workspace_id
    else:
        name = "sha256-" + hashlib.sha256(workspace_id.encode()).hexdigest()[:32]
    return folder / f"workspace-{name}.lock"


@asynccontextmanager
async def workspace_lock(
    workspace_id: str,
    *,
    ledger: LedgerLocation,
    run_id: str,
    wait: float = 0.0,
    environ: Mapping[str, str] = os.environ,
) -> AsyncIterator[Path]:
    """Hold the lock of Seam workspace ``workspace_id`` on this host for the block; yields
    its file. Waits up to ``wait`` seconds for another run to let it go, then raises RunLocked
    (exit 3) naming the holder (its run, pid, host, start and ledger). Raises UsageError (exit
    2) when the run directory or the lock file can't be used. ``ledger`` and ``run_id`` are
    what the lock file says of this run while it holds it.
    """
    folder = await anyio.to_thread.run_sync(run_directory, environ)
    path = lock_file(folder, workspace_id)
    descriptor = await anyio.to_thread.run_sync(_open, path)
    try:
        deadline = anyio.current_time() + wait
        while not await anyio.to_thread.run_sync(try_flock, descriptor):
            if anyio.current_time() >= deadline:
                holder = await anyio.to_thread.run_sync(_holder, descriptor)
                raise RunLocked(
                    f"Seam workspace {workspace_id} is in use by another apply run on this host:"
                    f" {holder}",
                    hint="wait for it to finish, or pass --wait-for-lock SECONDS; runs for one"
                    " workspace must not overlap, whatever their ledgers",
                )
            await anyio.sleep(POLL_SECONDS)
        about = {
            "run_id": run_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            # Absolute: the run that reads it was started from another folder.
            "ledger": str(ledger.absolute() if isinstance(ledger, Path) else ledger),
        }
        await anyio.to_thread.run_sync(_say_who, descriptor, about)
        try:
            yield path
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_let_go, descriptor)
    finally:
        os.close(descriptor)


def _open(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        why = "a link is in its place" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        raise UsageError(
            f"the workspace lock {path} can't be opened: {why}",
            hint=f"check the folder, or set {RUN_DIR_ENV} to a folder this user can write",
        ) from exc


def _say_who(descriptor: int, about: dict[str, Any]) -> None:
    """Write who holds the lock into its file (read by a run that finds it held)."""
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, json.dumps(about).encode(), 0)


def _let_go(descriptor: int) -> None:
    """Empty the file (nobody holds it) and release the lock."""
    os.ftruncate(descriptor, 0)
    fcntl.flock(descriptor, fcntl.LOCK_UN)


def _holder(descriptor: int) -> str:
    """Who holds the lock: what its file says, when the kernel names the same process (or
    can't say); else the pid the kernel names."""
    pid = flock_holder_pid(descriptor)
    try:
        said = json.loads(os.pread(descriptor, 4096, 0) or b"null")
    except (OSError, ValueError):
        said = None
    if isinstance(said, dict) and (pid is None or said.get("pid") == pid):
        return f"{describe_holder(said)}, ledger {said.get('ledger')}"
    if pid is None:
        return describe_holder(None)
    return describe_holder(
        {"run_id": None, "pid": pid, "host": socket.gethostname(), "started_at": None}
    )
