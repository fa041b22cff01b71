"""Status checks: the created codes ``status`` asks Seam about, and what Seam said of them."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from pipeline.ledger.columns import STAY_COLUMNS
from pipeline.ledger.commits import GroupCommits
from pipeline.ledger.dialects import Db
from pipeline.ledger.keys import fill_keys

# What ``status`` reads and records of a created code: what it is for, and Seam's last word on it.
STATUS_COLUMNS = (
    "idempotency_tag",
    *STAY_COLUMNS,
    "access_code_id",
    "code",
    "code_status",
    "code_errors",
    "code_warnings",
    "needs_attention",
)


class Statuses(GroupCommits):
    """Seam's status of the ledger's created codes (``codes`` columns and ``status`` events)."""

    async def created_codes(self, tags: Collection[str] | None = None) -> list[dict[str, Any]]:
        """The ``created`` codes that have an ``access_code_id`` (those with ``tags`` only, when
        given): ``STATUS_COLUMNS``, ``reported_code`` (another PIN an event gave), ``created_at``
        and ``withdrawn`` (``orphaned``: its reservation left the export; ``superseded``: the
        stay moved; else None)."""

        def query(db: Db) -> list[dict[str, Any]]:
            join = ""
            if tags is not None:
                join = f" JOIN {fill_keys(db, 'idempotency_tag', tags)} USING (idempotency_tag)"
            cursor = db.execute(
                f"SELECT {', '.join(STATUS_COLUMNS)}, reported_code, created_at,"
                " CASE WHEN orphaned_run_id IS"
                " NOT NULL THEN 'orphaned' WHEN superseded_run_id IS NOT NULL THEN 'superseded'"
                f" END AS withdrawn FROM codes{join}"
                " WHERE state = 'created' AND access_code_id IS NOT NULL"
            )
            names = [description[0] for description in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor]

        return await self.read(query)

    async def record_statuses(
        self, run_id: str, rows: Sequence[dict[str, Any]], checked_at: str
    ) -> None:
        """Record what Seam said of each code, as checked at ``checked_at``: ``rows`` carry
        ``STATUS_COLUMNS``, ``previous_status`` and ``reported_code``. A code whose status
        changed, or that needs attention, gets a ``status`` event. A PIN is never taken away (a
        list that lags, or a webhook that recorded it while the check ran, keeps it); a PIN an
        event reported beside it (``reported_code``) is kept until Seam's own answer gives a
        PIN (the row's ``reported_code`` is then None); ``updated_at``
        moves when the code's status, PIN or attention changed (``pins --changed-since`` reads
        it). Committed when it returns."""

        def change(db: Db) -> None:
            db.executemany(
                "UPDATE codes SET updated_at = CASE WHEN code_status IS NOT DISTINCT FROM ?"
                " AND code IS NOT DISTINCT FROM coalesce(?, code)"
                " AND needs_attention IS NOT DISTINCT FROM ? THEN updated_at ELSE ? END,"
                " code_status = ?, code = coalesce(?, code), code_errors = ?, code_warnings = ?,"
                " needs_attention = ?, status_checked_at = ?, reported_code = ?"
                " WHERE idempotency_tag = ?",
                [
                    (
                        row["code_status"],
                        row["code"],
                        row["needs_attention"],
                        checked_at,
                        row["code_status"],
                        row["code"],
                        row["code_errors"],
                        row["code_warnings"],
                        row["needs_attention"],
                        checked_at,
                        row.get("reported_code"),
                        row["idempotency_tag"],
                    )
                    for row in rows
                ],
            )
            db.executemany(
                "INSERT INTO events (run_id, at, kind, idempotency_tag, detail)"
                " VALUES (?, ?, 'status', ?, ?)",
                [
                    (
                        run_id,
                        checked_at,
                        row["idempotency_tag"],
                        json.dumps(
                            {
                                "from": row["previous_status"],
                                "to": row["code_status"],
                                "needs_attention": row["needs_attention"],
                            }
                        ),
                    )
                    for row in rows
                    if row["code_status"] != row["previous_status"] or row["needs_attention"]
                ],
            )

        await self.write(change)
