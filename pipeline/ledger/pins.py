"""Getting PINs to guests: what the ledger keeps for the hand-off and the quiet nightly job.

Tables (in ``schema.SCHEMA``, created when a ledger is opened, older ones included)
    guests         the guest name of each planned code, as apply read it (code names carry it
                   only through a configurable template)
    status_cursor  one row: the instant up to which every unfinished code's status is known,
                   so that ``status`` may catch up from Seam's events since then
    known_trouble  what the last nightly summary reported (rejected rows, failed creates,
                   codes needing attention, orphaned codes), so the next one reports only what
                   is new
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from pipeline.ledger.commits import GroupCommits
from pipeline.ledger.dialects import Db
from pipeline.ledger.schema import MAY_EXIST_SQL, timestamp

# What ``pin_rows`` reads of a code (its last status event's time comes as ``status_changed_at``).
PIN_SOURCE_COLUMNS = (
    "idempotency_tag",
    "reservation_id",
    "device_id",
    "door_name",
    "site_name",
    "starts_at",
    "ends_at",
    "name",
    "state",
    "reason",
    "message",
    "access_code_id",
    "code",
    "code_status",
    "code_errors",
    "needs_attention",
    "reported_code",
    "updated_at",
)


class Pins(GroupCommits):
    """The hand-off's tables (``guests``, ``status_cursor``, ``known_trouble``) and the query
    that lists every reservation's code as a guest would be sent it."""

    async def record_guests(self, names: Iterable[tuple[str, str | None]]) -> None:
        """``(idempotency_tag, guest_name)`` of planned codes; a later name replaces an earlier
        one (a corrected export). Committed when it returns."""
        rows = [(tag, name) for tag, name in names if name]

        def change(db: Db) -> None:
            db.executemany(
                "INSERT INTO guests (idempotency_tag, guest_name) VALUES (?, ?)"
                " ON CONFLICT (idempotency_tag) DO UPDATE SET guest_name = excluded.guest_name",
                rows,
            )

        await self.write(change)

    async def pin_rows(self, check_in_dates: tuple[str, str] | None = None) -> list[dict[str, Any]]:
        """Every code a guest may be sent: each reservation's code per door, except orphaned
        codes (the reservation left the export or was cancelled there) and codes replaced by a
        reissued one (a moved stay). ``PIN_SOURCE_COLUMNS``, ``guest_name`` (None when apply
        didn't record one) and ``status_changed_at`` (the last status event's time, or None).
        Codes that may exist (``created``, ``sending``) and those not created yet (``pending``,
        ``failed``) are all listed; the caller says which are ready. ``check_in_dates``:
        ``(first, last)`` ISO dates: only the codes whose ``starts_at`` falls on one of them
        (the lock's date, as written)."""
        dates = ""
        if check_in_dates is not None:
            dates = " AND substr(c.starts_at, 1, 10) BETWEEN ? AND ?"

        def query(db: Db) -> list[dict[str, Any]]:
            columns = ", ".join(f"c.{column}" for column in PIN_SOURCE_COLUMNS)
            # The status events' times grouped once and joined: a lookup per code would scan
            # the events (no index on their tag) once for every code.
            cursor = db.execute(
                f"SELECT {columns}, g.guest_name, s.status_changed_at"
                " FROM codes c LEFT JOIN guests g USING (idempotency_tag)"
                " LEFT JOIN (SELECT idempotency_tag, MAX(at) AS status_changed_at FROM events"
                "  WHERE kind = 'status' GROUP BY idempotency_tag) s USING (idempotency_tag)"
                " WHERE c.orphaned_run_id IS NULL AND c.superseded_run_id IS NULL"
                " AND c.idempotency_tag NOT IN"
                "  (SELECT replaces_tag FROM codes WHERE replaces_tag IS NOT NULL)"
                f"{dates}"
                # NULLS FIRST on both databases (SQLite's default, PostgreSQL's opposite).
                " ORDER BY c.starts_at NULLS FIRST, c.reservation_id NULLS FIRST,"
                " c.door_name NULLS FIRST, c.idempotency_tag",
                check_in_dates or (),
            )
            names = [description[0] for description in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor]

        return await self.read(query)

    async def status_known_until(self) -> str | None:
        """The instant up to which every unfinished code's status is known (None: never)."""

        def query(db: Db) -> str | None:
            row = db.execute("SELECT known_until FROM status_cursor").fetchone()
            return None if row is None else str(row[0])

        return await self.read(query)

    async def set_status_known_until(self, instant: str) -> None:
        """Record that every unfinished code's status is known as of ``instant``. Committed."""

        def change(db: Db) -> None:
            db.execute(
                "INSERT INTO status_cursor (only_row, known_until) VALUES (1, ?)"
                " ON CONFLICT (only_row) DO UPDATE SET known_until = excluded.known_until",
                (instant,),
            )

        await self.write(change)

    async def trouble_now(self) -> dict[str, list[dict[str, Any]]]:
        """The codes the nightly summary counts, by kind: ``attention`` (created codes that
        need attention), ``orphaned`` (orphaned codes that may exist) and ``waiting`` (created,
        not orphaned, no PIN yet); each row ``idempotency_tag, reservation_id, door_name,
        ends_at, needs_attention, code_status`` (whether a window has ended is the caller's to
        judge)."""
        columns = "idempotency_tag, reservation_id, door_name, ends_at, needs_attention"

        def query(db: Db) -> dict[str, list[dict[str, Any]]]:
            found: dict[str, list[dict[str, Any]]] = {}
            for kind, where in (
                ("attention", "state = 'created' AND needs_attention IS NOT NULL"),
                ("orphaned", f"orphaned_run_id IS NOT NULL AND {MAY_EXIST_SQL}"),
                (
                    "waiting",
                    "state = 'created' AND orphaned_run_id IS NULL AND code IS NULL",
                ),
            ):
                cursor = db.execute(f"SELECT {columns}, code_status FROM codes WHERE {where}")
                names = [description[0] for description in cursor.description]
                found[kind] = [dict(zip(names, row, strict=True)) for row in cursor]
            return found

        return await self.read(query)

    async def note_trouble(
        self, trouble: Iterable[tuple[str, str]], kinds: Collection[str]
    ) -> set[tuple[str, str]]:
        """Record tonight's trouble of ``kinds`` (``(kind, key)`` pairs) as known; returns the
        pairs that weren't known before. What of those kinds isn't in ``trouble`` any more is
        forgotten: should it come back, it is new again; other kinds are left as they are (a
        night without a results file forgets no rejection). Committed when it returns."""
        tonight = {(kind, key) for kind, key in trouble if kind in kinds}
        marks = ", ".join("?" * len(kinds))

        def change(db: Db) -> set[tuple[str, str]]:
            first_seen = {
                (str(kind), str(key)): str(seen)
                for kind, key, seen in db.execute(
                    f"SELECT kind, key, first_seen FROM known_trouble WHERE kind IN ({marks})",
                    tuple(kinds),
                )
            }
            at = timestamp()
            db.execute(f"DELETE FROM known_trouble WHERE kind IN ({marks})", tuple(kinds))
            db.executemany(
                "INSERT INTO known_trouble (kind, key, first_seen, last_seen) VALUES (?, ?, ?, ?)",
                [(kind, key, first_seen.get((kind, key), at), at) for kind, key in sorted(tonight)],
            )
            return tonight - first_seen.keys()

        return await self.write(change)
