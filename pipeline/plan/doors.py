"""Which door each row is for: its device_id, or its door and site names (and ``[doors.aliases]``)
matched as names are, each row without one door rejected with the closest names."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from pipeline.catalog.checks import SEE_DOORS
from pipeline.catalog.doors import DeviceCatalog, known_zones
from pipeline.common.names import did_you_mean, name_key, name_key_expr
from pipeline.common.reasons import (
    AMBIGUOUS_DEVICE,
    OFFLINE_CODES_NOT_SUPPORTED,
    UNKNOWN_DEVICE,
    UNKNOWN_TIME_ZONE,
    is_open,
    reject,
    text,
)
from pipeline.common.settings import Config


def resolve_doors(frame: pl.DataFrame, catalog: DeviceCatalog, config: Config) -> pl.DataFrame:
    """Each open row's door: by device_id, else by door name (an alias from ``[doors.aliases]``
    first) within the row's site when it names one."""
    doors = catalog.doors
    aliases = _alias_targets(config.doors.aliases, doors)
    by_id = (
        frame.filter(is_open() & pl.col("device_id").is_not_null())
        .select("row", "device_id")
        .join(doors.select("device_id"), on="device_id", how="semi")
        .select("row", pl.col("device_id").alias("_door"), pl.lit(1, pl.UInt32).alias("_matches"))
    )
    wanted = frame.filter(is_open() & pl.col("device_id").is_null()).select(
        "row",
        name_key_expr(pl.col("door_name")).alias("door_key"),
        name_key_expr(pl.col("site_name")).alias("_want_site"),
    )
    candidates = doors.select("device_id", "door_key", "site_key", "site_name")
    if aliases.to_id or aliases.to_name:
        wanted = wanted.with_columns(
            _alias_id=pl.col("door_key").replace_strict(
                aliases.to_id, default=None, return_dtype=pl.String
            ),
            door_key=pl.col("door_key").replace(aliases.to_name),
        )
        # An alias to a device_id names that door, whatever the door's own name is.
        matched = pl.concat(
            [
                wanted.filter(pl.col("_alias_id").is_null()).join(candidates, on="door_key"),
                wanted.filter(pl.col("_alias_id").is_not_null())
                .drop("door_key")
                .join(candidates, left_on="_alias_id", right_on="device_id")
                .with_columns(device_id="_alias_id"),
            ],
            how="diagonal",
        )
    else:
        matched = wanted.join(candidates, on="door_key")
    by_name = (
        matched.filter(
            pl.col("_want_site").is_null() | (pl.col("_want_site") == pl.col("site_key"))
        )
        .sort("row", "site_name", "device_id")
        .group_by("row", maintain_order=True)
        .agg(
            _door=pl.col("device_id").first(),
            _matches=pl.len(),
            _sites=pl.col("site_name").fill_null("(no site)").str.join(", "),
        )
    )
    resolved = pl.concat([by_id, by_name], how="diagonal")
    frame = frame.join(resolved, on="row", how="left")
    frame = reject(
        frame,
        pl.col("_matches").is_null() & pl.col("device_id").is_not_null(),
        UNKNOWN_DEVICE,
        pl.format(f"no dormakaba Oracode door has device_id {{}} {SEE_DOORS}", pl.col("device_id")),
    )
    unknown = frame.filter(is_open() & pl.col("_matches").is_null())
    frame = reject(
        frame,
        pl.col("_matches").is_null(),
        UNKNOWN_DEVICE,
        pl.format(
            "no dormakaba Oracode door is named {}{}{}{} {}",
            pl.col("door_name"),
            pl.format(" ([doors.aliases]: {})", _alias_of("door_name", aliases)).fill_null(""),
            pl.format(" at site {}", pl.col("site_name")).fill_null(""),
            _door_suggestions(unknown, doors),
            text(f"{SEE_DOORS[:-1]}, or map the name in [doors.aliases])"),
        ),
    )
    frame = reject(
        frame,
        pl.col("_matches") > 1,
        AMBIGUOUS_DEVICE,
        pl.format(
            "{} doors are named {} (sites: {}); add site_name or use device_id",
            pl.col("_matches"),
            pl.col("door_name"),
            pl.col("_sites"),
        ),
    )
    door_columns = doors.select(
        pl.col("device_id").alias("_door"),
        pl.col("door_name").alias("_door_name"),
        pl.col("site_name").alias("_site_name"),
        "can_program_offline",
        "door_zone",
    )
    frame = frame.join(door_columns, on="_door", how="left").with_columns(
        device_id=pl.when(is_open()).then(pl.col("_door")).otherwise(pl.col("device_id")),
        door_name=pl.when(is_open()).then(pl.col("_door_name")).otherwise(pl.col("door_name")),
        site_name=pl.when(is_open()).then(pl.col("_site_name")).otherwise(pl.col("site_name")),
    )
    frame = reject(
        frame,
        ~pl.col("can_program_offline"),
        OFFLINE_CODES_NOT_SUPPORTED,
        pl.format("door {} ({}) can't program offline access codes", "door_name", "device_id"),
    )
    frame = reject(
        frame,
        ~pl.col("door_zone").is_in(known_zones(frame, "door_zone")).fill_null(False),
        UNKNOWN_TIME_ZONE,
        pl.format(
            "door {} has no usable time zone ({})",
            "device_id",
            pl.col("door_zone").fill_null("none given"),
        ),
    )
    return frame.drop("_door", "_matches", "_sites", "_door_name", "_site_name")


