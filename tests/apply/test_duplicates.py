"""Duplicates found and said: a tag made twice on its door on purpose in the sandbox (a create
carried out later than the settle time, or the sandbox's duplicate control) is said by the
next apply, status, report, pins and the nightly summary, each in its own way.

The loop's clock is virtual (tests/virtual_time.py).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
from collections import Counter

import httpx
import polars as pl
import pytest

from pipeline.apply.duplicates import duplicated_tags
from pipeline.apply.policy import CreatePolicy
from pipeline.apply.run import ApplySettings
from pipeline.commands import export_pins, export_report, status_files, summarise_night
from pipeline.sandbox import Faults
from pipeline.sandbox.handlers import carry_out_late_creates
from pipeline.seam.models import AccessCode
from tests.apply_helpers import SandboxRun, start_sandbox
from tests.generate import make_devices, make_stays
from tests.report.helpers import latest_start, move_sandbox_clock_to, refresh

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]
SHORT_SETTLE = ApplySettings(policy=CreatePolicy(settle_after=5.0))


async def late_duplicates(tmp_path, monkeypatch) -> tuple[SandboxRun, pl.DataFrame, set[str]]:
    """A run whose settle time (5 s) is shorter than the backend's lateness (30 s): the codes
    it sent again are made twice once the late creates are carried out. Returns the sandbox,
    the stays and the tags on their door twice."""
    payload = make_devices(4, seed=61)
    faults = Faults(late=0.3, late_after=30.0)
    run = start_sandbox(payload, tmp_path, monkeypatch, faults=faults, seed=4)
    stays = same_stay_on_each_door(payload, 6)
    await run.apply(stays, SHORT_SETTLE)
    faults.late = 0.0
    run.state.clock.advance(60)
    carry_out_late_creates(run.state)
    doubled = {tag for tag, count in run.tags_on_doors().items() if count > 1}
    assert doubled
    return run, stays, doubled


def same_stay_on_each_door(
    payload: dict, per_door: int, stay: tuple[str, str] = ("2027-02-01", "2027-02-05")
) -> pl.DataFrame:
    """``per_door`` reservations on each door, all from check-in to check-out ``stay`` (by
    default 2027-02-01 to 2027-02-05, so that one moment finds every code set, with its PIN,
    and its window open)."""
    doors = [d["device_id"] for d in payload["devices"] for _ in range(per_door)]
    return pl.DataFrame(
        {
            "reservation_id": [f"R{n}" for n in range(len(doors))],
            "device_id": doors,
            "check_in": [stay[0]] * len(doors),
            "check_out": [stay[1]] * len(doors),
        }
    )


# Windows open for weeks from the tests' clock (2026-12-07): later looks fall within them.
THREE_WEEKS = ("2026-12-20", "2027-01-10")


def duplicate_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "pipeline.apply.duplicates" and record.levelno == logging.ERROR
    ]


async def test_a_late_duplicate_is_said_by_the_next_apply(tmp_path, monkeypatch, caplog):
    """The next apply on the same file looks again at the doors of the codes it sent twice,
    finds each doubled tag, and says it: reason duplicate_on_door naming both codes, one line
    on stderr for the run, exit 1; nothing is sent."""
    run, stays, doubled = await late_duplicates(tmp_path, monkeypatch)
    creates = run.creates()
    caplog.clear()
    again = await run.apply(stays, SHORT_SETTLE)
    results = again.result.results
    said = results.filter(pl.col("reason") == "duplicate_on_door")
    assert set(said["idempotency_tag"]) == doubled
    assert set(said["outcome"]) == {"already_created"}
    codes_of = {}
    for code in run.state.codes.values():
        codes_of.setdefault(code.name, []).append(code.access_code_id)
    for row in said.iter_rows(named=True):
        carriers = next(ids for name, ids in codes_of.items() if row["idempotency_tag"] in name)
        assert row["message"].startswith(
            f"{len(carriers)} codes on door {row['door_name']} carry tag"
        )
        assert all(code_id in row["message"] for code_id in carriers)
        assert f"{row['access_code_id']} (the ledger's)" in row["message"]
    assert again.exit_code == 1
    assert run.creates() == creates
    [line] = duplicate_lines(caplog)
    assert line.startswith(f"{len(doubled)} of our tags ")
    assert "on more than one code of its door" in line


async def test_a_late_duplicate_is_said_by_status_report_pins_and_the_summary(
    tmp_path, monkeypatch, caplog
):
    """status looks at those doors too: it says the duplicates (one line) and exits 1, with
    the codes' PINs once set; report lists each (every format, no PIN) and exits 1; pins warns
    on each row, both PINs named; the nightly summary counts them as new trouble once."""
    run, _, doubled = await late_duplicates(tmp_path, monkeypatch)
    start = latest_start(run) + dt.timedelta(minutes=5)
    move_sandbox_clock_to(run, start)
    caplog.clear()
    status = await refresh(run, start)
    assert status.exit_code == 1
    assert set(status.result.duplicates["idempotency_tag"]) == doubled
    [line] = duplicate_lines(caplog)
    assert f"{len(doubled)} of our tags" in line

    report = await export_report(ledger_path=run.ledger, fmt="json", as_of=start)
    assert report.exit_code == 1
    section = json.loads(report.report.to_json())["duplicates"]
    assert {row["idempotency_tag"] for row in section} == doubled
    assert {row["reason"] for row in section} == {"duplicate_on_door"}
    assert all(row["codes"] >= 2 for row in section)
    assert all(row["fix"].startswith("codes can't be deleted") for row in section)
    pins_of = {code.access_code_id: code.pin for code in run.state.codes.values()}
    assert not any(pin in json.dumps(section) for pin in pins_of.values())
    folder = tmp_path / "report"
    written = await export_report(ledger_path=run.ledger, fmt="csv", out=folder, as_of=start)
    assert pl.read_csv(folder / "duplicates.csv").height == len(doubled)
    assert written.exit_code == 1

    pins = await export_pins(ledger_path=run.ledger, out=tmp_path / "pins.csv", now=start)
    warned = pins.pins.filter(pl.col("warning").is_not_null())
    assert warned.height == len(doubled)
    for row in warned.iter_rows(named=True):
        named = [code_id for code_id in pins_of if code_id in row["warning"]]
        assert row["warning"].startswith(f"duplicate_on_door: {len(named)} codes on door")
        assert len(named) >= 2
        assert all(f"{code_id} " in row["warning"] for code_id in named)
        assert all(f"PIN {pins_of[code_id]}" in row["warning"] for code_id in named)
        assert "each PIN opens the door until" in row["warning"]

    first = await summarise_night(ledger_path=run.ledger, now=start)
    assert (first.duplicated, first.exit_code) == (len(doubled), 1)
    assert len(first.new["duplicate"]) == len(doubled)
    assert f"{len(doubled)} duplicated on their door ({len(doubled)} new)" in first.lines()[0]
    second = await summarise_night(ledger_path=run.ledger, now=start)
    assert (second.duplicated, second.new, second.exit_code) == (len(doubled), {}, 0)


async def test_a_duplicate_made_with_the_sandbox_control_is_found_by_the_doors_next_look(
    tmp_path, monkeypatch
):
    """The sandbox's duplicate control copies a code on its door; the next apply with a new
    stay on that door looks at it, finds the tag twice and says it (exit 1), and the report
    lists it; doors without work are not listed for it."""
    payload = make_devices(2, seed=62)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    doors = [d["device_id"] for d in payload["devices"]]
    tonight = make_stays([(doors[0], 2), (doors[1], 2)], seed=1)
    first = (await run.apply(tonight)).result.results
    copied = first.filter(pl.col("device_id") == doors[0]).row(0, named=True)
    async with httpx.AsyncClient(transport=run.transport, base_url="http://sandbox") as client:
        answer = await client.post(
            "/_sandbox/duplicate", json={"access_code_id": copied["access_code_id"]}
        )
    assert answer.status_code == 200
    lists = run.state.requests[("/access_codes/list", 200)]
    tomorrow = pl.concat([tonight, make_stays([(doors[0], 1)], seed=2)])
    again = await run.apply(tomorrow)
    results = again.result.results
    said = results.filter(pl.col("reason") == "duplicate_on_door")
    assert said["idempotency_tag"].to_list() == [copied["idempotency_tag"]]
    assert answer.json()["access_code"]["access_code_id"] in said["message"][0]
    assert again.exit_code == 1
    # The door with a new stay was looked at; the other one wasn't (nothing doubtful there).
    assert run.state.requests[("/access_codes/list", 200)] - lists == 1 + 1  # + status refresh
    report = await export_report(ledger_path=run.ledger)
    assert report.report.duplicates["idempotency_tag"].to_list() == [copied["idempotency_tag"]]
    assert report.exit_code == 1


class DoorRefused(httpx.AsyncBaseTransport):
    """Answers a full list of one door's codes 400 (no retry helps); passes the rest on."""

    def __init__(self, inner: httpx.AsyncBaseTransport, device_id: str) -> None:
        self.inner, self.device_id = inner, device_id

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/access_codes/list":
            body = json.loads(request.content or b"{}")
            if body.get("device_id") == self.device_id:
                error = {"type": "invalid_input", "message": "no list today"}
                return httpx.Response(400, json={"error": error, "ok": False})
        return await self.inner.handle_async_request(request)


