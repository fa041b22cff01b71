"""The planning decisions made row by row in plain Python (zoneinfo, dicts, loops).

Two uses: the benchmark times it against the vectorised planner, and the property tests use it
as an independent oracle (it shares no code with ``pipeline.plan.planner`` beyond the catalog
tables and the reason codes). A planned row gets every value the planner writes for it (door,
level, both window ends in lock-local and UTC form, rounding, tag and name); a rejected row
gets its reason code but not the planner's message text. Rounding to a user level is done by
brute force: every eligible level of the door, each end's nearest instant among the day
before, of and after, the distances in real time (zoneinfo, fold 0).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

import xxhash

from pipeline.catalog.doors import DeviceCatalog
from pipeline.common.columns import CANONICAL_COLUMNS, CONTENT_COLUMNS
from pipeline.common.settings import Config

_STAY = re.compile(
    r"^(\d{4}-\d{2}-\d{2})"
    r"(?:[Tt ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?"
    r"\s*([Zz]|[+-]\d{2}(?::?\d{2})?)?$"
)


def _key(text: str | None) -> str | None:
    return " ".join(text.split()).lower() if text else None


def _parse(text: str | None) -> tuple[dt.date, dt.time | None, int | None] | None:
    if text is None:
        return None
    match = _STAY.match(text)
    if not match:
        return None
    try:
        day = dt.date.fromisoformat(match[1])
        clock = dt.time(int(match[2]), int(match[3]), int(match[4] or 0)) if match[2] else None
    except ValueError:
        return None
    if not 2000 <= day.year <= 2099:
        return None
    offset = None
    if match[5]:
        if clock is None:
            return None
        if match[5] in "Zz":
            offset = 0
        else:
            digits = re.sub(r"[^0-9]", "", match[5])
            hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
            if minutes >= 60 or hours * 60 + minutes > 14 * 60:
                return None
            offset = (-1 if match[5].startswith("-") else 1) * (hours * 60 + minutes)
    return day, clock, offset


def _localize(naive: dt.datetime, zone: ZoneInfo) -> dt.datetime | None:
    aware = naive.replace(tzinfo=zone, fold=0)  # fold=0: the earlier instant in a DST fold
    back = aware.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None)
    return aware if back == naive else None  # a wall time in a DST gap doesn't round-trip


def plan_rowwise(
    rows: list[dict[str, Any]], catalog: DeviceCatalog, config: Config, now: dt.datetime
) -> list[dict[str, Any]]:
    """Per input row: outcome and reason (None when planned); for a planned row also the door,
    user level, window (lock-local and UTC), max_time_rounding, tag and code name."""
    doors = {door["device_id"]: door for door in catalog.doors.to_dicts()}
    by_name: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for door in doors.values():
        by_name[door["door_key"]].append(door)
    levels: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for level in catalog.levels.sort("level_prefix").to_dicts():
        levels[level["device_id"]].append(level)
    zones: dict[str, ZoneInfo] = {}
    door_defaults = {_key(k): v for k, v in config.user_levels.doors.items()}
    site_defaults = {_key(k): v for k, v in config.user_levels.sites.items()}

    # One reservation on one door as the row writes it: its copies are duplicates.
    content: dict[tuple[str, Any], set[tuple[Any, ...]]] = defaultdict(set)
    first_row: dict[tuple[str, Any], int] = {}
    for index, row in enumerate(rows):
        rid = row["reservation_id"]
        if rid is not None:
            stay = (rid, _door_as_written(row))
            content[stay].add(tuple(row[c] for c in CONTENT_COLUMNS))
            first_row.setdefault(stay, index)
    tolerance = dt.timedelta(minutes=config.plan.slot_tolerance_minutes)

    results = []
    for index, row in enumerate(rows):
        result: dict[str, Any] = {"outcome": "rejected", "reason": None}
        results.append(result)
        check_in, check_out = _parse(row["check_in"]), _parse(row["check_out"])
        rid = row["reservation_id"]
        if all(row[column] is None for column in CANONICAL_COLUMNS):
            result["reason"], result["outcome"] = "blank_row", "skipped"
            continue
        if rid is None or (row["device_id"] is None and row["door_name"] is None):
            result["reason"] = "invalid_row"
            continue
        if check_in is None or check_out is None:
            result["reason"] = "invalid_row"
            continue
        if (check_in[1] is None) != (check_out[1] is None):
            result["reason"] = "invalid_row"
            continue
        if len(content[(rid, _door_as_written(row))]) > 1:
            result["reason"] = "duplicate_reservation_conflict"
            continue
        if first_row[(rid, _door_as_written(row))] != index:
            result["reason"], result["outcome"] = "duplicate_reservation", "skipped"
            continue
        if row["device_id"] is not None:
            door = doors.get(row["device_id"])
            if door is None:
                result["reason"] = "unknown_device"
                continue
        else:
            want_site = _key(row["site_name"])
            matches = [
                d
                for d in by_name.get(_key(row["door_name"]), [])
                if want_site is None or d["site_key"] == want_site
            ]
            if not matches:
                result["reason"] = "unknown_device"
                continue
            if len(matches) > 1:
                result["reason"] = "ambiguous_device"
                continue
            door = matches[0]
        if not door["can_program_offline"]:
            result["reason"] = "offline_codes_not_supported"
            continue
        zone_name = door["door_zone"]
        try:
            door_zone = zones.setdefault(zone_name, ZoneInfo(zone_name))
        except Exception:
            result["reason"] = "unknown_time_zone"
            continue
        stays = []
        booked = []  # each end's instant, for rounding
        for day, clock, offset in (check_in, check_out):
            instant = None
            if offset is not None and clock is not None:
                instant = dt.datetime.combine(day, clock, dt.UTC) - dt.timedelta(minutes=offset)
                local = instant.astimezone(door_zone)
                day, clock = local.date(), local.time().replace(tzinfo=None)
            elif clock is not None:
                instant = _instant(day, clock, door_zone)
            stays.append((day, clock))
            booked.append(instant)
        (in_day, in_time), (out_day, out_time) = stays
        stay_days = (out_day - in_day).days
        timed = in_time is not None
        named = row["user_level"] is not None
        door_levels = levels[door["device_id"]]
        default = door_defaults.get(door["device_id"].lower()) or door_defaults.get(
            door["door_key"]
        )
        default = default or site_defaults.get(door["site_key"])
        wanted = row["user_level"] if named else (default if not timed else None)

        def fits(level: dict[str, Any], days: int = stay_days) -> bool:
            return not level["is_biweekly"] or days == 14

        def eligible(level: dict[str, Any]) -> bool:
            return not level["is_master"] and not level["is_one_shot"]

        # (rank, farther end, both ends, level, day shift at check-in, at check-out)
        ranked: list[tuple[int, dt.timedelta, dt.timedelta, dict[str, Any], int, int]] = []
        zero = dt.timedelta(0)
        if wanted is not None:
            wanted_key, wanted_text = _key(wanted), wanted.strip()
            for level in door_levels:
                if level["level_key"] == wanted_key:
                    ranked.append((0, zero, zero, level, 0, 0))
                elif named and level["level_prefix_text"] == wanted_text:
                    ranked.append((1, zero, zero, level, 0, 0))
        elif timed:
            for level in door_levels:
                if not eligible(level):
                    continue
                same = level["level_check_in"] == in_time and level["level_check_out"] == out_time
                daily = (
                    in_time == out_time
                    and level["is_24_hour"]
                    and level["level_check_in"] == in_time
                )
                if same or daily:
                    ranked.append((0 if fits(level) else 1, zero, zero, level, 0, 0))
                elif not level["is_24_hour"]:
                    far, total, shift_in, shift_out = _distance(
                        level, (in_day, out_day), booked, zones
                    )
                    if far <= tolerance:
                        days = (out_day - in_day).days + shift_out - shift_in
                        rank = 0 if fits(level, days) else 1
                        ranked.append((rank, far, total, level, shift_in, shift_out))
        else:
            ranked = [
                (0, zero, zero, level, 0, 0)
                for level in door_levels
                if eligible(level) and not level["is_24_hour"] and fits(level)
            ]
        if not ranked:
            result["reason"] = (
                "unknown_user_level" if wanted is not None else "no_matching_user_level"
            )
            continue
        best = min(entry[:3] for entry in ranked)
        options = [entry for entry in ranked if entry[:3] == best]
        if len(options) > 1 and default is not None:
            # The configured default settles a tie it is part of.
            options = [entry for entry in options if entry[3]["level_key"] == _key(default)] or (
                options
            )
        if len(options) > 1:
            result["reason"] = "ambiguous_user_level"
            continue
        _, _, _, level, shift_in, shift_out = options[0]
        if level["is_master"]:
            result["reason"] = "master_user_level_unsupported"
            continue
        if level["is_one_shot"]:
            result["reason"] = "one_time_use_unsupported"
            continue
        if (
            named
            and timed
            and (level["level_check_in"], level["level_check_out"]) != (in_time, out_time)
        ):
            # A named hourly level is rounded to within the tolerance; a daily-bound one isn't.
            far, _, shift_in, shift_out = _distance(level, (in_day, out_day), booked, zones)
            if level["is_24_hour"] or far > tolerance:
                result["reason"] = "user_level_times_mismatch"
                continue
        in_day += dt.timedelta(days=shift_in)
        out_day += dt.timedelta(days=shift_out)
        stay_days = (out_day - in_day).days
        try:
            level_zone = zones.setdefault(level["level_zone"], ZoneInfo(level["level_zone"]))
        except Exception:
            result["reason"] = "unknown_time_zone"
            continue
        start_naive = dt.datetime.combine(in_day, level["level_check_in"])
        end_naive = dt.datetime.combine(out_day, level["level_check_out"])
        start, end = _localize(start_naive, level_zone), _localize(end_naive, level_zone)
        if start is None or end is None:
            result["reason"] = "nonexistent_local_time"
            continue
        starts_at, ends_at = start.isoformat(), end.isoformat()
        if end <= start:
            result["reason"] = "invalid_window"
        elif end_naive - start_naive > dt.timedelta(days=31):
            result["reason"] = "duration_exceeds_31_days"
        elif level["is_biweekly"] and stay_days != 14:
            result["reason"] = "biweekly_needs_14_days"
        elif level["is_24_hour"] and _cyclic_gap(level) > 60:
            result["reason"] = "daily_bound_times_differ"
        elif end <= now:
            result["reason"] = "in_the_past"
        else:
            key = "\x1f".join((rid, door["device_id"], starts_at, ends_at))
            tag = f"opl-{xxhash.xxh3_64_intdigest(key.encode()):020d}"
            fields = {
                "tag": tag,
                "reservation_id": rid,
                "guest_name": row["guest_name"] or "",
                "door_name": door["door_name"] or "",
                "site_name": door["site_name"] or "",
                "user_level_name": level["level_name"],
            }
            result.update(
                outcome="planned",
                device_id=door["device_id"],
                door_name=door["door_name"],
                site_name=door["site_name"],
                user_level_name=level["level_name"],
                user_level_prefix=level["level_prefix"],
                starts_at=starts_at,
                ends_at=ends_at,
                starts_at_utc=start.astimezone(dt.UTC).strftime(_UTC_TEXT),
                ends_at_utc=end.astimezone(dt.UTC).strftime(_UTC_TEXT),
                max_time_rounding="1d" if level["is_24_hour"] else "1h",
                idempotency_tag=tag,
                name=_fold_blanks(config.name_template.format_map(fields)),
                also_for=None,
            )
    return _settle_same_door(results, rows)


def _door_as_written(row: dict[str, Any]) -> Any:
    if row["device_id"] is not None:
        return row["device_id"].strip().lower()
    return (_key(row["door_name"]), _key(row["site_name"]) or "")


def _settle_same_door(
    results: list[dict[str, Any]], rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Rows of one reservation that reached one door by different spellings: one window is
    one code (later copies skipped), several windows a conflict (every copy rejected)."""
    tags: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, result in enumerate(results):
        if result["outcome"] == "planned":
            tags[(rows[index]["reservation_id"], result["device_id"])].append(index)
    for indexes in tags.values():
        windows = {results[index]["idempotency_tag"] for index in indexes}
        for position, index in enumerate(indexes):
            if len(windows) > 1:
                results[index] = {"outcome": "rejected", "reason": "duplicate_reservation_conflict"}
            elif position > 0:
                results[index] = {"outcome": "skipped", "reason": "duplicate_reservation"}
    return results


