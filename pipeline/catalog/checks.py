"""The config's door, site and level names checked against the catalog, and the closest names
to suggest when one doesn't match (a row's door or level, a config key).

A name that matches nothing would otherwise be found row by row (``unknown_device``,
``unknown_user_level``) or not at all (a default that never applies), so ``check_config``
says it once, at the start of ``plan`` and ``apply``, as one warning line per setting.
"""

from __future__ import annotations

import logging

import polars as pl

from pipeline.catalog.doors import DeviceCatalog
from pipeline.common.names import did_you_mean, name_key
from pipeline.common.settings import Config

log = logging.getLogger(__name__)

# Where an operator finds every door, site and user level, for messages.
DOORS_COMMAND = "oracode-provision doors"
SEE_DOORS = f"(see {DOORS_COMMAND})"
# Doors named in one line at most; the rest are counted.
LISTED_DOORS = 5


def check_config(config: Config, catalog: DeviceCatalog) -> list[str]:
    """One line per ``[user_levels.*]``, ``[doors.aliases]`` or ``[doors.also]`` entry that
    names a door, site or default user level the catalog doesn't have, each with the closest
    names; logged as warnings (once, before any row is planned) and returned."""
    problems = [
        *_alias_problems(config.doors.aliases, catalog.doors),
        *_default_problems(config, catalog),
        *_also_problems(config, catalog.doors),
    ]
    for problem in problems:
        log.warning(problem)
    return problems


def _door_ids(doors: pl.DataFrame) -> dict[str, str]:
    """device_id as a config may write it (any case, spaces around) -> the device_id."""
    return {device_id.lower(): device_id for device_id in doors["device_id"]}


def _alias_problems(aliases: dict[str, str], doors: pl.DataFrame) -> list[str]:
    ids = _door_ids(doors)
    door_keys = set(doors["door_key"].drop_nulls())
    unknown = [
        f'[doors.aliases] "{alias}" = "{target}" matches no door name or device_id'
        f"{did_you_mean(target, doors['door_name'])} {SEE_DOORS}"
        for alias, target in aliases.items()
        if target.strip().lower() not in ids and name_key(target) not in door_keys
    ]
    # An alias that is itself a door's name sends that door's rows to another door: a code on
    # the wrong room unless the operator meant it.
    shadowing = [
        f'[doors.aliases] "{alias}" is itself the name of a door: rows naming it go to'
        f' "{target}", not to that door (remove the alias if the export means the door)'
        for alias, target in aliases.items()
        if name_key(alias) in door_keys and name_key(alias) != name_key(target)
    ]
    return unknown + shadowing


def _also_problems(config: Config, doors: pl.DataFrame) -> list[str]:
    """``[doors.also]`` keys that name no door, alias or site, and listed doors that name no
    door or alias (their stays' rows there would be ``unknown_device``)."""
    ids = _door_ids(doors)
    door_keys = set(doors["door_key"].drop_nulls())
    aliases = {name_key(alias) for alias in config.doors.aliases}

    def is_door(name: str) -> bool:
        key = name_key(name)
        return name.strip().lower() in ids or key in door_keys or key in aliases

    site_keys = set(doors["site_key"].drop_nulls())
    names = [*doors["door_name"], *doors["site_name"].unique()]
    problems = [
        f'[doors.also] "{key}" matches no door, alias, device_id or site'
        f"{did_you_mean(key, names)} {SEE_DOORS}"
        for key in config.doors.also
        if not is_door(key) and name_key(key) not in site_keys
    ]
    for key, listed in config.doors.also.items():
        problems += [
            f'[doors.also] "{key}" lists "{name}", which matches no door name, alias or'
            f" device_id{did_you_mean(name, doors['door_name'])} {SEE_DOORS}"
            for name in listed
            if not is_door(name)
        ]
    return problems


def _default_problems(config: Config, catalog: DeviceCatalog) -> list[str]:
    doors = catalog.doors
    ids = _door_ids(doors)
    problems = []
    for door, level in config.user_levels.doors.items():
        device_id = ids.get(door.strip().lower())
        if device_id is not None:
            matched = doors.filter(pl.col("device_id") == device_id)
        else:
            matched = doors.filter(pl.col("door_key") == name_key(door))
        where = f'[user_levels.doors] "{door}"'
        if matched.is_empty():
            problems.append(
                f"{where} matches no door name or device_id"
                f"{did_you_mean(door, doors['door_name'])} {SEE_DOORS}"
            )
        elif (
            missing := _level_missing(where, level, matched, catalog.levels, with_sites=True)
        ) is not None:
            problems.append(missing)
    # A door's own default wins over its site's: the site's never applies to it.
    own = {name_key(door) for door in config.user_levels.doors} | {
        door.strip().lower() for door in config.user_levels.doors
    }
    for site, level in config.user_levels.sites.items():
        matched = doors.filter(pl.col("site_key") == name_key(site))
        applies = matched.filter(
            ~pl.col("door_key").is_in(own) & ~pl.col("device_id").str.to_lowercase().is_in(own)
        )
        where = f'[user_levels.sites] "{site}"'
        if matched.is_empty():
            problems.append(
                f"{where} matches no site{did_you_mean(site, doors['site_name'])} {SEE_DOORS}"
            )
        elif not applies.is_empty() and (
            missing := _level_missing(where, level, applies, catalog.levels, with_sites=False)
        ):
            problems.append(missing)
    return problems


def _level_missing(
    where: str, level: str, doors: pl.DataFrame, levels: pl.DataFrame, *, with_sites: bool
) -> str | None:
    """The line for a default ``level`` that some of ``doors`` lack (None: all have it); the
    suggestions are the lacking doors' own levels."""
    having = set(
        levels.filter(pl.col("level_key") == name_key(level)).join(
            doors.select("device_id"), on="device_id", how="semi"
        )["device_id"]
    )
    lacking = doors.filter(~pl.col("device_id").is_in(having)).sort("site_name", "door_name")
    if lacking.is_empty():
        return None
    names = [
        f"{site} / {door}" if site and with_sites else str(door)
        for door, site in lacking.select("door_name", "site_name").iter_rows()
    ]
    more = f" and {len(names) - LISTED_DOORS} more" if len(names) > LISTED_DOORS else ""
    named = ", ".join(names[:LISTED_DOORS]) + more
    if doors.height == 1:
        of = f"door {named}"
    else:
        of = f"{lacking.height} of its {doors.height} doors ({named})"
    lacking_levels = levels.join(lacking.select("device_id"), on="device_id", how="semi")
    return (
        f'{where} = "{level}" is not a user level of {of}'
        f"{did_you_mean(level, lacking_levels['level_name'])} {SEE_DOORS}"
    )
