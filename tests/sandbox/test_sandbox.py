"""The Seam sandbox: endpoints, door rules, rate limits, faults and the code lifecycle."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import anyio
import httpx
import pytest

from pipeline.sandbox import Faults, SandboxState, create_app
from tests.generate import make_door, make_level
from tests.sandbox_helpers import HV_END, HV_START, KEY, create_body, door, sandbox

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer sk_live_123"}, 401),
        ({"Authorization": "seam_test_key"}, 401),
        ({"Authorization": "Bearer seam_at_token"}, 401),
        ({"Authorization": "Bearer seam_at_token", "seam-workspace": "ws"}, 200),
        (KEY, 200),
    ],
)
async def test_authentication(headers, status):
    """Only a bearer seam_ key (a token: with its workspace) gets in; errors in Seam's shape."""
    async with sandbox() as (_, client):
        client.headers.clear()
        response = await client.post("/devices/list", json={}, headers=headers)
    assert response.status_code == status
    assert response.headers["seam-request-id"].startswith("req_")
    if status == 401:
        assert response.json()["error"]["type"] == "unauthorized"
        assert response.json()["ok"] is False


async def test_devices_list_filters_and_pages():
    """/devices/list filters by type, manufacturer and ids, and pages with a cursor."""
    async with sandbox() as (state, client):
        everything = (await client.post("/devices/list", json={})).json()["devices"]
        seen, body = [], {"device_type": "dormakaba_oracode_door", "limit": 5}
        while True:
            page = (await client.post("/devices/list", json=body)).json()
            seen += [d["device_id"] for d in page["devices"]]
            if not page["pagination"]["has_next_page"]:
                break
            body["page_cursor"] = page["pagination"]["next_page_cursor"]
        two = [door(state, "Alpenhof", "Zimmer 1"), door(state, "Harbor View", "Room 101")]
        by_ids = (await client.post("/devices/list", json={"device_ids": two})).json()["devices"]
        by_maker = (
            await client.post("/devices/list", json={"manufacturer": "dormakaba_oracode"})
        ).json()["devices"]
        by_types = (
            await client.post("/devices/list", json={"device_types": ["august_lock"]})
        ).json()["devices"]
    assert len(everything) == 14
    assert len(seen) == len(set(seen)) == 13
    assert sorted(d["device_id"] for d in by_ids) == sorted(two)
    assert len(by_maker) == 13
    assert [d["display_name"] for d in by_types] == ["Front Gate"]


async def test_get_device_and_lock_and_404():
    """/devices/get and /locks/get answer the device; an unknown id is device_not_found."""
    async with sandbox() as (state, client):
        device_id = door(state, "Harbor View", "Room 101")
        device = (await client.post("/devices/get", json={"device_id": device_id})).json()
        lock = (await client.post("/locks/get", json={"device_id": device_id})).json()
        missing = await client.post("/devices/get", json={"device_id": "nope"})
    assert device["device"]["device_id"] == device_id
    assert lock["lock"] == lock["device"] == device["device"]
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "device_not_found"


async def test_create_get_list_and_action_attempt():
    """A create answers an unset code and a pending attempt that resolves to success."""
    async with sandbox() as (state, client):
        device_id = door(state, "Harbor View", "Room 101")
        created = await client.post(
            "/access_codes/create", json=create_body(device_id, HV_START, HV_END, name="R1 [opl-1]")
        )
        body = created.json()
        code = body["access_code"]
        attempt = await client.post(
            "/action_attempts/get",
            json={"action_attempt_id": body["action_attempt"]["action_attempt_id"]},
        )
        fetched = await client.post(
            "/access_codes/get", json={"access_code_id": code["access_code_id"]}
        )
        listed = await client.post("/access_codes/list", json={"device_id": device_id})
        by_ids = await client.post(
            "/access_codes/list", json={"access_code_ids": [code["access_code_id"]]}
        )
        missing = await client.post("/access_codes/get", json={"access_code_id": "nope"})
    assert created.status_code == 200
    assert (code["status"], code["code"], code["is_offline_access_code"]) == ("unset", None, True)
    assert (code["starts_at"], code["ends_at"]) == (
        "2027-03-12T23:30:00.000Z",
        "2027-03-16T17:30:00.000Z",
    )
    assert code["dormakaba_oracode_metadata"]["user_level_name"] == "Guest 3:30pm-10:30am"
    assert body["action_attempt"]["status"] == "pending"
    assert body["action_attempt"]["action_type"] == "CREATE_ACCESS_CODE"
    assert attempt.json()["action_attempt"]["status"] == "success"
    assert (
        attempt.json()["action_attempt"]["result"]["access_code"]["access_code_id"]
        == code["access_code_id"]
    )
    assert fetched.json()["access_code"]["access_code_id"] == code["access_code_id"]
    assert [c["name"] for c in listed.json()["access_codes"]] == ["R1 [opl-1]"]
    assert len(by_ids.json()["access_codes"]) == 1
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "access_code_not_found"


