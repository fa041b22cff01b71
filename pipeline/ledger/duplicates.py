"""Duplicates: one of our tags on more than one code of its door, as looks at doors found them.

Codes can't be deleted: a duplicate takes a place on its door for good, and both PINs open the
door until their end. Every look at a door (``apply``'s, ``status``'s) that finds a tag on more
than one code records it here once (``duplicates``: every code found carrying it, with their
PINs, and when and by which runs it was first and last seen); the results, ``status``,
``report``, ``pins`` and the nightly summary say it from here until the codes' window has ended.

Which doors are looked at again for one (``status``): those with a code whose create was sent
again after a look found nothing (``not_found_at``), since the earlier create may still be
carried out later than the settle time allowed for; and, once, every door holding an open code
that this version has never listed in full (``door_looks``, which apply's looks keep too: a
ledger an earlier version made, whose runs may have left duplicates unsaid;
``doors_never_looked_at``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from pipeline.ledger.commits import GroupCommits
from pipeline.ledger.dialects import Db
from pipeline.ledger.keys import fill_keys
from pipeline.ledger.states import MAY_EXIST_SQL, timestamp
from pipeline.seam.models import AccessCode

# What a report row of a duplicate says of it, besides the codes it names.
DUPLICATE_COLUMNS = (
    "idempotency_tag",
    "device_id",
    "reservation_id",
    "door_name",
    "site_name",
    "starts_at",
    "ends_at",
    "state",  # the ledger's code of the tag (None: it has none)
    "code_status",
    "access_code_id",
    "code",  # its PIN
    "name",
    "codes",  # JSON: every code carrying the tag, ``access_code_id``, ``code``, ``created_at``
    "first_seen_at",
    "last_seen_at",
    "first_run_id",
    "last_run_id",
)


class Duplicates(GroupCommits):
    """The ledger's ``duplicates`` table, and the doors to look at for one."""

    def note_duplicates(self, run_id: str, found: Mapping[str, Sequence[AccessCode]]) -> None:
        """Record each tag of ``found`` (tag → the codes on one door carrying it, two or more)
        as seen now by ``run_id``; codes seen before are kept. Queued for the next commit."""
        if not found:
            return
        found = {tag: list(codes) for tag, codes in found.items()}

        def change(db: Db) -> None:
            at = timestamp()
            for tag, codes in found.items():
                row = db.execute(
                    "SELECT codes FROM duplicates WHERE idempotency_tag = ?", (tag,)
                ).fetchone()
                known = {c["access_code_id"]: c for c in json.loads(row[0])} if row else {}
                for code in codes:
                    known[code.access_code_id] = {
                        "access_code_id": code.access_code_id,
                        "code": code.code or known.get(code.access_code_id, {}).get("code"),
                        "created_at": code.created_at,
                    }
                listed = sorted(
                    known.values(), key=lambda c: (c["created_at"] or "", c["access_code_id"])
                )
                first = codes[0]
                db.execute(
                    "INSERT INTO duplicates (idempotency_tag, device_id, name, ends_at, codes,"
                    " first_seen_at, last_seen_at, first_run_id, last_run_id)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_tag) DO UPDATE"
                    " SET codes = excluded.codes, last_seen_at = excluded.last_seen_at,"
                    " last_run_id = excluded.last_run_id",
                    (tag, first.device_id, first.name, first.ends_at, json.dumps(listed), at, at,
                     run_id, run_id),
                )  # fmt: skip

        self.defer(change)

    async def duplicate_rows(self, *, now: dt.datetime) -> list[dict[str, Any]]:
        """Every duplicate whose codes' window hasn't ended at ``now``: ``DUPLICATE_COLUMNS``,
        the stay's columns from the ledger's code of the tag (None when it has none), oldest
        window first."""

        def query(db: Db) -> list[dict[str, Any]]:
            cursor = db.execute(
                "SELECT d.idempotency_tag, d.device_id, c.reservation_id,"
                " c.door_name, c.site_name, c.starts_at, coalesce(c.ends_at, d.ends_at),"
                " c.state, c.code_status, c.access_code_id, c.code, d.name, d.codes,"
                " d.first_seen_at, d.last_seen_at,"
                " d.first_run_id, d.last_run_id"
                " FROM duplicates d LEFT JOIN codes c USING (idempotency_tag)"
            )
            return [dict(zip(DUPLICATE_COLUMNS, row, strict=True)) for row in cursor]

        rows = await self.read(query)
        current = [row for row in rows if _is_open(row["ends_at"], now)]
        return sorted(current, key=lambda row: (row["starts_at"] or "", row["idempotency_tag"]))

    async def doubtful_doors(self, *, now: dt.datetime) -> set[str]:
        """The doors holding a created code whose create was sent again after a look found
        nothing (``not_found_at``), while its window is open at ``now``: the earlier create
        may yet be carried out, so they are looked at for a duplicate."""

        def query(db: Db) -> list[tuple[str, str]]:
            return [
                (str(device_id), str(ends_at))
                for device_id, ends_at in db.execute(
                    "SELECT device_id, ends_at FROM codes"
                    " WHERE state = 'created' AND not_found_at IS NOT NULL"
                )
            ]

        return {
            device_id for device_id, ends_at in await self.read(query) if _is_open(ends_at, now)
        }

    def note_door_looks(self, device_ids: Collection[str], *, at: str | None = None) -> None:
        """Record that each of ``device_ids`` had its codes listed in full at ``at`` (an ISO
        instant; default: now). Queued for the next commit."""
        if not device_ids:
            return
        rows = [(device_id, at or timestamp()) for device_id in sorted(device_ids)]

        def change(db: Db) -> None:
            db.executemany(
                "INSERT INTO door_looks (device_id, looked_at) VALUES (?, ?)"
                " ON CONFLICT (device_id) DO UPDATE SET looked_at = excluded.looked_at",
                rows,
            )

        self.defer(change)

    async def doors_never_looked_at(self, *, now: dt.datetime) -> list[str]:
        """The doors holding a code that may exist (``created``, ``sending``) whose window is
        open at ``now`` and whose codes were never listed in full."""
        # Any window still open at ``now`` ends after now - 14 h as its own local time reads
        # (offsets are at most 14 h): the text comparison only narrows what is read.
        floor = (now - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")

        def query(db: Db) -> list[tuple[str, str]]:
            return [
                (str(device_id), str(ends_at))
                for device_id, ends_at in db.execute(
                    "SELECT c.device_id, c.ends_at FROM codes c"
                    " LEFT JOIN door_looks l USING (device_id)"
                    f" WHERE c.{MAY_EXIST_SQL} AND c.ends_at >= ? AND l.looked_at IS NULL",
                    (floor,),
                )
            ]

        rows = await self.read(query)
        return sorted({device_id for device_id, ends_at in rows if _is_open(ends_at, now)})

    async def door_places(self, device_ids: Collection[str]) -> dict[str, str]:
        """Each of ``device_ids`` as a person knows it: its door's name and site from the
        ledger's codes (``Room 101 at Main (device_id d-1)``), else its device_id."""
        if not device_ids:
            return {}

        def query(db: Db) -> dict[str, str]:
            keys = fill_keys(db, "device_id", device_ids)
            return {
                str(device_id): _place(door_name, site_name)
                for device_id, door_name, site_name in db.execute(
                    f"SELECT device_id, max(door_name), max(site_name) FROM codes JOIN {keys}"
                    " USING (device_id) GROUP BY device_id"
                )
            }

        named = await self.read(query)
        return {
            device_id: f"{named[device_id]} (device_id {device_id})"
            if named.get(device_id)
            else device_id
            for device_id in device_ids
        }


def _place(door_name: str | None, site_name: str | None) -> str:
    """A door's name and site as one text (empty when it has no name)."""
    if not door_name:
        return ""
    return f"{door_name} at {site_name}" if site_name else door_name


def _is_open(ends_at: str | None, now: dt.datetime) -> bool:
    """Whether a window ending at ``ends_at`` (an instant with its offset; None: unknown, so
    open) hasn't ended at ``now``."""
    if not ends_at:
        return True
    try:
        return dt.datetime.fromisoformat(ends_at.replace("Z", "+00:00")) > now
    except ValueError:
        return True
