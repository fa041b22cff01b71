"""The runs: each command's run, and what an apply run leaves for the report (its per-door
summary, its budgets, and the codes it found orphaned)."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from pipeline.ledger.codes import fill_keys
from pipeline.ledger.commits import GroupCommits
from pipeline.ledger.schema import timestamp


class Runs(GroupCommits):
    """The ledger's ``runs``, ``run_doors`` and ``run_budgets`` tables."""

    async def start_run(self, command: str, inputs: Sequence[str]) -> str:
        """Record a new run; returns its id."""
        run_id = f"run-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        await self.write(
            lambda db: db.execute(
                "INSERT INTO runs (run_id, command, inputs, pid, host, started_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    command,
                    json.dumps(list(inputs)),
                    os.getpid(),
                    socket.gethostname(),
                    timestamp(),
                ),
            )
        )
        return run_id

    async def finish_run(self, run_id: str, exit_code: int, counts: dict[str, int]) -> None:
        await self.write(
            lambda db: db.execute(
                "UPDATE runs SET finished_at = ?, exit_code = ?, counts = ? WHERE run_id = ?",
                (timestamp(), exit_code, json.dumps(counts), run_id),
            )
        )

    async def record_apply(
        self,
        run_id: str,
        doors: Sequence[Sequence[Any]],
        budgets: Sequence[Sequence[Any]],
        reservation_ids: Iterable[str],
        *,
        now: dt.datetime,
    ) -> int:
        """Keep an apply run's summary for the report, and mark the orphaned codes.

        ``doors``: ``(device_id, door_name, site_name, matched, outcome, reason, rows)``;
        ``budgets``: ``(device_id, mode, budget, budget_source, reserve, used, after)``. A code
        that exists or may exist (``created``, ``sending``), whose window hasn't ended and whose
        reservation is not among ``reservation_ids`` (the run's inputs) becomes orphaned by
        this run, unless an earlier run already found it so; one whose reservation is back is
        no longer orphaned. Both are events. Returns how many codes this run found orphaned.
        """

        def change(db: sqlite3.Connection) -> int:
            db.executemany(
                "INSERT INTO run_doors (run_id, device_id, door_name, site_name, matched,"
                " outcome, reason, rows) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, *row) for row in doors],
            )
            db.executemany(
                "INSERT INTO run_budgets (run_id, device_id, mode, budget, budget_source,"
                " reserve, used, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, *row) for row in budgets],
            )
            keys = fill_keys(db, "reservation_id", reservation_ids)
            present = f"reservation_id IN (SELECT reservation_id FROM {keys})"
            was_orphaned = f"orphaned_run_id IS NOT NULL AND {present}"
            back = db.execute(f"SELECT idempotency_tag FROM codes WHERE {was_orphaned}").fetchall()
            db.execute(f"UPDATE codes SET orphaned_run_id = NULL WHERE {was_orphaned}")
            # Offsets differ from code to code: compare the ends as instants, not as text.
            absent = db.execute(
                f"SELECT idempotency_tag, ends_at FROM codes WHERE orphaned_run_id IS NULL"
                f" AND state IN ('created', 'sending') AND NOT {present}"
            ).fetchall()
            orphaned = [
                (tag,) for tag, ends_at in absent if dt.datetime.fromisoformat(ends_at) > now
            ]
            tags = fill_keys(db, "idempotency_tag", (tag for (tag,) in orphaned))
            db.execute(
                f"UPDATE codes SET orphaned_run_id = ?"
                f" WHERE idempotency_tag IN (SELECT idempotency_tag FROM {tags})",
                (run_id,),
            )
            at = timestamp()
            for kind, found in (("orphaned", orphaned), ("orphan_back", back)):
                db.executemany(
                    "INSERT INTO events (run_id, at, kind, idempotency_tag) VALUES (?, ?, ?, ?)",
                    [(run_id, at, kind, tag) for (tag,) in found],
                )
            return len(orphaned)

        return await self.write(change)