async def test_list_search_and_pagination():
    """search is a partial, case-insensitive match on the name; pages follow the cursor."""
    async with sandbox(door_rate=None) as (state, client):
        device_id = door(state, "Harbor View", "Room 101")
        for n in range(7):
            start = dt.date(2027, 1, 4) + dt.timedelta(days=3 * n)
            await client.post(
                "/access_codes/create",
                json=create_body(
                    device_id,
                    f"{start}T15:30:00-08:00",
                    f"{start + dt.timedelta(days=2)}T10:30:00-08:00",
                    name=f"guest {n} [opl-{n:04d}]",
                ),
            )
        found = await client.post(
            "/access_codes/list", json={"device_id": device_id, "search": "OPL-0003"}
        )
        pages, body = 0, {"device_id": device_id, "limit": 3}
        names = []
        while True:
            page = (await client.post("/access_codes/list", json=body)).json()
            pages += 1
            names += [c["name"] for c in page["access_codes"]]
            if not page["pagination"]["has_next_page"]:
                break
            body["page_cursor"] = page["pagination"]["next_page_cursor"]
        neither = await client.post("/access_codes/list", json={})
    assert [c["name"] for c in found.json()["access_codes"]] == ["guest 3 [opl-0003]"]
    assert (pages, len(names), len(set(names))) == (3, 7, 7)
    assert neither.status_code == 400


HV = ("Harbor View", "Room 101")
DAY_PASS = ("2027-03-01T00:00:00-08:00", "2027-03-03T23:59:00-08:00")


@pytest.mark.parametrize(
    ("where", "body", "status", "words"),
    [
        (HV, {"starts_at": HV_START, "ends_at": HV_END, "code": "123456"}, 400, "don't send code"),
        (
            HV,
            {"starts_at": HV_START, "ends_at": HV_END, "is_offline_access_code": False},
            400,
            "must be true",
        ),
        (
            HV,
            {"starts_at": HV_START, "ends_at": HV_END, "max_time_rounding": "2h"},
            400,
            "max_time_rounding",
        ),
        (
            HV,
            {"starts_at": "2027-03-12T13:00:00-08:00", "ends_at": HV_END},
            400,
            "does not match any user level",
        ),
        (
            HV,
            {"starts_at": "2027-03-12T15:30:00-08:00", "ends_at": "2027-04-14T10:30:00-07:00"},
            400,
            "31 days",
        ),
        (
            HV,
            {"starts_at": "2025-03-12T15:30:00-08:00", "ends_at": "2025-03-16T10:30:00-07:00"},
            400,
            "future",
        ),
        (HV, {"starts_at": HV_END, "ends_at": HV_START}, 400, "after starts_at"),
        (HV, {"starts_at": "tomorrow", "ends_at": HV_END}, 400, "ISO 8601"),
        (HV, {"ends_at": HV_END}, 400, "starts_at is required"),
        # Manager Master 00:00-00:00 is the only level this fits: master codes can't be created.
        (
            ("Lakeside Lodge", "Cabin 1"),
            {"starts_at": "2027-03-01T00:00:00-05:00", "ends_at": "2027-03-05T00:00:00-05:00"},
            400,
            "does not match",
        ),
        # One hour off (a wrong DST offset) is within the default rounding: accepted, rounded.
        (HV, {"starts_at": "2027-03-12T15:30:00-07:00", "ends_at": HV_END}, 200, ""),
        (
            HV,
            {"starts_at": DAY_PASS[0], "ends_at": DAY_PASS[1], "max_time_rounding": "1d"},
            200,
            "",
        ),
        (
            HV,
            {
                "starts_at": HV_START,
                "ends_at": HV_END,
                "use_offline_access_code": True,
                "is_offline_access_code": None,
            },
            200,
            "",
        ),
        (
            HV,
            {"starts_at": "2027-04-02T15:30:00-07:00", "ends_at": "2027-04-16T10:30:00-07:00"},
            200,
            "",
        ),
        (
            ("Alpenhof", "Zimmer 1"),
            {"starts_at": "2027-03-26T15:00:00+01:00", "ends_at": "2027-03-30T11:00:00+02:00"},
            200,
            "",
        ),
        (
            ("Alpenhof", "Haupteingang"),
            {"starts_at": "2027-03-26T15:00:00+01:00", "ends_at": "2027-03-30T11:00:00+02:00"},
            400,
            "can't program offline access codes",
        ),
    ],
)
async def test_create_rules(where, body, status, words):
    """Create enforces the door's rules and explains a refusal."""
    async with sandbox() as (state, client):
        request = {**create_body(door(state, *where), "", ""), **body}
        request = {k: v for k, v in request.items() if v is not None and v != ""}
        response = await client.post("/access_codes/create", json=request)
    assert response.status_code == status, response.text
    if status == 400:
        assert words in response.json()["error"]["message"]
        assert response.json()["error"]["type"] == "invalid_input"


