"""Getting PINs to guests: what the ledger keeps for the hand-off.

Tables (in ``tables.SCHEMA``, created when a ledger is opened, older ones included)
    guests         the guest name of each planned code, as apply read it (code names carry it
                   only through a configurable template)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipeline.ledger.commits import GroupCommits
from pipeline.ledger.dialects import Db

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