async def test_status_goes_on_past_a_door_it_cannot_look_at(tmp_path, monkeypatch, caplog):
    """A door whose list fails doesn't stop status's looks at the others: their duplicates
    are found all the same, and one warning names the door (and its site) left for the next
    look, with why."""
    run, _, doubled = await late_duplicates(tmp_path, monkeypatch)
    on_door = {code.device_id for code in run.state.codes.values() if code.name}
    doors_of = {
        tag: {c.device_id for c in run.state.codes.values() if tag in (c.name or "")}
        for tag in doubled
    }
    refused = sorted(on_door)[0]
    run.transport = DoorRefused(run.transport, refused)
    start = latest_start(run) + dt.timedelta(minutes=5)
    move_sandbox_clock_to(run, start)
    caplog.clear()
    status = await refresh(run, start)
    expected = {tag for tag, doors in doors_of.items() if refused not in doors}
    assert expected
    assert expected <= set(status.result.duplicates["idempotency_tag"])
    [warning] = [
        record.getMessage()
        for record in caplog.records
        if record.name == "pipeline.apply.duplicates" and record.levelno == logging.WARNING
    ]
    metadata = run.state.devices[refused]["properties"]["dormakaba_oracode_metadata"]
    assert warning == (
        "could not look at 1 door for duplicates, left for the next look:"
        f" {metadata['door_name']} at {metadata['site_name']} (device_id {refused}): Seam error"
        " invalid_input: no list today [HTTP 400]"
    )