async def test_rounding_is_recorded_and_applied():
    """A window an hour off is moved onto the level (what the lock really uses) and recorded."""
    async with sandbox() as (state, client):
        response = await client.post(
            "/access_codes/create",
            json=create_body(door(state, *HV), "2027-03-12T15:30:00-07:00", HV_END),
        )
        codes = (await client.get("/_sandbox/codes")).json()["codes"]
    assert response.json()["access_code"]["starts_at"] == "2027-03-12T23:30:00.000Z"
    assert codes[0]["rounded_by_s"] == 3600


@pytest.mark.parametrize(
    ("starts_at", "ends_at", "status", "rounded_by_s"),
    [
        # Seam's own example on a 4pm-10am slot is 3:45 PM -> 10:15 AM; Lakeside's levels are
        # 4pm-11am and 6pm-12pm: 15 and 45 minutes off the first.
        ("2027-02-10T15:45:00-05:00", "2027-02-14T10:15:00-05:00", 200, 2700),
        ("2027-02-10T15:00:00-05:00", "2027-02-14T11:00:00-05:00", 200, 3600),
        ("2027-02-10T14:59:00-05:00", "2027-02-14T11:00:00-05:00", 400, None),
        ("2027-02-10T16:00:00-05:00", "2027-02-14T12:01:00-05:00", 400, None),
    ],
)
async def test_booking_times_are_rounded_within_an_hour_as_seam_does(
    starts_at, ends_at, status, rounded_by_s
):
    """A booking within an hour (60 minutes itself included) of a slot at both ends gets the
    slot's exact window, the rounding recorded; beyond it, a 400 "No time slots found"."""
    async with sandbox() as (state, client):
        device_id = door(state, "Lakeside Lodge", "Cabin 1")
        response = await client.post(
            "/access_codes/create", json=create_body(device_id, starts_at, ends_at)
        )
        codes = (await client.get("/_sandbox/codes")).json()["codes"]
    assert response.status_code == status, response.text
    if status == 400:
        assert response.json()["error"]["message"].startswith("No time slots found: the window")
        assert codes == []
        return
    code = response.json()["access_code"]
    assert (code["starts_at"], code["ends_at"]) == (
        "2027-02-10T21:00:00.000Z",
        "2027-02-14T16:00:00.000Z",
    )
    assert codes[0]["rounded_by_s"] == rounded_by_s


