"""The night's reservations without a code: the latest apply run's rows that were rejected or
whose create failed, kept so that ``pins`` lists every guest of the latest input (those without
a code too, saying why) and ``report`` names each of them, until a run gives them a code."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.ledger.commits import GroupCommits
from pipeline.ledger.dialects import Db
from pipeline.ledger.schema import timestamp

# What the ledger keeps of such a row (``without_code``'s columns, but the run and the time).
WITHOUT_CODE_COLUMNS = (
    "reservation_id",
    "device_id",
    "door_name",
    "site_name",
    "guest_name",
    "check_in",
    "check_out",
    "outcome",
    "reason",
    "message",
    "idempotency_tag",
    "also_for",
    "source_file",
    "source_line",
)


class WithoutCode(GroupCommits):
    """The ledger's ``without_code`` table."""

    async def record_without_code(self, run_id: str, rows: Sequence[dict[str, Any]]) -> None:
        """Replace the rows without a code by those of ``run_id`` (``WITHOUT_CODE_COLUMNS``):
        what an earlier run couldn't make and this one did is no longer listed. Committed."""
        at = timestamp()

        def change(db: Db) -> None:
            db.execute("DELETE FROM without_code")
            db.executemany(
                f"INSERT INTO without_code (run_id, recorded_at, {', '.join(WITHOUT_CODE_COLUMNS)})"
                f" VALUES (?, ?, {', '.join('?' * len(WITHOUT_CODE_COLUMNS))})",
                [(run_id, at, *(row.get(name) for name in WITHOUT_CODE_COLUMNS)) for row in rows],
            )

        await self.write(change)

    async def rows_without_code(self) -> list[dict[str, Any]]:
        """The latest apply run's rows without a code: ``run_id``, ``recorded_at`` and
        ``WITHOUT_CODE_COLUMNS``, in the input's order."""

        def query(db: Db) -> list[dict[str, Any]]:
            cursor = db.execute(
                f"SELECT run_id, recorded_at, {', '.join(WITHOUT_CODE_COLUMNS)} FROM without_code"
                " ORDER BY source_file NULLS FIRST, source_line NULLS FIRST, device_id NULLS FIRST"
            )
            names = [description[0] for description in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor]

        return await self.read(query)
