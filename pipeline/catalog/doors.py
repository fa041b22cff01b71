"""Device catalog: the dormakaba Oracode doors and their user levels, as Polars tables.

Device data comes from Seam's ``/devices/list`` (see ``pipeline.seam.client``) or from a JSON file
holding such a response. Each door's user levels are parsed once here, so planning joins on
plain columns: check-in/out times as ``time``, the level's zone as an IANA name.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import zoneinfo
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import ValidationError

from pipeline.common.errors import DeviceDataError
from pipeline.common.names import name_key
from pipeline.common.settings import first_problem
from pipeline.seam.models import Device

ORACODE_DEVICE_TYPE = "dormakaba_oracode_door"

# Seam writes a user level's time of day in several forms; all must parse:
# 07:00:00[America/Los_Angeles], 15:30:00-08:00[America/Los_Angeles], 09:00:00-05:00,
# 09:00:00Z, and legacy zone names such as 15:30:00[PST8PDT].
_TIME_OF_DAY = re.compile(
    r"^(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2})(?:\.\d+)?)?"
    r"(?P<offset>Z|[+-]\d{2}(?::?\d{2})?)?"
    r"(?:\[(?P<zone>[^\]]+)\])?$"
)

DOOR_SCHEMA = {
    "device_id": pl.String,
    "door_name": pl.String,
    "site_name": pl.String,
    "door_key": pl.String,
    "site_key": pl.String,
    "can_program_offline": pl.Boolean,
    "door_zone": pl.String,
    "max_active_codes_supported": pl.Int64,
}

LEVEL_SCHEMA = {
    "device_id": pl.String,
    "level_name": pl.String,
    "level_key": pl.String,
    "level_prefix": pl.Int64,
    "level_prefix_text": pl.String,
    "level_check_in": pl.Time,
    "level_check_out": pl.Time,
    "level_zone": pl.String,
    "is_24_hour": pl.Boolean,
    "is_biweekly": pl.Boolean,
    "is_master": pl.Boolean,
    "is_one_shot": pl.Boolean,
    "user_level_id": pl.String,
}


def parse_time_of_day(text: str) -> tuple[dt.time, str | None]:
    """Split a user level's time string into its wall-clock time and its zone (None if absent).

    The wall-clock time is what the lock keeps; an offset in the string (``-08:00``, ``Z``) only
    says what the offset was when Seam wrote it, so it is not applied. Raises ValueError.
    """
    match = _TIME_OF_DAY.match(text.strip())
    if not match:
        raise ValueError(f"time of day {text!r} is not HH:MM[:SS][offset][[Zone]]")
    time = dt.time(int(match["h"]), int(match["m"]), int(match["s"] or 0))
    return time, match["zone"]


@cache
def is_known_zone(name: str) -> bool:
    """Whether both the standard library and Polars know the IANA zone ``name``."""
    try:
        zoneinfo.ZoneInfo(name)
        pl.Series([dt.datetime(2000, 1, 1)]).dt.replace_time_zone(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, pl.exceptions.PolarsError):
        return False
    return True


@dataclass(frozen=True)
class DeviceCatalog:
    """Doors (one row each) and user levels (one row per door and level)."""

    doors: pl.DataFrame
    levels: pl.DataFrame

    @classmethod
    def from_devices(cls, devices: list[Device]) -> DeviceCatalog:
        """Build the tables from parsed devices; non-Oracode devices are left out."""
        doors: list[dict[str, Any]] = []
        levels: list[dict[str, Any]] = []
        seen: set[str] = set()
        for device in devices:
            # A device listed twice (pages shifting while they are read) counts once.
            if device.device_type != ORACODE_DEVICE_TYPE or device.device_id in seen:
                continue
            seen.add(device.device_id)
            door, door_levels = _tabulate_device(device)
            doors.append(door)
            levels.extend(door_levels)
        return cls(
            doors=pl.DataFrame(doors, schema=DOOR_SCHEMA),
            levels=pl.DataFrame(levels, schema=LEVEL_SCHEMA),
        )

    @classmethod
    def from_payload(cls, payload: Any, *, source: str) -> DeviceCatalog:
        """Build from a ``/devices/list`` response body (or a bare list of devices)."""
        if isinstance(payload, dict) and isinstance(payload.get("devices"), list):
            raw_devices = payload["devices"]
        elif isinstance(payload, list):
            raw_devices = payload
        else:
            raise DeviceDataError(
                f"{source} is not a /devices/list response",
                hint='expected an object with a "devices" list',
            )
        return cls.from_devices([parse_device(raw, source=source) for raw in raw_devices])

    @property
    def zones(self) -> list[str]:
        return sorted({*self.levels["level_zone"].drop_nulls()})


def parse_device(raw: Any, *, source: str) -> Device:
    """Validate one device payload; the error names the device and the missing field."""
    name = raw.get("device_id", "?") if isinstance(raw, dict) else "?"
    try:
        return Device.model_validate(raw)
    except ValidationError as exc:
        raise DeviceDataError(f"device {name} in {source}: {first_problem(exc)}") from exc


def read_device_file(path: Path) -> DeviceCatalog:
    """Read a JSON file holding a ``/devices/list`` response; raises DeviceDataError."""
    payload = read_saved_answer(path, what="device file", option="--devices")
    return DeviceCatalog.from_payload(payload, source=str(path))


def read_saved_answer(path: Path, *, what: str, option: str) -> Any:
    """The JSON of a saved Seam answer (``what`` and ``option`` name it in the error)."""
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise DeviceDataError(f"{what} {path} does not exist", hint=f"check {option}") from exc
    except (OSError, ValueError) as exc:
        raise DeviceDataError(f"{what} {path} is not readable JSON: {exc}") from exc


def _tabulate_device(device: Device) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    meta = device.properties.dormakaba_oracode_metadata
    if meta is None:
        raise DeviceDataError(
            f"device {device.device_id}: properties.dormakaba_oracode_metadata is missing"
        )
    door_name = meta.door_name or device.properties.name or device.display_name
    parsed = []
    for slot in meta.predefined_time_slots:
        try:
            check_in, in_zone = parse_time_of_day(slot.check_in_time)
            check_out, out_zone = parse_time_of_day(slot.check_out_time)
        except ValueError as exc:
            raise DeviceDataError(
                f"device {device.device_id}: user level {slot.name!r}: {exc}"
            ) from exc
        if slot.prefix is None:
            raise DeviceDataError(f"device {device.device_id}: user level {slot.name!r}: no prefix")
        parsed.append((slot, check_in, check_out, in_zone or out_zone))
    # The door's zone is iana_timezone; failing that, the zone its user levels are written in.
    door_zone = meta.iana_timezone or next((zone for *_, zone in parsed if zone), None)
    door = {
        "device_id": device.device_id,
        "door_name": door_name,
        "site_name": meta.site_name,
        "door_key": name_key(door_name),
        "site_key": name_key(meta.site_name),
        "can_program_offline": device.can_program_offline,
        "door_zone": door_zone,
        "max_active_codes_supported": device.properties.max_active_codes_supported,
    }
    levels = [
        {
            "device_id": device.device_id,
            "level_name": slot.name,
            "level_key": name_key(slot.name),
            "level_prefix": slot.prefix,
            "level_prefix_text": str(slot.prefix),
            "level_check_in": check_in,
            "level_check_out": check_out,
            "level_zone": zone or door_zone,
            "is_24_hour": slot.is_24_hour,
            "is_biweekly": slot.is_biweekly_mode,
            "is_master": slot.is_master,
            "is_one_shot": slot.is_one_shot,
            "user_level_id": slot.dormakaba_oracode_user_level_id,
        }
        for slot, check_in, check_out, zone in parsed
    ]
    return door, levels


def known_zones(frame: pl.DataFrame, column: str) -> list[str]:
    """The zone names in ``column`` that both zoneinfo and Polars know."""
    return [str(zone) for zone in frame[column].drop_nulls().unique() if is_known_zone(str(zone))]
