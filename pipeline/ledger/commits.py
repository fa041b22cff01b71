"""Group commits: every change to the ledger goes through one worker thread and shared commits.

All database work runs in one worker thread (``anyio.to_thread`` with a limiter of 1), never on
the event loop. Commits are durable (WAL, ``synchronous=FULL``) and shared: an awaited change
(``write``) returns once committed, together with every change queued before it. A deferred
change (``defer``) goes in with the next commit (the next write, any read, ``commit_every``'s
beat, ``close``). Each change runs in its own savepoint, so that its failure undoes only itself;
a failing disk undoes the whole batch and is raised as LedgerError (see ``failures``).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import anyio
import anyio.to_thread

from pipeline.ledger.dialects import DATABASE_ERRORS, Db
from pipeline.ledger.failures import is_disk_failure, write_failure
from pipeline.ledger.location import LedgerLocation
from pipeline.ledger.states import timestamp
from pipeline.seam.client import Exchange

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(eq=False)
class _Change(Generic[T]):
    """A change waiting for a commit; ``awaited``: a caller waits for its result."""

    apply: Callable[[Db], T]
    awaited: bool
    done: bool = False
    result: T | None = None
    error: BaseException | None = None

    def run(self, db: Db) -> None:
        """Apply it in its own savepoint, so that its failure undoes only itself."""
        db.execute("SAVEPOINT change")
        try:
            self.result = self.apply(db)
        except Exception as exc:
            db.execute("ROLLBACK TO change")
            self.error = exc
        db.execute("RELEASE change")


# A change queued for a commit (``GroupCommits.queue``), awaited with ``committed``.
Queued = _Change


def _nothing(db: Db) -> None:
    return None


def _request_event(exchange: Exchange) -> tuple[Any, ...]:
    """An exchange's ``events`` columns: path, status, request id and its detail as JSON."""
    detail = {
        "body": exchange.body,
        "error_type": exchange.error_type,
        "message": exchange.message,
        "seconds": round(exchange.seconds, 4),
    }
    return exchange.path, exchange.status, exchange.request_id, json.dumps(detail)


