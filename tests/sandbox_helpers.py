"""Driving the sandbox from tests: in-process through httpx.ASGITransport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from pipeline.sandbox import Faults, build_sandbox
from pipeline.sandbox.state import SandboxState
from tests.paths import SANDBOX_DEVICES

KEY = {"Authorization": "Bearer seam_test_key"}


@asynccontextmanager
async def sandbox(
    *,
    door_rate: tuple[int, float] | None = (10, 60.0),
    global_rate: float | None = None,
    faults: Faults | None = None,
    seed: int = 0,
) -> AsyncIterator[tuple[SandboxState, httpx.AsyncClient]]:
    """A fresh sandbox and a client that reaches it in-process (authenticated)."""
    state, app = build_sandbox(
        SANDBOX_DEVICES, door_rate=door_rate, global_rate=global_rate, faults=faults, seed=seed
    )
    # A dropped connection must reach the client as a broken answer, as it would over TCP.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox", headers=KEY) as c:
        yield state, c


def door(state: SandboxState, site: str, name: str) -> str:
    """The device_id of a door of the sample device file."""
    return next(
        device_id
        for device_id, device in state.devices.items()
        if device["properties"].get("dormakaba_oracode_metadata", {}).get("site_name") == site
        and device["properties"]["name"] == name
    )


def create_body(device_id: str, starts_at: str, ends_at: str, **extra: Any) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "is_offline_access_code": True,
        "starts_at": starts_at,
        "ends_at": ends_at,
        **extra,
    }


# Harbor View's "Guest 3:30pm-10:30am" level (PST8PDT), across the March 2027 DST change.
HV_START, HV_END = "2027-03-12T15:30:00-08:00", "2027-03-16T10:30:00-07:00"
