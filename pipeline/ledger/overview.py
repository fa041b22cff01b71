"""What the HTML report reads besides the report's rows: the requests each run sent to Seam (its
``request`` events, one per exchange, as the client logged them), and every PIN the ledger
holds, for the page to keep out of the text it shows."""

from __future__ import annotations

import json
from collections.abc import Collection

from pipeline.ledger.commits import GroupCommits
from pipeline.ledger.dialects import Db
from pipeline.ledger.keys import fill_keys


class Overview(GroupCommits):
    """Reads for the HTML report's run history and for what its page must never show."""

    async def requests_per_run(self, run_ids: Collection[str]) -> dict[str, int]:
        """The requests each of ``run_ids`` sent to Seam (a run that sent none is left out)."""

        def query(db: Db) -> dict[str, int]:
            keys = fill_keys(db, "run_id", run_ids)
            cursor = db.execute(
                f"SELECT run_id, COUNT(*) FROM events JOIN {keys} USING (run_id)"
                " WHERE kind = 'request' GROUP BY run_id"
            )
            return {str(run_id): int(count) for run_id, count in cursor}

        return await self.read(query)

    async def held_pins(self) -> frozenset[str]:
        """Every PIN the ledger holds: its codes', another PIN an event reported for one, and
        those of the codes found carrying a tag twice (``duplicates``)."""

        def query(db: Db) -> frozenset[str]:
            pins = {
                str(pin)
                for (pin,) in db.execute(
                    "SELECT code FROM codes WHERE code IS NOT NULL"
                    " UNION SELECT reported_code FROM codes WHERE reported_code IS NOT NULL"
                )
            }
            for (listed,) in db.execute("SELECT codes FROM duplicates"):
                pins.update(str(code["code"]) for code in json.loads(listed) if code.get("code"))
            return frozenset(pins)

        return await self.read(query)