@dataclass(frozen=True)
class _Aliases:
    """``[doors.aliases]`` by the key of the name in the export: to a door's device_id, to a
    door's name key, and to the target as written (for messages)."""

    to_id: dict[str, str]
    to_name: dict[str, str]
    written: dict[str, str]


def _alias_targets(aliases: dict[str, str], doors: pl.DataFrame) -> _Aliases:
    ids = {device_id.lower(): device_id for device_id in doors["device_id"]}
    to_id: dict[str, str] = {}
    to_name: dict[str, str] = {}
    written: dict[str, str] = {}
    for alias, target in aliases.items():
        key, target_key = name_key(alias), name_key(target)
        if key is None or target_key is None:
            continue
        written[key] = target
        if (device_id := ids.get(target.strip().lower())) is not None:
            to_id[key] = device_id
        else:
            to_name[key] = target_key
    return _Aliases(to_id, to_name, written)


def _alias_of(column: str, aliases: _Aliases) -> pl.Expr:
    """The alias target of the name in ``column`` (null when it has none)."""
    return name_key_expr(pl.col(column)).replace_strict(
        aliases.written, default=None, return_dtype=pl.String
    )


def _door_suggestions(unknown: pl.DataFrame, doors: pl.DataFrame) -> pl.Expr:
    """``; did you mean ...?`` for rows whose door name matched nothing: the closest door
    names of the row's site (of any site when it names none), or the closest sites when its
    site has no doors; worked out once per distinct name and site, not per row."""
    pairs = unknown.select(
        _pair_key(), "door_name", "site_name", site_key=name_key_expr(pl.col("site_name"))
    ).unique("_pair")
    names_by_site = dict(
        doors.group_by("site_key").agg(pl.col("door_name")).drop_nulls("site_key").iter_rows()
    )
    every_name = doors["door_name"].to_list()
    sites = doors["site_name"].unique().to_list()
    hints: dict[str, str] = {}
    for pair, name, site, site_key in pairs.iter_rows():
        if site_key is not None and site_key not in names_by_site:
            hints[pair] = did_you_mean(site, sites, "site")
        elif name is not None:
            hints[pair] = did_you_mean(name, names_by_site.get(site_key, every_name))
    return _pair_key().replace_strict(hints, default="", return_dtype=pl.String)


def _pair_key() -> pl.Expr:
    """A row's door name and site name as one comparable key."""
    return pl.concat_str(
        name_key_expr(pl.col("door_name")).fill_null(""),
        name_key_expr(pl.col("site_name")).fill_null(""),
        separator="\x1f",
    ).alias("_pair")