def _instant(day: dt.date, clock: dt.time, zone: ZoneInfo) -> dt.datetime:
    """The UTC instant of a wall time (fold=0: in a fold the earlier instant, in a gap the offset
    before the change, as PEP 495 reads it)."""
    return dt.datetime.combine(day, clock).replace(tzinfo=zone, fold=0).astimezone(dt.UTC)


def _distance(
    level: dict[str, Any],
    days: tuple[dt.date, dt.date],
    booked: list[dt.datetime | None],
    zones: dict[str, ZoneInfo],
) -> tuple[dt.timedelta, dt.timedelta, int, int]:
    """A level's distance from a booking, by brute force: at each end the level's nearest
    instant on the day before, of or after the booking's date. Returns the farther end, both
    ends together, and each end's day shift."""
    zone = zones.setdefault(level["level_zone"], ZoneInfo(level["level_zone"]))
    ends = []
    for day, clock, instant in zip(
        days, (level["level_check_in"], level["level_check_out"]), booked, strict=True
    ):
        assert instant is not None
        ends.append(
            min(
                (
                    abs(_instant(day + dt.timedelta(days=shift), clock, zone) - instant),
                    abs(shift),
                    shift,
                )
                for shift in (-1, 0, 1)
            )
        )
    (off_in, _, shift_in), (off_out, _, shift_out) = ends
    return max(off_in, off_out), off_in + off_out, shift_in, shift_out


_UTC_TEXT = "%Y-%m-%dT%H:%M:%SZ"


def _fold_blanks(name: str) -> str:
    """Control characters become spaces; blank template fields leave doubled spaces: fold them
    twice and trim, as the planner does."""
    name = re.sub("[\x00-\x1f\x7f-\x9f]+", " ", name)  # Unicode's Cc
    for _ in range(2):
        name = name.replace("  ", " ")
    return name.strip()


def _cyclic_gap(level: dict[str, Any]) -> int:
    def seconds(t: dt.time) -> int:
        return t.hour * 3600 + t.minute * 60 + t.second

    gap = abs(seconds(level["level_check_in"]) - seconds(level["level_check_out"]))
    return min(gap, 86_400 - gap)
