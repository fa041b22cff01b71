"""The sandbox's events: recorded on create and as its clock moves, listed by /events/list."""

from __future__ import annotations

import pytest

from pipeline.sandbox.state import SET_LEAD, SETTING_LEAD
from tests.sandbox.events_helpers import (
    CABIN,
    STUCK,
    ZIMMER,
    create_stay,
    instant,
    list_events,
)
from tests.sandbox_helpers import door, sandbox

pytestmark = pytest.mark.anyio

CREATED = "access_code.created"
SCHEDULED = "access_code.scheduled_on_device"
SET = "access_code.set_on_device"
FAILED = "access_code.failed_to_set_on_device"


async def test_a_create_records_created_with_seams_fields():
    """A create records access_code.created at once, without any webhook URL."""
    async with sandbox() as (state, client):
        code, _ = await create_stay(client, state, CABIN)
        events = await list_events(client, since=code["created_at"])
    assert [e["event_type"] for e in events] == [CREATED]
    event = events[0]
    assert event["access_code_id"] == code["access_code_id"]
    assert event["device_id"] == code["device_id"]
    assert event["workspace_id"] == code["workspace_id"]
    assert event["connected_account_id"] == "a92ebea6-2a46-5fbb-ad7a-bf892a4bafd8"
    # The code shows whole seconds, the event milliseconds: the same instant.
    assert event["occurred_at"][:19] == code["created_at"][:19]
    assert set(event) == {
        "event_id",
        "event_type",
        "workspace_id",
        "access_code_id",
        "device_id",
        "connected_account_id",
        "created_at",
        "occurred_at",
    }


async def test_lifecycle_events_fire_as_the_clock_passes_their_moments():
    """scheduled_on_device when the code becomes setting, set_on_device with the PIN when set."""
    async with sandbox() as (state, client):
        code, starts = await create_stay(client, state, CABIN)
        since = code["created_at"]
        state.clock.advance((starts - SETTING_LEAD - state.clock.now()).total_seconds() - 60)
        before = await list_events(client, since=since)
        state.clock.advance(120)
        setting = await list_events(client, since=since)
        state.clock.advance((SETTING_LEAD - SET_LEAD).total_seconds())
        done = await list_events(client, since=since)
        fetched = await client.post(
            "/access_codes/get", json={"access_code_id": code["access_code_id"]}
        )
    assert [e["event_type"] for e in before] == [CREATED]
    assert [e["event_type"] for e in setting] == [CREATED, SCHEDULED]
    assert [e["event_type"] for e in done] == [CREATED, SCHEDULED, SET]
    assert instant(done[1]["occurred_at"]) == starts - SETTING_LEAD
    assert instant(done[2]["occurred_at"]) == starts - SET_LEAD
    assert instant(done[2]["created_at"]) > instant(done[2]["occurred_at"])  # recorded late
    assert done[2]["code"] == fetched.json()["access_code"]["code"]
    assert len(done[2]["code"]) == 6
    assert "code" not in done[1]
    assert len({e["event_id"] for e in done}) == 3


async def test_a_code_created_inside_its_lead_records_every_step_at_once_in_order():
    """A stay already under way: created, scheduled and set all at its creation, in that order."""
    async with sandbox() as (state, client):
        code, _ = await create_stay(client, state, CABIN, days_ahead=-1)
        events = await list_events(client, since=code["created_at"])
    assert [e["event_type"] for e in events] == [CREATED, SCHEDULED, SET]
    assert len({e["occurred_at"] for e in events}) == 1
    assert events[2]["code"] is not None


async def test_a_stuck_door_records_failed_to_set_with_the_errors():
    """On a stuck door: failed_to_set_on_device with the code's error, never set_on_device."""
    async with sandbox() as (state, client):
        code, starts = await create_stay(client, state, STUCK)
        state.clock.advance((starts - state.clock.now()).total_seconds() + 60)
        events = await list_events(client, since=code["created_at"])
        fetched = await client.post(
            "/access_codes/get", json={"access_code_id": code["access_code_id"]}
        )
    assert [e["event_type"] for e in events] == [CREATED, FAILED]
    failed = events[1]
    assert instant(failed["occurred_at"]) == starts - SETTING_LEAD
    assert failed["access_code_errors"] == fetched.json()["access_code"]["errors"]
    assert failed["access_code_errors"][0]["error_code"] == "failed_to_set_on_device"
    assert failed["device_errors"] == []
    assert "code" not in failed


async def test_since_between_and_limit_order_by_occurred_at():
    """since is inclusive, between exclusive at both ends, limit keeps the oldest."""
    async with sandbox(door_rate=None) as (state, client):
        for days in (5, 3, 4):
            await create_stay(client, state, CABIN, days_ahead=days)
        state.clock.advance(6 * 86400)
        everything = await list_events(client, since="2000-01-01T00:00:00Z")
        moments = [e["occurred_at"] for e in everything]
        third = moments[3]
        since = await list_events(client, since=third)
        between = await list_events(client, between=[moments[3], moments[6]])
        oldest = await list_events(client, since="2000-01-01T00:00:00Z", limit=4)
    assert len(everything) == 9
    assert [instant(m) for m in moments] == sorted(instant(m) for m in moments)
    assert since == everything[3:]
    assert between == [e for e in everything if moments[3] < e["occurred_at"] < moments[6]]
    assert oldest == everything[:4]