class FullLists(httpx.AsyncBaseTransport):
    """Counts each door's full lists (a device_id, no search); passes everything on."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.doors = inner, Counter[str]()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/access_codes/list":
            body = json.loads(request.content or b"{}")
            if "device_id" in body and "search" not in body and "page_cursor" not in body:
                self.doors[body["device_id"]] += 1
        return await self.inner.handle_async_request(request)


async def copy_a_code(run: SandboxRun, access_code_id: str) -> str:
    """The sandbox's duplicate control: a second code carrying the same tag; its id."""
    async with httpx.AsyncClient(transport=run.transport, base_url="http://sandbox") as client:
        answer = await client.post("/_sandbox/duplicate", json={"access_code_id": access_code_id})
    assert answer.status_code == 200
    return str(answer.json()["access_code"]["access_code_id"])


async def status_at(run: SandboxRun, now: dt.datetime):
    return await status_files(
        ledger_path=run.ledger, out=run.folder / "status.csv", transport=run.transport, now=now
    )


async def test_a_ledger_of_an_earlier_version_has_each_open_door_looked_at_once(
    tmp_path, monkeypatch
):
    """A ledger made before duplicates were recorded: the next status lists every door
    holding an open code once and finds a duplicate made on a door with no work; the status
    after that lists none of them again."""
    payload = make_devices(3, seed=63)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    first = (await run.apply(same_stay_on_each_door(payload, 1, THREE_WEEKS))).result.results
    with sqlite3.connect(run.ledger) as db:  # as an earlier version left it
        db.executescript("DROP TABLE IF EXISTS door_looks; DROP TABLE duplicates;")
    copied = first.row(1, named=True)
    await copy_a_code(run, copied["access_code_id"])
    run.transport = lists = FullLists(run.transport)
    now = dt.datetime.now(dt.UTC)
    status = await status_at(run, now)
    assert status.result.duplicates["idempotency_tag"].to_list() == [copied["idempotency_tag"]]
    assert status.exit_code == 1
    assert lists.doors == Counter({d["device_id"]: 1 for d in payload["devices"]})
    await status_at(run, now + dt.timedelta(hours=1))
    assert lists.doors == Counter({d["device_id"]: 1 for d in payload["devices"]})


async def test_status_lists_no_door_without_a_doubt_however_old_its_look(tmp_path, monkeypatch):
    """Frugal: a door apply looked at, where no create's outcome was ever in doubt, is not
    listed again by status, a week or a month on; a duplicate made there from outside is said
    by the door's next apply look, which lists it anyway before its next create."""
    payload = make_devices(2, seed=64)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    stays = same_stay_on_each_door(payload, 1, THREE_WEEKS)
    first = (await run.apply(stays)).result.results
    copied = first.row(0, named=True)
    await copy_a_code(run, copied["access_code_id"])
    run.transport = lists = FullLists(run.transport)
    now = dt.datetime.now(dt.UTC)
    for later in (dt.timedelta(days=8), dt.timedelta(days=30)):
        status = await status_at(run, now + later)
        assert status.result.duplicates.height == 0
    assert not lists.doors
    new_stays = same_stay_on_each_door(payload, 1, ("2027-01-12", "2027-01-15")).with_columns(
        pl.format("N{}", pl.col("reservation_id"))
    )
    applied = await run.apply(pl.concat([stays, new_stays]))
    assert set(lists.doors) == {d["device_id"] for d in payload["devices"]}
    results = applied.result.results
    row = results.filter(pl.col("idempotency_tag") == copied["idempotency_tag"]).row(0, named=True)
    assert row["reason"] == "duplicate_on_door"


def test_one_code_listed_twice_is_no_duplicate():
    """A list whose pages shifted may name one code twice: counted once by access_code_id, it
    is no duplicate; a second code carrying the tag is."""
    tag = "opl-" + "1" * 20

    def code(code_id: str) -> AccessCode:
        return AccessCode(
            access_code_id=code_id, device_id="door-1", name=f"R1 [{tag}]", status="set"
        )

    assert duplicated_tags([code("c1"), code("c1")], "door-1") == {}
    found = duplicated_tags([code("c1"), code("c1"), code("c2")], "door-1")
    assert [c.access_code_id for c in found[tag]] == ["c1", "c2"]