async def create_many(
    client, device_id, count, first=dt.date(2027, 1, 1), times=("15:30", "10:30"), offset="-08:00"
):
    """``count`` one-night codes on consecutive days from ``first`` at the level's ``times``."""
    answers = []
    for n in range(count):
        start = first + dt.timedelta(days=n)
        end = start + dt.timedelta(days=1)
        body = create_body(
            device_id, f"{start}T{times[0]}:00{offset}", f"{end}T{times[1]}:00{offset}"
        )
        answers.append(await client.post("/access_codes/create", json=body))
    return answers


async def test_code_limit_names_the_limit():
    """A door at its code-count limit refuses another code, naming the limit."""
    async with sandbox(door_rate=None) as (state, client):
        device_id = door(state, "Harbor View", "Room 102")  # max_active_codes_supported: 40
        answers = await create_many(client, device_id, 41)
    assert [a.status_code for a in answers] == [200] * 40 + [400]
    error = answers[-1].json()["error"]
    assert error["type"] == "no_space_for_access_code_on_device"
    assert "limit of 40" in error["message"]


async def test_hidden_code_limit_from_the_sandbox_section():
    """A limit the device doesn't report (the file's sandbox section) is enforced too."""
    async with sandbox(door_rate=None) as (state, client):
        device_id = door(state, "Lakeside Lodge", "Cabin 2")
        answers = await create_many(
            client, device_id, 21, times=("16:00", "11:00"), offset="-05:00"
        )
    assert [a.status_code for a in answers] == [200] * 20 + [400]
    assert "max_active_codes_supported" not in state.devices[device_id]["properties"]


async def test_door_rate_limit_429_with_retry_after():
    """The 11th quick create on a door is a 429 naming the door limit; other doors go on."""
    async with sandbox() as (state, client):
        answers = await create_many(client, door(state, *HV), 11)
        other = await create_many(client, door(state, "Harbor View", "Room 103"), 1)
        state.clock.advance(60)
        later = await create_many(client, door(state, *HV), 1, first=dt.date(2027, 6, 1))
    assert [a.status_code for a in answers] == [200] * 10 + [429]
    limited = answers[-1]
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.json()["error"]["data"]["limit"] == "door"
    assert "10 access code creations per 60 s" in limited.json()["error"]["message"]
    assert other[0].status_code == 200
    assert later[0].status_code == 200
    assert len(state.codes) == 12


