"""Who needs a person: the night's reservations without a code (the latest apply run's rows that
were rejected or whose create failed, kept so that ``pins`` lists every guest of the latest
input, those without a code too, saying why, and ``report`` names each of them until a run
gives them a code), and the codes a person has to act on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.ledger.columns import STAY_COLUMNS
from pipeline.ledger.commits import GroupCommits
from pipeline.ledger.dialects import Db
from pipeline.ledger.states import MAY_EXIST_SQL, timestamp

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

# What ``codes_needing_a_person`` reads of a code.
PERSON_CODE_COLUMNS = (
    "idempotency_tag",
    *STAY_COLUMNS,
    "name",
    "state",
    "access_code_id",
    "code_status",
    "needs_attention",
    "orphaned_run_id",
    "superseded_run_id",
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

    async def codes_needing_a_person(self) -> list[dict[str, Any]]:
        """The codes a person has to act on, whatever their windows (the caller judges which
        have ended): codes whose outcome is unknown (``sending``), created codes that need
        attention, orphaned and superseded codes that may exist (valid on their doors though no
        longer their guests'), and codes whose tag is on its door more than once. Each with
        ``PERSON_CODE_COLUMNS``, its guest (``guest_name``, None when apply recorded none) and,
        for a code a reissued one replaces, that code's ``replaced_by`` (its access code id,
        else its tag) and window (``replaced_by_starts_at``, ``replaced_by_ends_at``)."""
        columns = ", ".join(f"c.{name}" for name in PERSON_CODE_COLUMNS)
        may_exist = f"c.{MAY_EXIST_SQL}"  # "c.state IN (...)"
        # The codes that replace others, grouped once (a subquery per row would read the whole
        # table per row: replaces_tag has no index).
        newer = (
            "SELECT replaces_tag, MIN(coalesce(access_code_id, idempotency_tag)) AS replaced_by,"
            " MIN(starts_at) AS replaced_by_starts_at, MIN(ends_at) AS replaced_by_ends_at"
            " FROM codes WHERE replaces_tag IS NOT NULL GROUP BY replaces_tag"
        )

        def query(db: Db) -> list[dict[str, Any]]:
            cursor = db.execute(
                f"SELECT {columns}, g.guest_name,"
                " n.replaced_by, n.replaced_by_starts_at, n.replaced_by_ends_at"
                " FROM codes c LEFT JOIN guests g USING (idempotency_tag)"
                f" LEFT JOIN ({newer}) n ON n.replaces_tag = c.idempotency_tag"
                " WHERE c.state = 'sending'"
                " OR (c.state = 'created' AND c.needs_attention IS NOT NULL)"
                f" OR ((c.orphaned_run_id IS NOT NULL OR c.superseded_run_id IS NOT NULL)"
                f" AND {may_exist})"
                " OR c.idempotency_tag IN (SELECT idempotency_tag FROM duplicates)"
                " ORDER BY c.starts_at, c.reservation_id, c.idempotency_tag"
            )
            names = [description[0] for description in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor]

        return await self.read(query)
