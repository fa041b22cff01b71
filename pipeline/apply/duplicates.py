"""Duplicates found and said: one of our tags on more than one code of its door.

Apply makes each code once, but a create carried out later than its settle time allowed for,
or two runs that didn't exclude each other, can leave a tag on two codes. Codes can't be
deleted: each takes a place on the door for good, and both PINs open the door until their
end. Every look at a door finds them (``duplicated_tags``) and the ledger records them
(``Ledger.note_duplicates``); this module says them the same way everywhere an operator looks:
the results' ``duplicate_on_door`` message, one line on stderr per run, the report's
``duplicates`` section (with the fix), ``status``, ``pins`` (both PINs) and the nightly summary.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from pipeline.catalog.looking import TAG_IN_NAME, look_at_doors
from pipeline.common.errors import SeamError
from pipeline.common.reasons import DUPLICATE_ON_DOOR
from pipeline.ledger.store import Ledger
from pipeline.seam.client import SeamClient
from pipeline.seam.models import AccessCode

log = logging.getLogger(__name__)
# What a person can do: nothing undoes a code, so the guest is told which PIN is theirs.
FIX = (
    "codes can't be deleted: give the guest the PIN the pins file lists as theirs, know that"
    " the other opens the door too until the window ends, and count both on the door's budget"
)
# Duplicates named in full in a line before "and N more".
NAMED = 5
# The report's (and status's) table of duplicates: one row per duplicated tag, never a PIN.
DUPLICATE_SCHEMA = {
    "reservation_id": pl.String,
    "device_id": pl.String,
    "door_name": pl.String,
    "site_name": pl.String,
    "starts_at": pl.String,
    "ends_at": pl.String,
    "state": pl.String,
    "code_status": pl.String,
    "idempotency_tag": pl.String,
    "reason": pl.String,
    "codes": pl.Int64,
    "access_code_ids": pl.String,  # the ledger's first
    "problem": pl.String,
    "fix": pl.String,
    "first_seen_at": pl.String,
    "last_seen_at": pl.String,
}


def duplicated_tags(codes: Sequence[AccessCode], device_id: str) -> dict[str, list[AccessCode]]:
    """Each tag that more than one of ``codes`` on door ``device_id`` carries in its name, with
    those codes (earliest made first). A code is counted once by its ``access_code_id``: a list
    whose pages shifted while they were read may hold one code twice."""
    carriers: dict[str, dict[str, AccessCode]] = {}
    for code in codes:
        if code.device_id == device_id:
            for tag in set(TAG_IN_NAME.findall(code.name or "")):
                carriers.setdefault(tag, {}).setdefault(code.access_code_id, code)
    return {
        tag: sorted(found.values(), key=lambda code: (code.created_at or "", code.access_code_id))
        for tag, found in carriers.items()
        if len(found) > 1
    }


def describe(row: Mapping[str, Any], *, with_pins: bool = False) -> str:
    """A duplicate (a ledger ``duplicate_rows`` row) in words: how many codes carry the tag on
    which door, their ids (the ledger's first; ``with_pins``: each with its PIN, for the pins
    file only), and until when both PINs open the door."""
    codes = json.loads(row["codes"])
    ours = row.get("access_code_id")
    codes.sort(key=lambda code: code["access_code_id"] != ours)
    named = []
    for code in codes:
        text = str(code["access_code_id"])
        if code["access_code_id"] == ours:
            text += " (the ledger's)"
        if with_pins:
            pin = code.get("code") or (row.get("code") if code["access_code_id"] == ours else None)
            text += f" PIN {pin or 'not known yet'}"
        named.append(text)
    door = row.get("door_name") or row["device_id"]
    until = row.get("ends_at") or "its window ends"
    return (
        f"{len(codes)} codes on door {door} carry tag {row['idempotency_tag']}"
        f" ({', '.join(named)}): each PIN opens the door until {until}"
    )


def say_duplicates(rows: Sequence[Mapping[str, Any]], *, command: str) -> None:
    """One line on stderr for the duplicates ``command`` found or knows of (none: nothing)."""
    if not rows:
        return
    shown = "; ".join(describe(row) for row in rows[:NAMED])
    more = f"; and {len(rows) - NAMED} more" if len(rows) > NAMED else ""
    log.error(
        f"{len(rows)} of our tags {'is' if len(rows) == 1 else 'are'} on more than one code of"
        f" its door: {shown}{more} (see the report's duplicates; {FIX})",
        extra={"command": command},
    )


def duplicate_table(rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """The duplicates (ledger ``duplicate_rows``) as a table (``DUPLICATE_SCHEMA``): the stay,
    the door, reason ``duplicate_on_door``, the codes, what is wrong and the fix."""
    table = []
    for row in rows:
        codes = json.loads(row["codes"])
        ids = sorted(code["access_code_id"] for code in codes)
        ids.sort(key=lambda code_id: code_id != row.get("access_code_id"))
        table.append(
            {
                **{name: row.get(name) for name in DUPLICATE_SCHEMA if name in row},
                "reason": DUPLICATE_ON_DOOR,
                "codes": len(codes),
                "access_code_ids": ", ".join(ids),
                "problem": describe(row),
                "fix": FIX,
            }
        )
    return pl.DataFrame(table, schema=DUPLICATE_SCHEMA)


async def look_for_duplicates(
    client: SeamClient, ledger: Ledger, run_id: str, *, now: dt.datetime
) -> list[dict[str, Any]]:
    """``status``'s look: each door where a late create may have left a duplicate
    (``Ledger.doubtful_doors``) and each door holding an open code that was never listed in full
    (a ledger an earlier version made: ``Ledger.doors_never_looked_at``) are listed once, door
    by door; what each shows is recorded, and every duplicate the ledger knows whose window is
    open is returned (``duplicate_rows``). No other door is listed: our own runs can't make a
    duplicate elsewhere (they hold the workspace's lock), and a door's next apply look finds
    one that came from outside. A door that can't be listed is left for the next
    look, the others looked at all the same; one warning names those doors (and their sites)
    and why."""
    never = await ledger.doors_never_looked_at(now=now)
    doors = sorted(await ledger.doubtful_doors(now=now) | set(never))
    if doors:
        looked = await look_at_doors(client, doors, each=True)
        ledger.note_door_looks(looked.codes.keys(), at=now.isoformat(timespec="milliseconds"))
        for device_id, codes in looked.codes.items():
            ledger.note_duplicates(run_id, duplicated_tags(codes, device_id))
        if looked.failed:
            await _say_not_looked_at(ledger, looked.failed)
    return await ledger.duplicate_rows(now=now)


async def _say_not_looked_at(ledger: Ledger, failed: Mapping[str, SeamError]) -> None:
    """One warning naming the doors that couldn't be looked at for duplicates, and why."""
    places = await ledger.door_places(failed.keys())
    named = [f"{places[device_id]}: {exc.one_line()}" for device_id, exc in sorted(failed.items())]
    more = f"; and {len(named) - NAMED} more" if len(named) > NAMED else ""
    noun = "door" if len(named) == 1 else "doors"
    log.warning(
        f"could not look at {len(named)} {noun} for duplicates, left for the next look:"
        f" {'; '.join(named[:NAMED])}{more}",
        extra={"doors": len(named)},
    )