class GroupCommits:
    """An open ledger connection and its commit queue: ``read``, ``write`` and ``defer`` run
    database work in the ledger's one thread; ``close`` commits what is queued."""

    def __init__(self, connection: Db, path: LedgerLocation) -> None:
        self._db = connection
        self.path = path
        self._thread = anyio.CapacityLimiter(1)
        self._exchanges: list[tuple[str, Exchange]] = []
        self._queue: list[_Change[Any]] = []
        self._committing: anyio.Event | None = None
        self._told_unrecorded = False
        # A PostgreSQL run lock the ``sending`` compare-and-set checks (``hold``).
        self.held_lock: tuple[int, int, int] | None = None

    def hold(self, parts: tuple[int, int, int] | None) -> None:
        """The run's PostgreSQL advisory lock (``pg_locks``' classid, objid and the holding
        backend's pid): from now on a code moves into ``sending`` only while that lock is
        held, checked by the database in the same statement."""
        self.held_lock = parts

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

    async def read(self, query: Callable[[Db], T]) -> T:
        """Run ``query`` in the ledger's thread, after committing what is queued (for other
        stages' reads)."""
        await self.commit()
        try:
            return await self._run(lambda: query(self._db))
        except DATABASE_ERRORS as exc:
            raise write_failure(self.path, exc) from exc

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        """Reads within the block see the ledger as it was at the first of them, whatever a
        run commits meanwhile: one read transaction (SQLite's WAL keeps a reader's snapshot
        until it ends; PostgreSQL's repeatable read). For readers that must agree with each
        other (the report and its page); no write may be made within it."""
        await self.commit()
        begin = (
            "BEGIN ISOLATION LEVEL REPEATABLE READ" if self._db.dialect == "postgresql" else "BEGIN"
        )
        await self._run(lambda: self._db.execute(begin))
        try:
            yield
        finally:
            # Nothing was written but the temporary tables of its reads: nothing to keep, and a
            # connection that can't even end it has failed a read already (raised as that).
            with anyio.CancelScope(shield=True), contextlib.suppress(*DATABASE_ERRORS):
                await self._run(lambda: self._db.execute("ROLLBACK"))

    async def _run(self, function: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(function, limiter=self._thread)

    async def write(self, change: Callable[[Db], T]) -> T:
        """Run ``change`` in the ledger's thread and return its result once it is committed,
        with every change queued before it and the buffered exchanges (other stages write
        through this too). Writes that arrive while a commit is going on share the next one."""
        return await self.committed(self.queue(change))

    def queue(self, change: Callable[[Db], T]) -> Queued[T]:
        """Queue ``change`` now, ahead of every change queued later; ``committed`` waits for it
        (``commit`` or any later write or read commits it)."""
        queued: Queued[T] = _Change(change, awaited=True)
        self._queue.append(queued)
        return queued

    async def committed(self, queued: Queued[T]) -> T:
        """The result of a queued change once it is committed (committing it when nothing is
        committing yet); raises what it raised."""
        while not queued.done:
            if self._committing is not None:
                await self._committing.wait()
            else:
                await self._commit()
        if queued.error is not None:
            raise queued.error
        return cast(T, queued.result)

    def defer(self, change: Callable[[Db], object]) -> None:
        """Queue ``change`` for the next commit, without waiting for it. Only for changes whose
        loss in a crash is safe; one that fails is logged (nobody waits to hear of it)."""
        self._queue.append(_Change(change, awaited=False))

    @asynccontextmanager
    async def commit_every(self, seconds: float) -> AsyncIterator[None]:
        """While the block runs, queued changes wait at most ``seconds`` for their commit
        (they would otherwise wait for the next write or read); what is queued when it begins
        is committed at once, beside the block. A beat whose commit fails stops beating and
        leaves the block alone (its own next write meets the same failure and ends on it); the
        failure is raised as itself after the block, if the block didn't raise."""
        beat_failures: list[Exception] = []

        async def beat() -> None:
            try:
                while True:
                    if self._queue:
                        await self.commit()
                    await anyio.sleep(seconds)
            except Exception as exc:
                beat_failures.append(exc)

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
        if beat_failures:
            raise beat_failures[0]

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
            if unawaited and not self._told_unrecorded:
                # Said once: the run ends on the same failure at its next write, in one line.
                self._told_unrecorded = True
                log.warning(
                    f"{unawaited} ledger change(s) nobody waits for were not recorded (answers"
                    " among them leave their codes sending: the next run looks for them)",
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
        self, batch: list[_Change[Any]], exchanges: list[tuple[str, Exchange]]
    ) -> BaseException | None:
        """In the ledger's thread: every change in its own savepoint, then the exchanges, then
        COMMIT. Returns None when committed, else the error that undid the whole batch."""
        failure: BaseException | None = None
        try:
            self._db.execute("BEGIN IMMEDIATE")
            for change in batch:
                change.run(self._db)
                if change.error is not None and is_disk_failure(change.error):
                    # The disk, not the change, failed: nothing of this batch can be trusted.
                    raise change.error
            self._db.executemany(
                "INSERT INTO events (run_id, at, kind, path, http_status, seam_request_id,"
                " detail) VALUES (?, ?, 'request', ?, ?, ?, ?)",
                [
                    (run_id, timestamp(), *_request_event(exchange))
                    for run_id, exchange in exchanges
                ],
            )
            self._db.execute("COMMIT")
        except BaseException as exc:
            # SQLite may have rolled the transaction back itself (a full disk at COMMIT does):
            # a ROLLBACK then fails with "no transaction is active" and hides the cause.
            if self._db.in_transaction:
                with contextlib.suppress(*DATABASE_ERRORS):
                    self._db.execute("ROLLBACK")
            failure = exc
            if isinstance(exc, (*DATABASE_ERRORS, OSError)):
                failure = write_failure(self.path, exc)
                failure.__cause__ = exc
        for change in batch:
            if failure is not None:
                change.error, change.result = failure, None
            change.done = True
        return failure

    def observe(self, run_id: str) -> Callable[[Exchange], None]:
        """A ``SeamClient`` observer that logs every exchange with the next commit."""
        return lambda exchange: self._exchanges.append((run_id, exchange))
