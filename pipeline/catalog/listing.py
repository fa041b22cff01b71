"""The doors as an operator reads them (``oracode-provision doors``): every door with its site,
zone, device_id, offline capability and user levels, to build ``[doors.aliases]`` and the
``[user_levels.*]`` defaults from. As a table of one row per door and level, and as CSV or
JSON text."""

from __future__ import annotations

import json

import polars as pl

from pipeline.catalog.doors import DeviceCatalog
from pipeline.common.csvfiles import csv_text

DOOR_FORMATS = ("table", "csv", "json")
# The words for a user level's flags, in this order, as every format writes them.
FLAGS = {
    "is_24_hour": "24h",
    "is_biweekly": "biweekly",
    "is_one_shot": "one-shot",
    "is_master": "master",
}
DOOR_COLUMNS = ("site_name", "door_name", "device_id", "zone", "can_program_offline")
LEVEL_COLUMNS = ("user_level", "prefix", "check_in", "check_out", "flags")


def list_door_levels(catalog: DeviceCatalog) -> pl.DataFrame:
    """One row per door and user level (a door without levels: one row, its level columns
    empty): ``DOOR_COLUMNS`` then ``LEVEL_COLUMNS``, times as ``HH:MM`` on the lock's clock,
    ``flags`` as words (``24h biweekly``; empty for none). Sorted by site, door, device_id and
    prefix."""
    flags = pl.concat_str(
        [pl.when(column).then(pl.lit(word)) for column, word in FLAGS.items()],
        separator=" ",
        ignore_nulls=True,
    )
    levels = catalog.levels.select(
        "device_id",
        user_level="level_name",
        prefix="level_prefix",
        check_in=pl.col("level_check_in").dt.strftime("%H:%M"),
        check_out=pl.col("level_check_out").dt.strftime("%H:%M"),
        flags=pl.when(flags != "").then(flags),
    )
    return (
        catalog.doors.select(
            "site_name", "door_name", "device_id", "can_program_offline", zone="door_zone"
        )
        .join(levels, on="device_id", how="left")
        .sort("site_name", "door_name", "device_id", "prefix", nulls_last=True)
        .select(*DOOR_COLUMNS, *LEVEL_COLUMNS)
    )


def doors_csv(listing: pl.DataFrame) -> str:
    """``list_door_levels``'s table as CSV text, one line per door and level (for standard
    output; ``csvfiles.write_csv`` writes the file)."""
    return csv_text(listing)


def doors_json(listing: pl.DataFrame) -> str:
    """A JSON list of the doors, each with its ``user_levels`` (``flags`` as a list)."""
    doors = []
    for (device_id,), rows in listing.group_by("device_id", maintain_order=True):
        door = rows.row(0, named=True)
        doors.append(
            {column: door[column] for column in DOOR_COLUMNS}
            | {
                "device_id": device_id,
                "user_levels": [
                    level | {"flags": (level["flags"] or "").split()}
                    for level in rows.select(LEVEL_COLUMNS).to_dicts()
                    if level["user_level"] is not None
                ],
            }
        )
    return json.dumps(doors, indent=2, ensure_ascii=False) + "\n"
