"""How a failing ledger file is told to the user: sqlite3's and the system's errors, translated
where they enter our code (see ``pipeline.common.errors`` for the tree):

    UsageError          it can't be opened (a wrong path, permissions): exit 2
    CorruptLedgerError  the file is damaged or isn't a ledger: exit 2
    LedgerError         its disk is full or failing, the ledger intact: exit 3
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from pipeline.common.errors import CorruptLedgerError, LedgerError, PipelineError, UsageError
from pipeline.ledger import postgres
from pipeline.ledger.location import LedgerLocation, PostgresLedger

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
# Less free space than this on the ledger's disk makes an I/O error a full disk.
_NO_SPACE_BYTES = 64 * 1024
_CORRUPT_HINT = (
    "restore it from a backup, or move it aside and pass it on to the pipeline's maintainers:"
    " a new ledger does not know which codes were already sent"
)


def _sqlite_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def is_disk_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is the disk (or the file, or the database server's connection) failing
    rather than a change's own error."""
    if postgres.is_connection_failure(exc):
        return True
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
        if is_disk_failure(seen):
            return seen
        seen = seen.__context__
    return exc


def write_failure(path: LedgerLocation, exc: BaseException) -> PipelineError:
    """The one-line error for a ledger that couldn't be written (LedgerError, exit 3), naming
    the file and SQLite's or the system's own words; a damaged file is CorruptLedgerError. On
    PostgreSQL: a lost connection, or the server's own words."""
    exc = _first_disk_failure(exc)
    if isinstance(path, PostgresLedger):
        if postgres.is_connection_failure(exc):
            return postgres.lost_connection(path, exc)
        return LedgerError(
            f"ledger {path} can't be written: {postgres.reason(path, exc)}",
            hint="check the database server's log and rerun: the ledger is intact",
        )
    if _sqlite_code(exc) in _DAMAGE:
        return damaged(path, str(exc))
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


def open_failure(path: LedgerLocation, exc: Exception) -> PipelineError:
    """The error for a ledger that couldn't be opened: a full or failing disk or a damaged file
    as ``write_failure`` says, anything else UsageError (a wrong path, permissions); on
    PostgreSQL, ``postgres.connect_failure``."""
    if isinstance(path, PostgresLedger):
        return postgres.connect_failure(path, exc)
    if _is_out_of_space(exc) or _sqlite_code(exc) in _DAMAGE | {sqlite3.SQLITE_IOERR}:
        return write_failure(path, exc)
    return UsageError(
        f"ledger {path} can't be opened: {exc}",
        hint="check --ledger and the folder's permissions",
    )


def damaged(path: LedgerLocation, what: str) -> CorruptLedgerError:
    """The file at ``path`` is damaged or isn't a ledger (``what``: how it shows)."""
    return CorruptLedgerError(
        f"ledger {path} is damaged or not a ledger: {what}", hint=_CORRUPT_HINT
    )
