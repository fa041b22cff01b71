"""The runs: each command's run, and what an apply run leaves for the report (its per-door
summary, its budgets, and the codes it found orphaned)."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.ledger.commits import GroupCommits
from pipeline.ledger.dialects import Db
from pipeline.ledger.keys import fill_keys
from pipeline.ledger.states import MAY_EXIST_SQL, timestamp

# Runs begun in the same millisecond: SQLite's rowid is the order they were recorded in; the
# run id (its time and a random part) is PostgreSQL's tie-break.
NEWEST_FIRST = {
    "sqlite": "ORDER BY started_at DESC, rowid DESC",
    "postgresql": "ORDER BY started_at DESC, run_id DESC",
}
RUN_COLUMNS = ("run_id", "command", "started_at", "finished_at", "exit_code", "host", "pid")


@dataclass(frozen=True)
class ReportRows:
    """What the report reads from the ledger, as plain rows: each a dict by column name."""

    runs: list[dict[str, Any]]  # the latest runs, newest first: RUN_COLUMNS and ``counts`` (a dict)
    run_id: str | None  # the doors' apply run: the one asked for, else the latest with a summary
    run: dict[str, Any] | None  # that run's ``command`` and ``exit_code`` (None: no such run)
    has_summary: bool  # whether that run left its per-door summary
    outcomes: list[dict[str, Any]]  # ``run_doors`` rows of the latest runs and the doors' run
    budgets: list[dict[str, Any]]  # ``run_budgets`` rows of the doors' run
    attention: list[dict[str, Any]]  # ``codes`` rows: created codes that need attention
    orphaned: list[dict[str, Any]]  # ``codes`` rows: orphaned codes that may exist (ended too)
    # Per door with codes that exist or may exist: ``device_id, door_name, site_name``, the
    # created codes of each status asked for, of another status, the ``sending`` ones
    # (``outcome_unknown``), and the created ones that need attention (``needs_attention``).
    codes_per_door: list[dict[str, Any]]


@dataclass(frozen=True)
class Recorded:
    """What ``record_apply`` found: how many codes the run orphaned, and per door how many
    [doors.also] codes the config no longer asks for (their reservations still in the input),
    each said once: by the run that first finds it."""

    orphaned: int
    no_longer_asked: dict[str, int]


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
        current_tags: Iterable[tuple[str, str, str]] = (),
        stays: Iterable[tuple[str, str]] | None = None,
        unsure: Iterable[str] = (),
    ) -> Recorded:
        """Keep an apply run's summary for the report, and mark the orphaned codes.

        ``doors``: ``(device_id, door_name, site_name, matched, outcome, reason, rows)``;
        ``budgets``: ``(device_id, mode, budget, budget_source, reserve, used, after)``. A code
        that exists or may exist (``created``, ``sending``) and whose window hasn't ended
        becomes orphaned by this run, unless an earlier run already found it so, when its
        reservation is not among ``reservation_ids`` (the run's inputs), or, given ``stays``
        (``(reservation_id, device_id)`` of the run's rows on known doors), when its
        reservation has no row on its door any more (a stay moved to another door, a room of
        a group dropped), unless the reservation is among ``unsure`` (a row whose door isn't
        known: it may be this one). A code ``[doors.also]`` asked for (``also_for``) whose
        reservation is still in the input is not orphaned when no row asks for it any more (the
        config changed): it is noted once instead (``Recorded.no_longer_asked``). A code whose
        stay is back is no longer orphaned. Each of these is an event. ``current_tags``:
        ``(reservation_id, device_id, tag)`` of the run's rows that have a tag; a code of one
        of those reservations and doors whose tag isn't among them (the stay moved to another
        window) is superseded by this run, and no longer once its tag is back.
        """

        def change(db: Db) -> Recorded:
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
            _mark_superseded(db, run_id, current_tags)
            keys = fill_keys(db, "reservation_id", reservation_ids)
            absent, left_config = _absence(db, keys, stays, unsure)
            was_orphaned = f"orphaned_run_id IS NOT NULL AND NOT ({absent})"
            back = db.execute(f"SELECT idempotency_tag FROM codes WHERE {was_orphaned}").fetchall()
            db.execute(f"UPDATE codes SET orphaned_run_id = NULL WHERE {was_orphaned}")
            orphaned = _open_windows(db, f"orphaned_run_id IS NULL AND ({absent})", now)
            _mark(db, "orphaned_run_id", orphaned, run_id)
            db.execute(
                "UPDATE codes SET also_dropped_run_id = NULL WHERE also_dropped_run_id IS NOT"
                f" NULL AND NOT ({left_config})"
            )
            dropped = _open_windows(db, f"also_dropped_run_id IS NULL AND ({left_config})", now)
            _mark(db, "also_dropped_run_id", dropped, run_id)
            at = timestamp()
            for kind, found in (
                ("orphaned", orphaned),
                ("orphan_back", back),
                ("also_dropped", dropped),
            ):
                db.executemany(
                    "INSERT INTO events (run_id, at, kind, idempotency_tag) VALUES (?, ?, ?, ?)",
                    [(run_id, at, kind, tag) for (tag, *_) in found],
                )
            no_longer_asked: dict[str, int] = {}
            for _, door in dropped:
                no_longer_asked[door] = no_longer_asked.get(door, 0) + 1
            return Recorded(len(orphaned), no_longer_asked)

        return await self.write(change)

    async def report_rows(
        self, *, run_id: str | None, runs: int, code_statuses: Sequence[str]
    ) -> ReportRows:
        """What the report reads (see ``read_report_rows``), in the ledger's thread."""
        return await self.read(
            lambda db: read_report_rows(db, run_id=run_id, runs=runs, code_statuses=code_statuses)
        )


def read_report_rows(
    db: Db, *, run_id: str | None, runs: int, code_statuses: Sequence[str]
) -> ReportRows:
    """The report's rows: the latest ``runs`` runs, and the doors' apply run ``run_id`` (the
    newest apply run that got as far as its results when None); ``code_statuses``: the code
    statuses each door's created codes are counted by. Blocking: in the ledger's thread."""
    newest_first = NEWEST_FIRST[db.dialect]
    listed = [
        {**dict(zip(RUN_COLUMNS, fields, strict=True)), "counts": json.loads(counts or "{}")}
        for *fields, counts in db.execute(
            f"SELECT {', '.join(RUN_COLUMNS)}, counts FROM runs {newest_first} LIMIT ?",
            (runs,),
        )
    ]
    if run_id is None:
        row = db.execute(
            "SELECT run_id FROM runs WHERE run_id IN (SELECT run_id FROM run_doors)"
            f" {newest_first} LIMIT 1"
        ).fetchone()
        run_id = None if row is None else str(row[0])
    has_summary = bool(
        db.execute("SELECT 1 FROM run_doors WHERE run_id = ? LIMIT 1", (run_id,)).fetchone()
    )
    found = db.execute("SELECT command, exit_code FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return ReportRows(
        runs=listed,
        run_id=run_id,
        run=None if found is None else dict(zip(("command", "exit_code"), found, strict=True)),
        has_summary=has_summary,
        outcomes=_dicts(
            db,
            "SELECT * FROM run_doors"
            f" WHERE run_id IN (SELECT run_id FROM runs {newest_first} LIMIT ?) OR run_id = ?",
            (runs, run_id),
        ),
        budgets=_dicts(db, "SELECT * FROM run_budgets WHERE run_id = ?", (run_id,)),
        attention=_dicts(
            db, "SELECT * FROM codes WHERE state = 'created' AND needs_attention IS NOT NULL"
        ),
        orphaned=_dicts(
            db,
            f"SELECT * FROM codes WHERE orphaned_run_id IS NOT NULL AND {MAY_EXIST_SQL}",
        ),
        codes_per_door=_codes_per_door(db, code_statuses),
    )


def _codes_per_door(db: Db, statuses: Sequence[str]) -> list[dict[str, Any]]:
    created = "state = 'created'"
    listed = ", ".join("?" * len(statuses))
    counted = [
        *(f"{created} AND code_status = ?" for _ in statuses),
        f"{created} AND COALESCE(code_status, '') NOT IN ({listed})",
        "state = 'sending'",
        f"{created} AND needs_attention IS NOT NULL",
    ]
    counts = ", ".join(f"COUNT(*) FILTER (WHERE {condition})" for condition in counted)
    cursor = db.execute(
        f"SELECT device_id, MAX(door_name), MAX(site_name), {counts}"
        f" FROM codes WHERE {MAY_EXIST_SQL} GROUP BY device_id",
        (*statuses, *statuses),
    )
    names = (
        "device_id",
        "door_name",
        "site_name",
        *statuses,
        "other_status",
        "outcome_unknown",
        "needs_attention",
    )
    return [dict(zip(names, row, strict=True)) for row in cursor]


def _dicts(db: Db, query: str, parameters: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cursor = db.execute(query, parameters)
    names = [description[0] for description in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def _mark_superseded(db: Db, run_id: str, current_tags: Iterable[tuple[str, str, str]]) -> None:
    """Mark the codes a stay that moved to another window no longer uses: codes of a
    reservation and door that tonight's rows give other tags (inside the caller's
    transaction)."""
    db.execute(
        "CREATE TEMP TABLE IF NOT EXISTS tonight_codes (reservation_id TEXT NOT NULL,"
        " device_id TEXT NOT NULL, idempotency_tag TEXT PRIMARY KEY)"
    )
    db.execute("DELETE FROM tonight_codes")
    db.executemany(
        "INSERT INTO tonight_codes VALUES (?, ?, ?) ON CONFLICT DO NOTHING", list(current_tags)
    )
    db.execute(
        "UPDATE codes SET superseded_run_id = NULL WHERE superseded_run_id IS NOT NULL"
        " AND idempotency_tag IN (SELECT idempotency_tag FROM tonight_codes)"
    )
    db.execute(
        "UPDATE codes SET superseded_run_id = ? WHERE superseded_run_id IS NULL"
        f" AND {MAY_EXIST_SQL}"
        " AND EXISTS (SELECT 1 FROM tonight_codes t WHERE t.reservation_id ="
        " codes.reservation_id AND t.device_id = codes.device_id)"
        " AND idempotency_tag NOT IN (SELECT idempotency_tag FROM tonight_codes)",
        (run_id,),
    )


def _absence(
    db: Db, keys: str, stays: Iterable[tuple[str, str]] | None, unsure: Iterable[str]
) -> tuple[str, str]:
    """SQL conditions on ``codes``: its stay is absent from the run (the code is orphaned), and
    its reservation is present but [doors.also] no longer asks for it. ``keys`` holds the run's
    reservation ids; ``stays`` and ``unsure`` fill tables of their own (None: reservations
    only, as before doors were told apart)."""
    present = f"reservation_id IN (SELECT reservation_id FROM {keys})"
    gone = f"{MAY_EXIST_SQL} AND NOT {present}"
    if stays is None:
        return gone, "1 = 0"
    db.execute(
        "CREATE TEMP TABLE IF NOT EXISTS tonight_stays"
        " (reservation_id TEXT NOT NULL, device_id TEXT NOT NULL,"
        " PRIMARY KEY (reservation_id, device_id))"
    )
    db.execute("DELETE FROM tonight_stays")
    db.executemany("INSERT INTO tonight_stays VALUES (?, ?) ON CONFLICT DO NOTHING", list(stays))
    doubtful = fill_keys(db, "unsure_reservation_id", unsure)
    off_door = (
        f"{MAY_EXIST_SQL} AND {present}"
        f" AND reservation_id NOT IN (SELECT unsure_reservation_id FROM {doubtful})"
        " AND NOT EXISTS (SELECT 1 FROM tonight_stays s WHERE s.reservation_id ="
        " codes.reservation_id AND s.device_id = codes.device_id)"
    )
    return (
        f"({gone}) OR ({off_door} AND also_for IS NULL)",
        f"{off_door} AND also_for IS NOT NULL",
    )


def _open_windows(db: Db, where: str, now: dt.datetime) -> list[tuple[str, str]]:
    """``(tag, door)`` of the codes meeting ``where`` whose window hasn't ended."""
    # Offsets differ from code to code: compare the ends as instants, not as text.
    found = db.execute(
        f"SELECT idempotency_tag, COALESCE(door_name, device_id), ends_at FROM codes WHERE {where}"
    ).fetchall()
    return [(tag, door) for tag, door, ends_at in found if dt.datetime.fromisoformat(ends_at) > now]


def _mark(db: Db, column: str, codes: list[tuple[str, str]], run_id: str) -> None:
    tags = fill_keys(db, "idempotency_tag", (tag for tag, _ in codes))
    db.execute(
        f"UPDATE codes SET {column} = ?"
        f" WHERE idempotency_tag IN (SELECT idempotency_tag FROM {tags})",
        (run_id,),
    )