async def test_global_rate_limit():
    """Over the global requests-per-second limit every path answers 429 naming it."""
    async with sandbox(global_rate=5) as (_, client):
        answers = [await client.post("/devices/list", json={}) for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert answers[-1].json()["error"]["data"]["limit"] == "global"
    assert answers[-1].headers["retry-after"] == "1"


async def test_fail_before_creates_nothing():
    """--fail-before answers 503 without acting."""
    async with sandbox(faults=Faults(fail_before=1.0)) as (state, client):
        answer = await client.post(
            "/access_codes/create", json=create_body(door(state, *HV), HV_START, HV_END)
        )
    assert answer.status_code == 503
    assert state.codes == {}


async def test_drop_after_creates_the_code_but_loses_the_answer():
    """--drop-after: the code exists, the client gets a 502/504 or a broken answer."""
    async with sandbox(faults=Faults(drop_after=1.0), door_rate=None) as (state, client):
        answers = await create_many(client, door(state, *HV), 12)
    kinds = set()
    for answer in answers:
        if answer.status_code in (502, 504):
            kinds.add(answer.status_code)
            continue
        with pytest.raises(json.JSONDecodeError):
            answer.json()
        kinds.add("broken")
    assert kinds == {502, 504, "broken"}
    assert len(state.codes) == 12


async def test_faults_are_reproducible_with_a_seed():
    """The same seed and the same requests give the same faults."""
    outcomes = []
    for _ in range(2):
        async with sandbox(
            faults=Faults(fail_before=0.3, drop_after=0.3), seed=42, door_rate=None
        ) as (state, client):
            outcomes.append(
                [a.status_code for a in await create_many(client, door(state, *HV), 20)]
            )
    assert outcomes[0] == outcomes[1]
    assert len(set(outcomes[0])) > 1


async def test_lifecycle_unset_setting_set_with_prefixed_pin():
    """A code is unset, then setting, then set with a six-digit PIN that starts with its prefix."""
    async with sandbox() as (state, client):
        device_id = door(state, "Lakeside Lodge", "Cabin 1")
        zone = ZoneInfo("America/New_York")
        day = (state.clock.now() + dt.timedelta(days=3)).astimezone(zone).date()
        starts = dt.datetime.combine(day, dt.time(16), zone)
        ends = dt.datetime.combine(day + dt.timedelta(days=2), dt.time(11), zone)
        created = await client.post(
            "/access_codes/create",
            json=create_body(device_id, starts.isoformat(), ends.isoformat()),
        )
        code_id = created.json()["access_code"]["access_code_id"]

        async def look():
            answer = await client.post("/access_codes/get", json={"access_code_id": code_id})
            return answer.json()["access_code"]

        first = await look()
        state.clock.advance((starts - state.clock.now()).total_seconds() - 12 * 3600)
        middle = await look()
        state.clock.advance(11.5 * 3600)
        last = await look()
    assert (first["status"], first["code"]) == ("unset", None)
    assert (middle["status"], middle["code"]) == ("setting", None)
    assert last["status"] == "set"
    assert len(last["code"]) == 6
    assert last["code"].startswith("1")  # Guest 4pm-11am has prefix 1


async def test_stuck_door_reports_failed_to_set():
    """A door listed as stuck never sets its codes and says so in the code's errors."""
    async with sandbox() as (state, client):
        device_id = door(state, "Alpenhof", "Zimmer 3")
        created = await client.post(
            "/access_codes/create",
            json=create_body(device_id, "2027-03-26T15:00:00+01:00", "2027-03-30T11:00:00+02:00"),
        )
        state.clock.advance(
            (dt.datetime(2027, 3, 26, 14, tzinfo=dt.UTC) - state.clock.now()).total_seconds()
        )
        code = (
            await client.post(
                "/access_codes/get",
                json={"access_code_id": created.json()["access_code"]["access_code_id"]},
            )
        ).json()["access_code"]
    assert code["status"] == "unset"
    assert [e["error_code"] for e in code["errors"]] == ["failed_to_set_on_device"]


async def test_inspection_and_reset():
    """/_sandbox/stats counts requests by path and status; reset forgets codes and counts."""
    async with sandbox() as (state, client):
        await create_many(client, door(state, *HV), 11)
        await client.post("/nope", json={})
        stats = (await client.get("/_sandbox/stats")).json()
        await client.post("/_sandbox/reset")
        after = (await client.get("/_sandbox/stats")).json()
    counts = {(r["path"], r["status"]): r["count"] for r in stats["requests"]}
    assert counts == {
        ("/access_codes/create", 200): 10,
        ("/access_codes/create", 429): 1,
        ("/nope", 404): 1,
    }
    assert stats["codes_per_door"] == {door(state, *HV): 10}
    assert (after["codes"], after["requests"]) == (0, [])


async def test_only_post_and_json():
    """GET on a Seam path is refused; a body that isn't JSON is invalid_input."""
    async with sandbox() as (_, client):
        get = await client.get("/devices/list")
        bad = await client.post("/devices/list", content=b"{nope")
    assert get.status_code == 405
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_input"


async def test_holds_100000_codes():
    """The sandbox holds 100,000 codes and lists one door's codes, searchable."""
    async with sandbox() as (state, client):
        seeded = (await client.post("/_sandbox/seed_codes", json={"per_door": 8_334})).json()
        device_id = door(state, *HV)
        listed = (await client.post("/access_codes/list", json={"device_id": device_id})).json()
        found = (
            await client.post(
                "/access_codes/list", json={"device_id": device_id, "search": "seeded 8333"}
            )
        ).json()
    assert seeded["codes"] >= 100_000
    assert len(listed["access_codes"]) == 8_334
    assert [c["name"] for c in found["access_codes"]] == ["seeded 8333"]


async def test_stored_window_must_fit_31_days():
    """A request rounded onto a level window over 31 days is refused: the lock keeps that one."""
    la = "[America/Los_Angeles]"
    payload = {
        "devices": [
            make_door(
                "d1",
                "Room",
                "S",
                "America/Los_Angeles",
                [make_level("Day", 2, f"07:00:00{la}", f"19:00:00{la}")],
            )
        ]
    }
    app = create_app(SandboxState.from_payload(payload))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://s", headers=KEY) as client:
        answer = await client.post(
            "/access_codes/create",
            json=create_body(
                "d1",
                "2027-01-01T09:00:00-08:00",
                "2027-02-01T09:00:00-08:00",
                max_time_rounding="1d",
            ),
        )
    assert answer.status_code == 400
    assert "31 days, 12:00:00" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/access_codes/create", {"max_time_rounding": []}),
        ("/access_codes/create", {"name": 123}),
        (
            "/access_codes/create",
            {"starts_at": "9999-12-29T15:30:00-08:00", "ends_at": "9999-12-31T10:30:00-08:00"},
        ),
        ("/access_codes/list", {"page_cursor": 5}),
        ("/devices/list", {"limit": float("nan")}),
    ],
)
async def test_wrong_types_are_400_not_500(path, body):
    """Malformed values get a 400 that names the field, never a server error."""
    async with sandbox() as (state, client):
        base = create_body(door(state, *HV), HV_START, HV_END) if path != "/devices/list" else {}
        request = {**base, **body}
        answer = await client.post(path, content=json.dumps(request))
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_input"


