"""Stays on the sample doors relative to the sandbox clock, and /events/list from tests."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from pipeline.sandbox.state import SandboxState
from tests.sandbox_helpers import create_body, door

# Doors of inputs/sandbox-devices.json with a guest level: (zone, check-in, check-out).
CABIN = ("Lakeside Lodge", "Cabin 1")
ZIMMER = ("Alpenhof", "Zimmer 1")
STUCK = ("Alpenhof", "Zimmer 3")  # the file's stuck door: its codes never get set
_LEVELS = {
    CABIN: ("America/New_York", dt.time(16), dt.time(11)),
    ZIMMER: ("Europe/Berlin", dt.time(15), dt.time(11)),
    STUCK: ("Europe/Berlin", dt.time(15), dt.time(11)),
}


def instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


async def create_stay(
    client: httpx.AsyncClient,
    state: SandboxState,
    where: tuple[str, str],
    *,
    days_ahead: int = 3,
    nights: int = 2,
    expect: int = 200,
) -> tuple[dict[str, Any] | None, dt.datetime]:
    """Create a code for a stay checking in ``days_ahead`` days from the sandbox's now (on
    the level's check-in time); returns the code (None unless 200) and its ``starts_at``."""
    zone_name, check_in, check_out = _LEVELS[where]
    zone = ZoneInfo(zone_name)
    day = (state.clock.now() + dt.timedelta(days=days_ahead)).astimezone(zone).date()
    starts = dt.datetime.combine(day, check_in, zone)
    ends = dt.datetime.combine(day + dt.timedelta(days=nights), check_out, zone)
    answer = await client.post(
        "/access_codes/create",
        json=create_body(door(state, *where), starts.isoformat(), ends.isoformat()),
    )
    assert answer.status_code == expect, answer.text
    return (answer.json()["access_code"] if expect == 200 else None), starts


async def list_events(client: httpx.AsyncClient, **body: Any) -> list[dict[str, Any]]:
    answer = await client.post("/events/list", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()["events"]
