"""The codes: registering planned codes and moving each through its states, exactly once.

A code's ``state`` goes pending → sending → created | failed. It is marked ``sending`` (and
committed) before its create leaves the process; only a ``created`` code is final. What Seam
answered a create (``mark_created``, ``mark_failed``, ``mark_pending``) is queued, not awaited:
until the next commit the code is still ``sending`` on disk, which is the safe side.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from pipeline.common.errors import RunStopped
from pipeline.ledger.columns import CODE_COLUMNS, LEDGER_CODE_COLUMNS, RESULT_COLUMNS, LedgerCode
from pipeline.ledger.commits import GroupCommits, Queued
from pipeline.ledger.dialects import Cursor, Db
from pipeline.ledger.events import unexpected_pin
from pipeline.ledger.keys import fill_keys
from pipeline.ledger.states import MAY_EXIST_SQL, SENDABLE, timestamp
from pipeline.seam.models import AccessCode


class RunLockLost(RunStopped):
    """The run's PostgreSQL lock went with its connection: the run stops as for any stop
    (exit 3): what was done is recorded, prepared codes are put back, results are written."""


class Codes(GroupCommits):
    """The ledger's ``codes`` table and the state changes logged in ``events``."""

    async def register(self, run_id: str, rows: Iterable[dict[str, Any]]) -> dict[str, LedgerCode]:
        """Add planned codes not yet in the ledger (as ``pending``; a row's ``also_for``, when it
        has one, says which doors of the stay a [doors.also] code serves); returns every given
        code."""
        return await self.committed(self.register_soon(run_id, rows))

    def register_soon(
        self, run_id: str, rows: Iterable[dict[str, Any]]
    ) -> Queued[dict[str, LedgerCode]]:
        """``register``, queued now ahead of every later change (so a later ``mark_sending``
        finds the codes); ``committed`` gives its result."""
        rows = list(rows)

        def change(db: Db) -> dict[str, LedgerCode]:
            at = timestamp()
            db.executemany(
                f"INSERT INTO codes ({', '.join(CODE_COLUMNS)}, also_for, state, first_run_id,"
                f" last_run_id, updated_at) VALUES ({', '.join('?' * len(CODE_COLUMNS))}, ?,"
                " 'pending', ?, ?, ?) ON CONFLICT (idempotency_tag) DO NOTHING",
                [
                    (*(row[c] for c in CODE_COLUMNS), row.get("also_for"), run_id, run_id, at)
                    for row in rows
                ],
            )
            wanted = [row["idempotency_tag"] for row in rows]
            return {code.idempotency_tag: code for code in _select_codes(db, wanted)}

        return self.queue(change)

    async def has_codes(self) -> bool:
        """Whether the ledger holds any code at all (a new or lost ledger holds none)."""
        return await self.read(
            lambda db: bool(db.execute("SELECT EXISTS (SELECT 1 FROM codes)").fetchone()[0])
        )

    async def codes_in_state(self, state: str) -> list[LedgerCode]:
        """Every code in ``state`` (e.g. the ``sending`` ones a killed run left behind)."""

        def query(db: Db) -> list[LedgerCode]:
            cursor = db.execute(
                f"SELECT {', '.join(LEDGER_CODE_COLUMNS)} FROM codes WHERE state = ?", (state,)
            )
            return [LedgerCode(*row) for row in cursor]

        return await self.read(query)

    async def mark_sending(self, tag: str, run_id: str) -> int | None:
        """Committed before the create is sent: from here on the outcome must be checked.

        A compare-and-set: only a ``pending`` or ``failed`` code becomes ``sending``. Returns
        the code's attempt number (its ``attempts`` after this one: what a later move out of
        this ``sending`` names, see ``mark_pending``), or None when the code was in another
        state (another process got to it first, or it was found on its door): the caller must
        not send it.
        """

        held = self.held_lock  # only a PostgreSQL run holds one

        def change(db: Db) -> int | None:
            attempt = _transition(
                db,
                tag,
                run_id,
                "sending",
                1,
                {"sent_at": timestamp()},
                from_states=SENDABLE,
                lock=held,
            )
            if attempt is None and held is not None and not _holds(db, held):
                raise RunLockLost(
                    f"ledger {self.path}: the run lock was lost (its connection to"
                    " PostgreSQL ended); nothing more is sent",
                    hint="rerun: every code sent was committed first",
                )
            return attempt

        return await self.write(change)

    async def unmark_sending(self, run_id: str, attempts: Sequence[tuple[str, int]]) -> None:
        """Codes this run made ``sending`` but never sent, each ``(tag, attempt)`` as
        ``mark_sending`` numbered it: ``pending`` again, committed (a compare-and-set on that
        attempt: a code found or answered since, or sent again by another process, is left
        alone). The attempt stays counted, so that no later ``sending`` gets its number."""
        if not attempts:
            return

        def change(db: Db) -> None:
            for tag, attempt in attempts:
                _transition(
                    db,
                    tag,
                    run_id,
                    "pending",
                    0,
                    {"sent_at": None},
                    from_states=("sending",),
                    attempt=attempt,
                )

        await self.write(change)

    async def mark_sent_now(self, tag: str) -> None:
        """A ``sending`` code leaves later than its ``sent_at`` says: record now, committed."""
        await self.write(
            lambda db: db.execute(
                "UPDATE codes SET sent_at = ? WHERE idempotency_tag = ? AND state = 'sending'",
                (timestamp(), tag),
            )
        )

    async def states(self, tags: Sequence[str]) -> dict[str, str]:
        """The ledger's state of each given tag it has (tags it hasn't are left out)."""

        def query(db: Db) -> dict[str, str]:
            return dict(_select_by_tags(db, tags, ("idempotency_tag", "state")).fetchall())

        return await self.read(query)

    def mark_created(
        self, tag: str, run_id: str, code: AccessCode, request_id: str | None, *, how: str
    ) -> None:
        """``how``: ``created`` (Seam's answer), ``adopted`` (found on the door after an unknown
        outcome) or ``found_on_door`` (found before anything was sent: a new, lost or copied
        ledger). From any state: Seam says the code exists. Queued for the next commit, like
        the other answers. A PIN in Seam's answer that isn't one (``AccessCode.pin_unexpected``)
        isn't recorded: the code needs attention (``pin_unexpected``)."""
        said = f"Seam's answer (seam-request-id {request_id})" if request_id else "Seam's list"
        noticed = {"needs_attention": unexpected_pin(said)} if code.pin_unexpected else {}
        self._answered(
            tag,
            run_id,
            "created",
            None,
            reason=how,
            message=None,
            access_code_id=code.access_code_id,
            code=code.code,
            code_status=code.status,
            seam_request_id=request_id,
            created_at=timestamp(),
            **noticed,
        )

    def mark_failed(
        self,
        tag: str,
        run_id: str,
        reason: str,
        message: str,
        request_id: str | None,
        *,
        attempt: int | None = None,
    ) -> None:
        """Seam refused the create: no code exists; a later run may try again. ``attempt``: as
        for ``mark_pending``."""
        self._answered(
            tag,
            run_id,
            "failed",
            attempt,
            reason=reason,
            message=message,
            seam_request_id=request_id,
        )

    def mark_pending(
        self,
        tag: str,
        run_id: str,
        reason: str,
        message: str,
        *,
        attempt: int | None = None,
        looked_for: bool = False,
    ) -> None:
        """Known not to exist on the door (refused before acting, or looked for and not found).
        ``attempt``: the ``sending`` this answers (``mark_sending``'s number, or the attempts a
        code left ``sending`` had when it was read): a code sent again since, by another
        process, is left alone, so that no one's answer or look puts another's send back.
        ``looked_for``: a look after an unknown outcome found no code and the create is to be
        sent again; the earlier one may yet be carried out, so the time is kept
        (``not_found_at``) and the door is looked at for a duplicate while the window lasts."""
        fields: dict[str, Any] = {"reason": reason, "message": message}
        if looked_for:
            fields["not_found_at"] = timestamp()
        self._answered(tag, run_id, "pending", attempt, **fields)

    def _answered(
        self, tag: str, run_id: str, state: str, attempt: int | None, **fields: Any
    ) -> None:
        """Queue a code's next state. Lost in a crash, a ``sending`` code stays ``sending`` and
        is looked for on its door before anything is sent for it again. A ``created`` code is
        never moved back: Seam said it exists."""
        origins = None if state == "created" else ("pending", "sending", "failed")
        self.defer(
            lambda db: _transition(
                db, tag, run_id, state, 0, fields, from_states=origins, attempt=attempt
            )
        )

    async def mark_failed_many(self, run_id: str, refusals: Sequence[tuple[str, str, str]]) -> None:
        """``(tag, reason, message)`` for codes that were not sent after all (e.g. their door's
        budget ran out): ``failed``, in one transaction; a later run may try them again."""

        def change(db: Db) -> None:
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
        return await self._codes_that_may_exist("device_id", device_ids, columns)

    async def code_table(self, tags: Sequence[str]) -> list[dict[str, Any]]:
        """The outcome columns of the given codes, for the results file."""

        def query(db: Db) -> list[dict[str, Any]]:
            cursor = _select_by_tags(db, tags, RESULT_COLUMNS)
            return [dict(zip(RESULT_COLUMNS, row, strict=True)) for row in cursor]

        return await self.read(query)

    async def codes_of_reservations(self, reservation_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The codes of these reservations that exist or may exist (``created`` or
        ``sending``): ``reservation_id, idempotency_tag, device_id, door_name, starts_at,
        ends_at, access_code_id`` (None while the outcome is unknown)."""
        columns = (
            "reservation_id",
            "idempotency_tag",
            "device_id",
            "door_name",
            "starts_at",
            "ends_at",
            "access_code_id",
        )
        return await self._codes_that_may_exist("reservation_id", reservation_ids, columns)

    async def _codes_that_may_exist(
        self, key: str, values: Sequence[str], columns: Sequence[str]
    ) -> list[dict[str, Any]]:
        """``columns`` of the codes that exist or may exist whose ``key`` is one of ``values``."""

        def query(db: Db) -> list[dict[str, Any]]:
            keys = fill_keys(db, key, values)
            cursor = db.execute(
                f"SELECT {', '.join(columns)} FROM codes JOIN {keys} USING ({key})"
                f" WHERE {MAY_EXIST_SQL}"
            )
            return [dict(zip(columns, row, strict=True)) for row in cursor]

        return await self.read(query)

    async def record_replacements(self, replaces: dict[str, str]) -> None:
        """``replaces``: a reissued code's tag → the tag of the code it replaces. Committed when
        it returns."""
        await self.write(
            lambda db: db.executemany(
                "UPDATE codes SET replaces_tag = ? WHERE idempotency_tag = ?",
                [(old, new) for new, old in replaces.items()],
            )
        )


def _transition(
    db: Db,
    tag: str,
    run_id: str,
    state: str,
    attempts: int,
    fields: dict[str, Any],
    *,
    from_states: Sequence[str] | None = None,
    attempt: int | None = None,
    lock: tuple[int, int, int] | None = None,
) -> int | None:
    """Move one code to ``state`` and log the change (inside the caller's transaction);
    returns the code's ``attempts`` after the move.

    With ``from_states`` it is a compare-and-set: a code in another state is left alone and
    None is returned; with ``attempt`` too, a ``sending`` code moves only if it is still that
    attempt; with ``lock`` (PostgreSQL), only while the run's advisory lock is held by its
    connection. Raises KeyError when the ledger has no such code.
    """
    assignments = "".join(f", {name} = ?" for name in fields)
    guard = ""
    guard_values: tuple[Any, ...] = ()
    if from_states is not None:
        guard = f" AND state IN ({', '.join('?' * len(from_states))})"
        guard_values = tuple(from_states)
    if attempt is not None:
        guard += " AND (state != 'sending' OR attempts = ?)"
        guard_values = (*guard_values, attempt)
    if lock is not None:
        guard += f" AND EXISTS ({_LOCK_HELD})"
        guard_values = (*guard_values, *lock)
    moved = db.execute(
        f"UPDATE codes SET state = ?, attempts = attempts + ?, last_run_id = ?,"
        f" updated_at = ?{assignments} WHERE idempotency_tag = ?{guard} RETURNING attempts",
        (state, attempts, run_id, timestamp(), *fields.values(), tag, *guard_values),
    ).fetchone()
    if moved is None:
        if db.execute("SELECT 1 FROM codes WHERE idempotency_tag = ?", (tag,)).fetchone():
            return None
        raise KeyError(f"no code {tag} in the ledger")
    db.execute(
        "INSERT INTO events (run_id, at, kind, idempotency_tag, seam_request_id, detail)"
        " VALUES (?, ?, 'state', ?, ?, ?)",
        (
            run_id,
            timestamp(),
            tag,
            fields.get("seam_request_id"),
            json.dumps(
                {"state": state, **{k: v for k, v in fields.items() if k in {"reason", "message"}}}
            ),
        ),
    )
    return int(moved[0])


# The run's PostgreSQL advisory lock, held by the given backend: classid, objid, pid.
_LOCK_HELD = (
    "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND classid = ?::bigint::oid AND objid = ?::bigint::oid AND pid = ?"
)


def _holds(db: Db, lock: tuple[int, int, int]) -> bool:
    """Whether the run's advisory lock is still held by its connection."""
    return db.execute(f"SELECT EXISTS ({_LOCK_HELD})", lock).fetchone()[0] is True


def _select_codes(db: Db, tags: Sequence[str]) -> list[LedgerCode]:
    return [LedgerCode(*row) for row in _select_by_tags(db, tags, LEDGER_CODE_COLUMNS)]


def _select_by_tags(db: Db, tags: Iterable[str], columns: Sequence[str]) -> Cursor:
    """``columns`` of the codes with the given tags (any number of them: a temporary join)."""
    keys = fill_keys(db, "idempotency_tag", tags)
    return db.execute(f"SELECT {', '.join(columns)} FROM codes JOIN {keys} USING (idempotency_tag)")