async def codes_on(client, device_id):
    """What /access_codes/list and /_sandbox/codes show for a door, as lists of names."""
    listed = await client.post("/access_codes/list", json={"device_id": device_id})
    everything = (await client.get("/_sandbox/codes")).json()["codes"]
    return (
        [c["name"] for c in listed.json()["access_codes"]],
        [c["name"] for c in everything if c["device_id"] == device_id],
    )


@pytest.mark.virtual_time
async def test_late_create_answers_504_and_the_code_appears_after_late_after():
    """--late: the create answers a 504 in Seam's shape; the code exists late_after s later."""
    async with sandbox(faults=Faults(late=1.0, late_after=30)) as (state, client):
        device_id = door(state, *HV)
        answer = await client.post(
            "/access_codes/create", json=create_body(device_id, HV_START, HV_END, name="late")
        )
        at_once = await codes_on(client, device_id)
        pending = (await client.get("/_sandbox/stats")).json()["late"]
        await anyio.sleep(29)
        before = await codes_on(client, device_id)
        await anyio.sleep(2)
        after = await codes_on(client, device_id)
        done = (await client.get("/_sandbox/stats")).json()["late"]
    assert answer.status_code == 504
    assert answer.json() == {
        "error": {"type": "gateway_timeout", "message": answer.json()["error"]["message"]},
        "ok": False,
    }
    assert answer.headers["seam-request-id"].startswith("req_")
    assert at_once == before == ([], [])
    assert pending == {
        "answered_504": 1,
        "carried_out": 0,
        "refused": 0,
        "refused_by_type": {},
        "pending": 1,
    }
    assert after == (["late"], ["late"])
    assert (done["carried_out"], done["pending"]) == (1, 0)


async def test_every_create_is_late_at_1_and_clock_advance_carries_them_out():
    """late=1.0: every create answers 504; /_sandbox/clock past late_after creates them all."""
    async with sandbox(faults=Faults(late=1.0, late_after=45)) as (state, client):
        answers = await create_many(client, door(state, *HV), 6)
        await client.post("/_sandbox/clock", json={"advance_seconds": 40})
        early = (await client.get("/_sandbox/stats")).json()
        await client.post("/_sandbox/clock", json={"advance_seconds": 5})
        late = (await client.get("/_sandbox/stats")).json()
    assert [a.status_code for a in answers] == [504] * 6
    assert (early["codes"], early["late"]["pending"]) == (0, 6)
    assert (late["codes"], late["late"]["carried_out"], late["late"]["pending"]) == (6, 6, 0)


async def test_late_create_counts_against_the_door_rate_when_it_arrives():
    """A late create takes its place in the door's rate window on arrival: the 11th is a 429."""
    async with sandbox(faults=Faults(late=1.0, late_after=5)) as (state, client):
        answers = await create_many(client, door(state, *HV), 11)
        state.clock.advance(5)
        stats = (await client.get("/_sandbox/stats")).json()
    assert [a.status_code for a in answers] == [504] * 10 + [429]
    assert (stats["codes"], stats["late"]["answered_504"]) == (10, 10)


