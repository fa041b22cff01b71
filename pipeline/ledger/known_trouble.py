"""What the nightly summary already said, so that the next one says only what is new.

Tables (in ``tables.SCHEMA``, created when a ledger is opened, older ones included)
    known_trouble  what the last nightly summary reported (rejected rows, failed creates,
                   codes needing attention, orphaned codes)
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from pipeline.ledger.commits import GroupCommits
from pipeline.ledger.dialects import Db
from pipeline.ledger.states import MAY_EXIST_SQL, timestamp


class KnownTrouble(GroupCommits):
    """The trouble the nightly summary counts, and what of it is known already."""

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
