"""One writer per Seam workspace on this host, whatever the ledger, folder or user.

Seam has no idempotency key and no lease: two runs that look at one door at once, find nothing
and send, both create. The ledger's run lock keeps two runs on one ledger apart, but two ledgers
(a cron job and a manual run started from two folders, each with its ``outputs/ledger.sqlite``)
would not see each other. So an apply run also holds a lock named after the Seam workspace it
writes to: an exclusive ``flock`` on ``workspace-<workspace_id>.lock`` in one run directory for
the whole host (``run_directory``): it depends on nothing a session, a user or a folder sets
(cron, systemd services and sudo set no ``XDG_RUNTIME_DIR``), so every run of a workspace on
the host meets the same file. The folder is shared like ``/tmp`` (mode 1777) and its lock files
mode 0666, so that another user's run can open and lock them. The operating system drops the
lock when its process dies, however it dies. The lock file says who holds it (run, pid, host,
start, ledger) for the line another run ends with; the kernel's word (``/proc/locks``) wins when
the two disagree.

The lock excludes runs on one host. Runs on several hosts share one ledger (PostgreSQL) and its
lock instead; separate ledgers on several hosts must never run at the same time.
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
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from pipeline.apply.policy import KEY_REFUSED_STATUS
from pipeline.apply.run import ApplySession
from pipeline.common.errors import RunLocked, RunStopped, SeamError, UsageError
from pipeline.common.reasons import CONNECT_FAILED
from pipeline.ledger.location import LedgerLocation
from pipeline.ledger.lock import POLL_SECONDS, describe_holder, flock_holder_pid, try_flock

log = logging.getLogger(__name__)
# Where the workspace locks are kept, when set (an absolute path, the same for every run).
RUN_DIR_ENV = "ORACODE_RUN_DIR"
# Where the host's run directory is made otherwise: the first that is a folder this process
# can write (``/run/lock``: FHS's folder for lock files, 1777 on Debian and its kin; else the
# system's temporary folders, never ``TMPDIR``, which a user or a session may set).
SHARED_PARENTS = (Path("/run/lock"), Path("/tmp"), Path("/var/tmp"))
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
    """Where the workspace locks live, the same for every run on this host: ``ORACODE_RUN_DIR``
    when set (an absolute path), else ``oracode-provision`` in the first of ``SHARED_PARENTS``
    that is a folder this process can write (``/run/lock``, else the system's temporary
    folder: never one a session or a user sets, such as ``XDG_RUNTIME_DIR`` or ``TMPDIR``),
    created shared like ``/tmp`` (mode 1777) when missing. Blocking.

    Raises UsageError (exit 2) for a relative ``ORACODE_RUN_DIR``, and for a folder that can't
    be made or used: the shared one must be a real folder (not a link), sticky when anyone may
    write it (else another user could swap its lock files).
    """
    given = environ.get(RUN_DIR_ENV, "").strip()
    if given:
        folder = Path(given)
        if not folder.is_absolute():
            raise UsageError(
                f"{RUN_DIR_ENV} {given} is not an absolute path: runs started from other folders"
                " would each lock a folder of their own",
                hint=f"set {RUN_DIR_ENV} to an absolute path, the same for every run",
            )
        _make(folder, mode=0o700)
        info = _stat(folder, follow=True)
    else:
        parent = next(
            (root for root in SHARED_PARENTS if root.is_dir() and os.access(root, os.W_OK)),
            SHARED_PARENTS[-1],
        )
        folder = parent / "oracode-provision"
        if _make(folder, mode=0o1777):
            folder.chmod(0o1777)  # whatever the umask: every user's run creates its files here
        info = _stat(folder, follow=False)
        if stat.S_ISLNK(info.st_mode):
            raise UsageError(
                f"the run directory {folder} is a link, not a folder: another user could point"
                " it elsewhere",
                hint=f"remove the link (a folder is made in its place), or set {RUN_DIR_ENV}",
            )
        if stat.S_ISDIR(info.st_mode) and info.st_mode & 0o002 and not info.st_mode & 0o1000:
            raise UsageError(
                f"the run directory {folder} may be written by anyone but isn't sticky (mode"
                f" {stat.S_IMODE(info.st_mode):o}): another user could swap its lock files",
                hint=f"chmod 1777 {folder}, or set {RUN_DIR_ENV}",
            )
    if not stat.S_ISDIR(info.st_mode):
        raise UsageError(
            f"the run directory {folder} is not a folder",
            hint=f"remove what is there, or set {RUN_DIR_ENV} to a folder",
        )
    return folder


def _make(folder: Path, *, mode: int) -> bool:
    """Create ``folder`` (and its parents) with ``mode`` when missing; whether it was made."""
    try:
        folder.mkdir(mode=mode, parents=True)
    except FileExistsError:
        return False
    except OSError as exc:
        raise _unusable(folder, exc) from exc
    return True


def _stat(folder: Path, *, follow: bool) -> os.stat_result:
    try:
        return folder.stat() if follow else folder.lstat()
    except OSError as exc:
        raise _unusable(folder, exc) from exc


def _unusable(folder: Path, exc: OSError) -> UsageError:
    return UsageError(
        f"the run directory {folder} can't be used: {exc.strerror or exc}",
        hint=f"set {RUN_DIR_ENV} to a folder every user running apply can write",
    )


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
    """A descriptor of the lock file at ``path``, made (mode 0666) when missing: read and
    write when it may be written, else read only (enough to lock it). An existing file is
    opened without ``O_CREAT`` (``fs.protected_regular`` forbids it on another user's file
    in a sticky folder), and never through a link."""
    flags = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO in its place can't block
    try:
        while True:
            try:
                descriptor = os.open(path, os.O_RDWR | flags)
            except FileNotFoundError:
                try:
                    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | flags, 0o666)
                except FileExistsError:
                    continue  # another run made it meanwhile: open it as it is
                os.fchmod(descriptor, 0o666)  # whatever the umask: another user's run opens it
            except PermissionError:
                descriptor = os.open(path, os.O_RDONLY | flags)  # another user's, not ours
            break
    except OSError as exc:
        why = "a link is in its place" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        raise UsageError(
            f"the workspace lock {path} can't be opened: {why}",
            hint=f"check the folder, or set {RUN_DIR_ENV} to a folder every user running apply"
            " can write",
        ) from exc
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise UsageError(
            f"the workspace lock {path} can't be opened: it is not a file",
            hint="remove what is in its place",
        )
    return descriptor


def _is_writable(descriptor: int) -> bool:
    return fcntl.fcntl(descriptor, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDWR


def _say_who(descriptor: int, about: dict[str, Any]) -> None:
    """Write who holds the lock into its file (read by a run that finds it held); a file this
    user may only read says nothing (the kernel names the holder's pid)."""
    if _is_writable(descriptor):
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, json.dumps(about).encode(), 0)


def _let_go(descriptor: int) -> None:
    """Empty the file (nobody holds it) and release the lock."""
    if _is_writable(descriptor):
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
