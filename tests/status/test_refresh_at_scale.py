"""status at scale: codes asked for by id in batches, and caught up from Seam's events."""

from __future__ import annotations

import datetime as dt

import httpx
import polars as pl
import pytest

from pipeline.sandbox import create_app
from pipeline.status.catchup import event_page_budget
from tests.apply_helpers import start_sandbox
from tests.generate import make_devices
from tests.report.helpers import latest_start, move_sandbox_clock_to, refresh

pytestmark = pytest.mark.virtual_time

DOORS = 1_000
# Each status run asks once which workspace its key is for (checked against the ledger).
WORKSPACE = "/workspaces/get"


def one_stay_per_door(payload: dict) -> pl.DataFrame:
    doors = [device["device_id"] for device in payload["devices"]]
    return pl.DataFrame(
        {
            "reservation_id": [f"R{n}" for n in range(len(doors))],
            "device_id": doors,
            "check_in": ["2027-02-01"] * len(doors),
            "check_out": ["2027-02-05"] * len(doors),
        }
    )


def requests_by_path(state, before) -> dict[str, int]:
    counts = state.requests - before
    return {path: count for (path, _), count in sorted(counts.items())}


@pytest.mark.anyio
async def test_status_on_1000_doors_asks_by_id_then_catches_up_from_events(tmp_path, monkeypatch):
    """1,000 doors with a code each: the first status asks for the codes by id, 100 a request
    (10 requests, none per door); once every code is set, the next status takes 500 PINs from
    one /events/list page and asks for the other 500 by id (6 requests), all set with PINs.
    Each status also asks once which workspace the key is for, and counts it; no door is
    listed for duplicates, however long ago apply looked at it (two months here)."""
    payload = make_devices(DOORS, seed=35)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    run.transport = httpx.ASGITransport(app=create_app(run.state), raise_app_exceptions=False)
    await run.apply(one_stay_per_door(payload))
    before = run.state.requests.copy()
    first = await refresh(run, dt.datetime.now(dt.UTC))
    assert requests_by_path(run.state, before) == {"/access_codes/list": 10, WORKSPACE: 1}
    assert first.result.requests == 11
    assert first.result.codes.height == DOORS

    start = latest_start(run) + dt.timedelta(minutes=5)
    move_sandbox_clock_to(run, start)
    before = run.state.requests.copy()
    caught_up = await refresh(run, start)
    assert requests_by_path(run.state, before) == {
        "/access_codes/list": 5,
        "/events/list": 1,
        WORKSPACE: 1,
    }
    assert caught_up.result.from_events == 500
    codes = caught_up.result.codes
    assert codes.height == DOORS
    assert set(codes["code_status"]) == {"set"}
    pins = {code.access_code_id: code.pin for code in run.state.codes.values()}
    assert dict(codes.select("access_code_id", "code").rows()) == pins


@pytest.mark.anyio
async def test_without_events_since_status_asks_by_id_and_spends_one_event_request(
    tmp_path, monkeypatch
):
    """No code set since the last status: one /events/list (empty) and the batches by id."""
    payload = make_devices(300, seed=36)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    run.transport = httpx.ASGITransport(app=create_app(run.state), raise_app_exceptions=False)
    await run.apply(one_stay_per_door(payload))
    now = dt.datetime.now(dt.UTC)
    await refresh(run, now)
    before = run.state.requests.copy()
    again = await refresh(run, now + dt.timedelta(minutes=1))
    assert requests_by_path(run.state, before) == {
        "/access_codes/list": 3,
        "/events/list": 1,
        WORKSPACE: 1,
    }
    assert again.result.from_events == 0


@pytest.mark.parametrize(
    ("codes", "pages"),
    [(0, 0), (100, 0), (101, 1), (1_000, 1), (1_900, 1), (1_901, 2), (2_000, 2), (10_000, 10)],
)
def test_events_may_cost_a_tenth_of_the_batches(codes, pages):
    """/events/list calls tried: a tenth of the batches of 100 (at least one), none for one
    batch; so 10,000 codes cost at most 10 + 100 = 110 requests."""
    assert event_page_budget(codes) == pages
