"""The door's rules for a new offline access code, as Seam's Oracode pages state them.

Written independently of ``pipeline.plan.planner`` (plain datetime and zoneinfo), so a mistake in
the planner is caught here instead of being mirrored.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

# Oracode: "The duration limit for a dormakaba Oracode offline access code is 31 consecutive days."
MAX_DURATION = dt.timedelta(days=31)
# Instants this far out can't be shifted by a day without leaving the calendar.
FIRST_YEAR, LAST_YEAR = 1970, 2999
ROUNDING = {
    "1hour": dt.timedelta(hours=1),
    "1h": dt.timedelta(hours=1),
    "1day": dt.timedelta(days=1),
    "1d": dt.timedelta(days=1),
}
_CLOCK = re.compile(
    r"^(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?(?:Z|[+-]\d{2}(?::?\d{2})?)?(?:\[(.+)\])?$"
)


class RuleViolation(Exception):
    """A create request the door can't take; becomes a 400 with this message."""

    def __init__(self, message: str, error_type: str = "invalid_input") -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type


@dataclass(frozen=True)
class Slot:
    """A user level as the lock keeps it: wall-clock times in a zone."""

    raw: dict[str, Any]
    name: str
    prefix: int
    check_in: dt.time
    check_out: dt.time
    zone: ZoneInfo
    is_24_hour: bool
    is_biweekly: bool
    is_master: bool
    is_one_shot: bool

    @property
    def is_eligible(self) -> bool:
        # Seam can't create master or one-time-use Oracode codes.
        return not (self.is_master or self.is_one_shot)


def read_slots(device: dict[str, Any]) -> list[Slot]:
    """The device's user levels; raises ValueError when one can't be read."""
    meta = device["properties"]["dormakaba_oracode_metadata"]
    slots = []
    for raw in meta.get("predefined_time_slots", []):
        check_in, in_zone = _clock(raw["check_in_time"])
        check_out, out_zone = _clock(raw["check_out_time"])
        zone_name = in_zone or out_zone or meta.get("iana_timezone")
        if not zone_name:
            raise ValueError(f"device {device['device_id']}: no time zone for {raw['name']}")
        keys = (
            "prefix",
            "dormakaba_oracode_user_level_prefix",
            "ext_dormakaba_oracode_user_level_prefix",
        )
        prefix = next((raw[key] for key in keys if raw.get(key) is not None), None)
        if prefix is None:
            raise ValueError(f"device {device['device_id']}: level {raw['name']!r} has no prefix")
        slots.append(
            Slot(
                raw=raw,
                name=raw["name"],
                prefix=int(prefix),
                check_in=check_in,
                check_out=check_out,
                zone=ZoneInfo(zone_name),
                is_24_hour=bool(raw.get("is_24_hour")),
                is_biweekly=bool(raw.get("is_biweekly_mode")),
                is_master=bool(raw.get("is_master")),
                is_one_shot=bool(raw.get("is_one_shot")),
            )
        )
    return slots


def _clock(text: str) -> tuple[dt.time, str | None]:
    match = _CLOCK.match(text.strip())
    if not match:
        raise ValueError(f"time of day {text!r} can't be read")
    hour, minute, second, zone = match.groups()
    return dt.time(int(hour), int(minute), int(second or 0)), zone


def check_instant(value: Any, field: str) -> dt.datetime:
    """An ISO 8601 instant with an offset (or Z); raises RuleViolation."""
    if not isinstance(value, str):
        raise RuleViolation(f"{field} is required for an offline access code")
    try:
        instant = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise RuleViolation(f"{field} {value!r} is not an ISO 8601 date-time") from exc
    if instant.tzinfo is None:
        raise RuleViolation(f"{field} {value!r} has no UTC offset")
    if not FIRST_YEAR <= instant.year <= LAST_YEAR:
        raise RuleViolation(f"{field} {value!r} is outside {FIRST_YEAR}-{LAST_YEAR}")
    return instant


@dataclass(frozen=True)
class Match:
    slot: Slot
    starts_at: dt.datetime
    ends_at: dt.datetime
    rounded_by: dt.timedelta


def match_slot(
    slots: list[Slot], starts_at: dt.datetime, ends_at: dt.datetime, rounding: dt.timedelta
) -> Match:
    """The user level this window fits, and the window the lock will really use.

    The window must match an eligible level's check-in and check-out times on its dates,
    within ``rounding`` (1 hour by default, 1 day with ``max_time_rounding: 1d``), measured at
    each end between instants, as Seam rounds booking instants to a slot's (exactly the
    rounding is within: Seam's error is for rounding that *exceeds* it); the level whose
    farther end is closest wins. Raises RuleViolation naming the door's levels when none fits.
    """
    best: Match | None = None
    for slot in slots:
        if not slot.is_eligible:
            continue
        start = _nearest(starts_at, slot.check_in, slot.zone)
        end = _nearest(ends_at, slot.check_out, slot.zone)
        if start is None or end is None:
            continue
        off_by = max(abs(start - starts_at), abs(end - ends_at))
        days = (end.astimezone(slot.zone).date() - start.astimezone(slot.zone).date()).days
        if off_by > rounding or (slot.is_biweekly and days != 14):
            continue
        if best is None or off_by < best.rounded_by:
            best = Match(slot, start, end, off_by)
    if best is None:
        levels = "; ".join(
            f"{s.name} {s.check_in:%H:%M}-{s.check_out:%H:%M}" for s in slots if s.is_eligible
        )
        allowed = "1 day" if rounding >= dt.timedelta(days=1) else "1 hour"
        # Seam's words when a booking is more than the allowed rounding from every time slot
        # (its Oracode guide: "No time slots found"); the rest says which, for a person.
        raise RuleViolation(
            f"No time slots found: the window {starts_at.isoformat()} - {ends_at.isoformat()}"
            f" does not match any user level of this device within {allowed} (levels:"
            f" {levels or 'none'})"
        )
    return best


def _nearest(instant: dt.datetime, wall: dt.time, zone: ZoneInfo) -> dt.datetime | None:
    """The instant nearest to ``instant`` at which the lock's clock shows ``wall``."""
    local_day = instant.astimezone(zone).date()
    options = []
    for shift in (-1, 0, 1):
        try:
            naive = dt.datetime.combine(local_day + dt.timedelta(days=shift), wall)
        except OverflowError:
            continue  # past 9999-12-31
        aware = naive.replace(tzinfo=zone, fold=0)
        if aware.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None) == naive:
            options.append(aware)  # a wall time inside a DST gap never shows on the clock
    return min(options, key=lambda option: abs(option - instant), default=None)


def check_window(starts_at: dt.datetime, ends_at: dt.datetime, now: dt.datetime) -> None:
    """Order and a future end."""
    if ends_at <= starts_at:
        raise RuleViolation("ends_at must be after starts_at")
    if ends_at <= now:
        raise RuleViolation("ends_at must be in the future")


def check_duration(starts_at: dt.datetime, ends_at: dt.datetime, zone: ZoneInfo) -> None:
    """At most 31 days of the lock's local time."""
    local_span = ends_at.astimezone(zone).replace(tzinfo=None) - starts_at.astimezone(zone).replace(
        tzinfo=None
    )
    if local_span > MAX_DURATION:
        raise RuleViolation(
            f"the window is {local_span}; dormakaba Oracode codes can last at most 31 days"
        )