async def test_filters_by_type_code_and_device():
    """event_type(s), access_code_id(s) and device_id(s) each narrow the list; they combine."""
    async with sandbox() as (state, client):
        first, _ = await create_stay(client, state, CABIN, days_ahead=-1)
        second, _ = await create_stay(client, state, ZIMMER, days_ahead=-1)
        since = first["created_at"]
        one_id, two_ids = first["access_code_id"], [first["access_code_id"], "nope"]
        cases = {
            "type": {"event_type": SET},
            "types": {"event_types": [CREATED, SET]},
            "code": {"access_code_id": one_id},
            "codes": {"access_code_ids": two_ids},
            "device": {"device_id": second["device_id"]},
            "devices": {"device_ids": [first["device_id"], second["device_id"]]},
            "both": {"event_type": CREATED, "device_ids": [second["device_id"]]},
        }
        found = {name: await list_events(client, since=since, **q) for name, q in cases.items()}
    assert [e["event_type"] for e in found["type"]] == [SET, SET]
    assert {e["event_type"] for e in found["types"]} == {CREATED, SET}
    assert len(found["types"]) == 4
    assert {e["access_code_id"] for e in found["code"]} == {one_id}
    assert found["codes"] == found["code"]
    assert {e["device_id"] for e in found["device"]} == {second["device_id"]}
    assert len(found["devices"]) == 6
    assert [(e["event_type"], e["device_id"]) for e in found["both"]] == [
        (CREATED, second["device_id"])
    ]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "send since or between"),
        ({"since": "2027-01-01T00:00:00Z", "between": ["2027-01-01T00:00:00Z"] * 2}, "one of"),
        ({"since": "yesterday"}, "not an ISO 8601 instant"),
        ({"since": "2027-01-01T00:00:00"}, "with an offset"),
        ({"between": ["2027-01-01T00:00:00Z"]}, "two instants"),
        ({"since": "2027-01-01T00:00:00Z", "limit": 0}, "positive integer"),
        ({"since": "2027-01-01T00:00:00Z", "limit": "5"}, "positive integer"),
        ({"since": "2027-01-01T00:00:00Z", "device_ids": ["d"] * 101}, "at most 100"),
        ({"since": "2027-01-01T00:00:00Z", "access_code_ids": ["c"] * 101}, "at most 100"),
        ({"since": "2027-01-01T00:00:00Z", "event_types": [SET] * 101}, "at most 100"),
        ({"since": "2027-01-01T00:00:00Z", "event_types": SET}, "list of strings"),
    ],
)
async def test_a_query_it_cant_answer_is_a_400_naming_the_field(body, words):
    """A missing or doubled window, a bad instant, limit or filter: 400 invalid_input, why."""
    async with sandbox() as (_, client):
        answer = await client.post("/events/list", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_input"
    assert words in answer.json()["error"]["message"]


async def test_a_hundred_ids_are_fine_and_the_answer_has_no_pagination():
    """100 values in a filter are allowed; the answer is events only (no cursor, no pagination)."""
    async with sandbox() as (_, client):
        answer = await client.post(
            "/events/list", json={"since": "2027-01-01T00:00:00Z", "device_ids": ["d"] * 100}
        )
    assert answer.status_code == 200
    assert set(answer.json()) == {"events", "ok"}


async def test_events_list_needs_a_key():
    """/events/list is authenticated like Seam's other paths."""
    async with sandbox() as (_, client):
        answer = await client.post(
            "/events/list", json={"since": "2027-01-01T00:00:00Z"}, headers={"Authorization": ""}
        )
    assert answer.status_code == 401


async def test_late_and_seeded_codes_record_events_and_reset_forgets_them():
    """A late create records created when carried out; seeded codes record theirs; reset clears."""
    async with sandbox() as (state, client):
        await client.post("/_sandbox/configure", json={"late": 1.0, "late_after": 30})
        late, _ = await create_stay(client, state, CABIN, expect=504)
        quiet = await list_events(client, since="2000-01-01T00:00:00Z")
        state.clock.advance(31)
        carried = await list_events(client, since="2000-01-01T00:00:00Z")
        seed = {"per_door": 2, "device_ids": [door(state, *CABIN)]}
        await client.post("/_sandbox/seed_codes", json=seed)
        seeded = await list_events(client, since="2000-01-01T00:00:00Z", event_type=CREATED)
        stats = (await client.get("/_sandbox/stats")).json()
        await client.post("/_sandbox/reset")
        after_reset = await list_events(client, since="2000-01-01T00:00:00Z")
    assert late is None
    assert quiet == []
    assert [e["event_type"] for e in carried] == [CREATED]
    assert len(seeded) == 3
    assert stats["events"] == {"recorded": 3, "by_type": {CREATED: 3}}
    assert after_reset == []


async def test_a_code_gone_from_the_sandbox_records_nothing_more():
    """Lifecycle events are not recorded for a code the sandbox no longer holds."""
    async with sandbox() as (state, client):
        code, starts = await create_stay(client, state, CABIN)
        held = state.codes.pop(code["access_code_id"])
        state.codes_by_device[held.device_id].remove(held)
        state.clock.advance((starts - state.clock.now()).total_seconds())
        events = await list_events(client, since=code["created_at"])
    assert [e["event_type"] for e in events] == [CREATED]


async def test_clock_endpoint_records_due_events_at_once():
    """/_sandbox/clock records what falls due (no request to Seam's paths needed)."""
    async with sandbox() as (state, client):
        _, starts = await create_stay(client, state, CABIN)
        ahead = (starts - state.clock.now()).total_seconds()
        await client.post("/_sandbox/clock", json={"advance_seconds": ahead})
        recorded = [e.event_type for e in state.events.events]
    assert recorded == [CREATED, SCHEDULED, SET]