async def test_late_create_the_door_limit_refuses_creates_nothing():
    """The door's code-count limit is checked when a late create is carried out, not on arrival."""
    async with sandbox(door_rate=None) as (state, client):
        device_id = door(state, "Harbor View", "Room 102")  # max_active_codes_supported: 40
        await client.post("/_sandbox/configure", json={"late": 1.0, "late_after": 60})
        late = await create_many(client, device_id, 1, first=dt.date(2027, 6, 1))
        await client.post("/_sandbox/configure", json={"late": 0.0})
        on_time = await create_many(client, device_id, 40)
        state.clock.advance(60)
        stats = (await client.get("/_sandbox/stats")).json()
    assert late[0].status_code == 504
    assert [a.status_code for a in on_time] == [200] * 40
    assert stats["codes_per_door"] == {device_id: 40}
    assert stats["late"] == {
        "answered_504": 1,
        "carried_out": 0,
        "refused": 1,
        "refused_by_type": {"no_space_for_access_code_on_device": 1},
        "pending": 0,
    }


async def test_late_creates_are_seeded():
    """The same seed and the same requests make the same creates late, and only some of them."""
    outcomes = []
    for _ in range(2):
        async with sandbox(faults=Faults(late=0.4), seed=7, door_rate=None) as (state, client):
            outcomes.append(
                [a.status_code for a in await create_many(client, door(state, *HV), 20)]
            )
    assert outcomes[0] == outcomes[1]
    assert set(outcomes[0]) == {200, 504}


@pytest.mark.virtual_time
async def test_list_lag_hides_a_new_code_from_list_until_it_has_passed():
    """--list-lag: /access_codes/list (by door, by ids, with search) shows a code only after the
    lag; /access_codes/get and /_sandbox/codes show it at once."""
    async with sandbox(faults=Faults(list_lag=10)) as (state, client):
        device_id = door(state, *HV)
        created = await client.post(
            "/access_codes/create", json=create_body(device_id, HV_START, HV_END, name="new one")
        )
        code_id = created.json()["access_code"]["access_code_id"]

        async def lists():
            bodies = [
                {"device_id": device_id},
                {"device_id": device_id, "search": "new"},
                {"access_code_ids": [code_id]},
                {"access_code_ids": [code_id], "search": "new"},
            ]
            answers = [await client.post("/access_codes/list", json=b) for b in bodies]
            return [len(a.json()["access_codes"]) for a in answers]

        early = await lists()
        got = await client.post("/access_codes/get", json={"access_code_id": code_id})
        inspected = (await client.get("/_sandbox/codes")).json()["codes"]
        await anyio.sleep(9)
        still = await lists()
        await anyio.sleep(1.5)
        later = await lists()
    assert created.status_code == 200
    assert early == still == [0, 0, 0, 0]
    assert got.status_code == 200
    assert [c["access_code_id"] for c in inspected] == [code_id]
    assert later == [1, 1, 1, 1]


async def test_configure_sets_late_late_after_and_list_lag():
    """/_sandbox/configure sets late, late_after and list_lag, shows them, refuses bad values."""
    faults = Faults()
    async with sandbox(faults=faults) as (_, client):
        answer = await client.post(
            "/_sandbox/configure", json={"late": 0.25, "late_after": 12, "list_lag": 3.5}
        )
        refused = await client.post(
            "/_sandbox/configure", json={"late": 2, "list_lag": 1, "drop_after": 0.5}
        )
        negative = await client.post("/_sandbox/configure", json={"late_after": -1})
        shown = await client.post("/_sandbox/configure", json={})
    assert answer.json() == {
        "fail_before": 0.0,
        "drop_after": 0.0,
        "late": 0.25,
        "late_after": 12.0,
        "list_lag": 3.5,
        "webhook_url": None,
        "webhook_secret_set": False,
        "webhook_retry_scale": 0.01,
    }
    assert (refused.status_code, negative.status_code) == (400, 400)
    assert shown.json() == answer.json()
    assert (faults.late, faults.late_after, faults.list_lag) == (0.25, 12.0, 3.5)
