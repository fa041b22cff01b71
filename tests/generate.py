"""Generated device payloads and reservation files, for the benchmarks and the tests."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Sequence
from typing import Any

import polars as pl

_NAMESPACE = uuid.UUID("0b6f9d1e-8a57-4b59-9d0e-3c2a1f4e5d6c")

# (zone, how the level strings carry it)
ZONES = (
    ("America/Los_Angeles", "[America/Los_Angeles]"),
    ("America/New_York", "-05:00[America/New_York]"),
    ("Europe/Berlin", "[Europe/Berlin]"),
    ("America/Los_Angeles", "[PST8PDT]"),
    ("Australia/Sydney", ""),
)


def device_id(*parts: object) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(map(str, parts))))


def make_level(
    name: str,
    prefix: int,
    check_in: str,
    check_out: str,
    *,
    is_24_hour: bool = False,
    is_biweekly_mode: bool = False,
    is_master: bool = False,
    is_one_shot: bool = False,
    prefix_field: str = "prefix",
) -> dict[str, Any]:
    """A ``predefined_time_slots`` item as Seam sends it."""
    return {
        "name": name,
        prefix_field: prefix,
        "check_in_time": check_in,
        "check_out_time": check_out,
        "is_24_hour": is_24_hour,
        "is_biweekly_mode": is_biweekly_mode,
        "is_master": is_master,
        "is_one_shot": is_one_shot,
        "dormakaba_oracode_user_level_id": device_id("level", name, prefix),
    }


def make_door(
    identifier: str,
    door_name: str,
    site_name: str,
    zone: str | None,
    levels: list[dict[str, Any]],
    *,
    can_program_offline: bool = True,
    max_active_codes_supported: int | None = None,
) -> dict[str, Any]:
    """A ``/devices/list`` item for a dormakaba Oracode door."""
    properties: dict[str, Any] = {
        "name": door_name,
        "manufacturer": "dormakaba_oracode",
        "online": False,
        "offline_access_codes_enabled": can_program_offline,
        "dormakaba_oracode_metadata": {
            "door_id": uuid.uuid5(_NAMESPACE, identifier).int % 100_000,
            "door_name": door_name,
            "site_name": site_name,
            "iana_timezone": zone,
            "predefined_time_slots": levels,
        },
    }
    if max_active_codes_supported is not None:
        properties["max_active_codes_supported"] = max_active_codes_supported
    return {
        "device_id": identifier,
        "device_type": "dormakaba_oracode_door",
        "display_name": f"{site_name} {door_name}",
        "can_program_offline_access_codes": can_program_offline,
        "capabilities_supported": ["access_code", "lock"],
        "properties": properties,
        "connected_account_id": device_id("account"),
        "workspace_id": device_id("workspace"),
        "errors": [],
        "warnings": [],
        "created_at": "2026-01-01T00:00:00.000Z",
        "is_managed": True,
        "custom_metadata": {},
    }


def standard_levels(zone_suffix: str) -> list[dict[str, Any]]:
    """A guest level, a 24-hour level and a master level, as many installations have."""
    return [
        make_level("Guest", 1, f"15:00:00{zone_suffix}", f"11:00:00{zone_suffix}"),
        make_level("Day", 3, f"00:00:00{zone_suffix}", f"23:59:00{zone_suffix}", is_24_hour=True),
        make_level("Master", 9, f"00:00:00{zone_suffix}", f"00:00:00{zone_suffix}", is_master=True),
    ]


def make_devices(doors: int, *, seed: int = 7) -> dict[str, Any]:
    """A ``/devices/list`` response with ``doors`` doors spread over sites and zones."""
    devices = []
    for index in range(doors):
        zone, suffix = ZONES[index % len(ZONES)]
        site = f"Site {index // 50:03d}"
        devices.append(
            make_door(
                device_id("door", seed, index),
                f"Door {index:05d}",
                site,
                zone,
                standard_levels(suffix),
            )
        )
    return {"devices": devices, "pagination": {"has_next_page": False}, "ok": True}


def make_reservations(
    rows: int, devices: dict[str, Any], *, seed: int = 11, start: dt.date = dt.date(2027, 1, 1)
) -> pl.DataFrame:
    """Reservations over the given doors: mostly good rows, about 2 % with a problem."""
    rng = random.Random(seed)
    ids = [device["device_id"] for device in devices["devices"]]
    check_in, check_out, door, level = [], [], [], []
    for _ in range(rows):
        first = start + dt.timedelta(days=rng.randrange(365))
        nights = rng.choice((1, 2, 3, 4, 5, 7, 10, 14)) if rng.random() > 0.01 else 40
        check_in.append(first.isoformat())
        check_out.append((first + dt.timedelta(days=nights)).isoformat())
        door.append(rng.choice(ids) if rng.random() > 0.005 else "no-such-door")
        level.append("Day" if rng.random() < 0.1 else None)
    return pl.DataFrame(
        {
            "reservation_id": [f"R{n:08d}" for n in range(rows)],
            "device_id": door,
            "check_in": check_in,
            "check_out": check_out,
            "guest_name": [f"Guest {n}" for n in range(rows)],
            "user_level": level,
        }
    )


def make_stays(
    doors: Sequence[tuple[str, int]], *, seed: int = 5, start: dt.date = dt.date(2027, 1, 1)
) -> pl.DataFrame:
    """Valid dates-only reservations: ``count`` of them on each ``(device_id, count)`` door."""
    rng = random.Random(seed)
    ids, check_in, check_out = [], [], []
    for device, count in doors:
        for _ in range(count):
            first = start + dt.timedelta(days=rng.randrange(300))
            ids.append(device)
            check_in.append(first.isoformat())
            check_out.append((first + dt.timedelta(days=rng.choice((1, 2, 3, 5, 7)))).isoformat())
    return pl.DataFrame(
        {
            "reservation_id": [f"S{seed:03d}-{n:06d}" for n in range(len(ids))],
            "device_id": ids,
            "check_in": check_in,
            "check_out": check_out,
            "guest_name": [f"Guest {n}" for n in range(len(ids))],
        }
    )
