"""Several doors per stay: ``[doors.also]``, the doors every stay at a door or site also needs a
code on (a building's entrance, a pool, a gym).

Each planned row on a door that ``[doors.also]`` names (by its name, an alias, its device_id or
its site) gives a row on each listed door: the same reservation, guest, dates and times,
planned on that door's own user levels by the same rules as any row (its zone, rounding,
budget and checks). A row given by dates only takes, as its times there, the window its own
door's code got (its user level's times), so that the other door's code covers the same stay
or is refused saying why; a ``user_level`` the row names is its own door's and isn't carried
over. One code per reservation and window on each listed door: rooms booked
together under one reservation share it (it is one party's, and codes can never be deleted).
A listed door the reservation has a row of its own on gets nothing more.

A listed name is looked up as a device_id, an alias or a door name; a name several sites use
means the stay's own site's door. One that matches no door gives its rows ``unknown_device``
with the closest names, so every stay still says which of its codes is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from pipeline.catalog.doors import DeviceCatalog
from pipeline.common.names import name_key
from pipeline.common.settings import Config
from pipeline.plan.stays import parse_stays

ALSO_FOR = "also_for"
# Between the door names of one stay while its rows are gathered (no door name holds it).
_SEP = "\x1f"


@dataclass(frozen=True)
class _Target:
    """A door a stay also needs: its device_id when the listed name finds one, and the name."""

    device_id: str | None
    written: str


def stay_door_targets(config: Config, catalog: DeviceCatalog) -> dict[str, list[_Target]]:
    """Per door (device_id), the doors its stays also need (``[doors.also]``), in the config's
    order, each once."""
    doors = catalog.doors.select("device_id", "door_key", "site_key").to_dicts()
    aliases = {name_key(alias): target for alias, target in config.doors.aliases.items()}
    targets: dict[str, list[_Target]] = {}
    for key, listed in config.doors.also.items():
        for door in _matching(key, doors, aliases, with_sites=True):
            found = targets.setdefault(door["device_id"], [])
            for name in listed:
                matches = _matching(name, doors, aliases, with_sites=False)
                if len(matches) > 1:
                    matches = [m for m in matches if m["site_key"] == door["site_key"]]
                target = _Target(matches[0]["device_id"] if len(matches) == 1 else None, name)
                if target not in found:
                    found.append(target)
    return targets


def _matching(
    name: str, doors: list[dict[str, str]], aliases: dict[str | None, str], *, with_sites: bool
) -> list[dict[str, str]]:
    """The doors ``name`` names: as a device_id, else through ``[doors.aliases]``, else as a
    door name (and, ``with_sites``, as a site name too)."""
    by_id = [door for door in doors if door["device_id"].lower() == name.strip().lower()]
    if by_id:
        return by_id
    if (alias := aliases.get(name_key(name))) is not None:
        return _matching(alias, doors, {}, with_sites=False)
    key = name_key(name)
    return [
        door
        for door in doors
        if door["door_key"] == key or (with_sites and door["site_key"] == key)
    ]


def plan_stay_doors(
    checked: pl.DataFrame,
    decided: pl.DataFrame,
    targets: dict[str, list[_Target]],
    decide: Callable[[pl.DataFrame], pl.DataFrame],
) -> pl.DataFrame:
    """The rows ``[doors.also]`` adds to the plan, decided by ``decide`` like any row.

    ``checked`` is the input as the row checks left it (before its doors were known),
    ``decided`` its plan (``row`` and the plan's columns). Returns plan rows with ``row`` (the
    first input row they came from), ``_part`` (their order after it) and ``ALSO_FOR`` (the
    doors of the stay they serve).
    """
    pairs = [
        (device_id, index, target.device_id, target.written)
        for device_id, listed in targets.items()
        for index, target in enumerate(listed, start=1)
    ]
    wanted = pl.DataFrame(
        pairs,
        schema={
            "device_id": pl.String,
            "_part": pl.Int64,
            "_target_id": pl.String,
            "_target": pl.String,
        },
        orient="row",
    )
    sources = decided.filter(pl.col("outcome") == "planned").select(
        "row",
        "reservation_id",
        "device_id",
        _source_door="door_name",
        _starts_at="starts_at",
        _ends_at="ends_at",
    )
    own = decided.select("reservation_id", _target_id="device_id").drop_nulls().unique()
    asked = (
        sources.join(wanted, on="device_id")
        .filter(pl.col("_target_id").is_null() | (pl.col("_target_id") != pl.col("device_id")))
        .join(own, on=["reservation_id", "_target_id"], how="anti")
        .drop("reservation_id", "device_id")
    )
    if asked.is_empty():
        return decided.clear().with_columns(_part=pl.lit(0, pl.Int64))
    stays = checked.join(asked, on="row").with_columns(
        device_id="_target_id",
        door_name=pl.when(pl.col("_target_id").is_null()).then("_target"),
        site_name=pl.lit(None, pl.String),
        user_level=pl.lit(None, pl.String),
    )
    # A stay given by dates only is, on the other doors, the window its own door's code has.
    dated = pl.col("check_in_time").is_null()
    stays = stays.with_columns(
        check_in=pl.when(dated).then("_starts_at").otherwise("check_in"),
        check_out=pl.when(dated).then("_ends_at").otherwise("check_out"),
    )
    stays = parse_stays(parse_stays(stays, "check_in"), "check_out")
    # One row per reservation, door and booking; its plan then settles one per window.
    same_booking = ["reservation_id", "_target", "check_in", "check_out"]
    stays = stays.with_columns(
        pl.col("_source_door").unique(maintain_order=True).str.join(_SEP).over(same_booking),
        _first=pl.col("row").min().over(same_booking),
    ).filter(pl.col("row") == pl.col("_first"))
    stays = stays.with_columns(
        _source_row="row",
        row=(pl.int_range(pl.len()) + checked.height).cast(checked.schema["row"]),
    )
    extra = stays.select("row", "_source_row", "_part", "_target", "_source_door")
    planned = decide(
        stays.drop(
            "_target_id", "_target", "_part", "_source_door", "_first", "_starts_at", "_ends_at"
        )
    )
    planned = planned.join(extra, on="row", maintain_order="left")
    return _one_per_window(planned)


def _one_per_window(planned: pl.DataFrame) -> pl.DataFrame:
    """One row per reservation and code on each listed door (per reason for rows that get
    none), saying which doors of the stay it serves."""
    key = pl.coalesce(
        "idempotency_tag", pl.concat_str("reservation_id", "_target", "reason", separator="\x1f")
    )
    served = pl.col("_source_door").str.split(_SEP).explode().unique(maintain_order=True)
    rows = planned.sort("_source_row", "_part").group_by(key.alias("_key"), maintain_order=True)
    kept = rows.agg(pl.all().first(), served.str.join(", ").alias(ALSO_FOR))
    stay = pl.format("the stay on {} ([doors.also])", ALSO_FOR)
    planned_note = pl.concat_str(
        pl.format("also for {}", stay), "message", separator="; ", ignore_nulls=True
    )
    return kept.with_columns(
        row="_source_row",
        message=pl.when(pl.col("outcome") == "planned")
        .then(planned_note)
        .otherwise(pl.format("for {}: {}", stay, "message")),
    ).drop("_key", "_source_row", "_target", "_source_door")
