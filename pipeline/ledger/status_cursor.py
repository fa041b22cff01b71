"""How far ``status`` has caught up: the ledger's status cursor.

Tables (in ``tables.SCHEMA``, created when a ledger is opened, older ones included)
    status_cursor  one row: the instant up to which every unfinished code's status is known,
                   so that ``status`` may catch up from Seam's events since then
"""

from __future__ import annotations

from pipeline.ledger.commits import GroupCommits
from pipeline.ledger.dialects import Db


class StatusCursor(GroupCommits):
    """The instant up to which the codes' statuses are known."""

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
