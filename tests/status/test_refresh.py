"""status: codes refreshed from the sandbox with its clock moved forward; what needs a person."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import stat

import httpx
import polars as pl
import pytest

from pipeline.cli import main
from pipeline.commands import export_pins
from pipeline.ledger.store import Ledger
from pipeline.webhooks.events import read_event
from tests.apply_helpers import start_sandbox
from tests.generate import make_devices
from tests.report.helpers import earliest_start, latest_start, move_sandbox_clock_to, refresh
from tests.webhooks.helpers import event

pytestmark = pytest.mark.virtual_time

# Stays from 2027-02-01 (check-in 15:00 local) to 2027-02-05.
CHECK_IN = "2027-02-01"


def stays(payload: dict, per_door: int = 2) -> pl.DataFrame:
    doors = [device["device_id"] for device in payload["devices"]]
    return pl.DataFrame(
        {
            "reservation_id": [f"R{n}" for n in range(len(doors) * per_door)],
            "device_id": [door for door in doors for _ in range(per_door)],
            "check_in": [CHECK_IN] * (len(doors) * per_door),
            "check_out": ["2027-02-05"] * (len(doors) * per_door),
        }
    )


@pytest.mark.anyio
async def test_codes_get_set_and_their_pins_after_the_clock_passes_their_start(
    tmp_path, monkeypatch
):
    """Just after apply the codes are unset without PINs; past starts_at, status finds them set
    with their PINs, records each change as an event, and exits 0."""
    payload = make_devices(3, seed=31)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    applied = await run.apply(stays(payload))
    assert set(applied.result.results["code_status"]) == {"unset"}
    assert applied.result.results["code"].null_count() == 6
    start = latest_start(run)  # the doors are in different zones
    move_sandbox_clock_to(run, start + dt.timedelta(minutes=5))
    status = await refresh(run, start + dt.timedelta(minutes=5))
    codes = status.result.codes
    assert codes.height == 6
    assert set(codes["code_status"]) == {"set"}
    assert set(codes["previous_status"]) == {"unset"}
    pins = {code.access_code_id: code.pin for code in run.state.codes.values()}
    assert dict(codes.select("access_code_id", "code").rows()) == pins
    assert status.exit_code == 0
    assert stat.S_IMODE(os.stat(status.out).st_mode) == 0o600
    with sqlite3.connect(run.ledger) as db:
        stored = db.execute(
            "SELECT code, code_status FROM codes ORDER BY access_code_id"
        ).fetchall()
        events = db.execute("SELECT detail FROM events WHERE kind = 'status'").fetchall()
    assert sorted(stored) == sorted((pin, "set") for pin in pins.values())
    assert [json.loads(e[0])["to"] for e in events] == ["set"] * 6
    again = await refresh(run, start + dt.timedelta(minutes=6))
    assert again.result.codes.height == 0  # set with a PIN and no error: final


@pytest.mark.anyio
async def test_a_door_that_never_sets_its_codes_needs_attention(tmp_path, monkeypatch):
    """Seam's failed_to_set_on_device error on a code: needs_attention seam_error, exit 1."""
    payload = make_devices(2, seed=32)
    stuck = payload["devices"][0]["device_id"]
    payload["sandbox"] = {"stuck_devices": [stuck]}
    run = start_sandbox(payload, tmp_path, monkeypatch)
    await run.apply(stays(payload))
    start = earliest_start(run)
    move_sandbox_clock_to(run, start + dt.timedelta(hours=2))
    status = await refresh(run, start + dt.timedelta(hours=2))
    attention = status.result.needing_attention
    assert status.exit_code == 1
    assert set(attention["device_id"]) == {stuck}
    assert attention.height == 2
    assert attention["needs_attention"].str.starts_with("seam_error: failed_to_set_on_device").all()


@pytest.mark.anyio
async def test_a_code_still_setting_an_hour_after_its_start_needs_attention(tmp_path, monkeypatch):
    """Not `set` `attention_after` past starts_at: not_set_in_time; before that: nothing."""
    payload = make_devices(1, seed=33)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    await run.apply(stays(payload, per_door=1))
    start = earliest_start(run)
    move_sandbox_clock_to(run, start - dt.timedelta(hours=12))  # Seam: `setting`
    early = await refresh(run, start + dt.timedelta(minutes=30))
    assert early.result.codes["code_status"].to_list() == ["setting"]
    assert early.exit_code == 0
    late = await refresh(run, start + dt.timedelta(hours=2))
    assert late.result.codes["needs_attention"][0].startswith("not_set_in_time: still setting")
    assert late.exit_code == 1


@pytest.mark.anyio
async def test_a_code_seam_no_longer_lists_needs_attention(tmp_path, monkeypatch):
    """A created code Seam doesn't list: missing_on_seam, once it is older than a list may lag
    behind a create (10 minutes); before that it is only asked for again."""
    payload = make_devices(1, seed=34)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    await run.apply(stays(payload))
    gone = next(iter(run.state.codes.values()))
    del run.state.codes[gone.access_code_id]
    run.state.codes_by_device[gone.device_id].remove(gone)
    soon = await refresh(run, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=9))
    assert soon.result.needing_attention.is_empty()
    status = await refresh(run, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=11))
    attention = status.result.needing_attention
    assert attention["access_code_id"].to_list() == [gone.access_code_id]
    assert attention["needs_attention"][0].startswith("missing_on_seam")


def test_status_without_a_ledger_exits_2(tmp_path, capsys, monkeypatch):
    """No ledger at the path: exit 2 and one line."""
    monkeypatch.setenv("SEAM_API_KEY", "seam_test_key")
    code = main(["status", "--ledger", str(tmp_path / "none.sqlite")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [
        f"error: ledger {tmp_path / 'none.sqlite'} does not exist"
        " (check --ledger, else ORACODE_LEDGER; apply creates the ledger)"
    ]


@pytest.mark.anyio
async def test_a_pin_a_webhook_disputed_is_settled_by_status_asking_seam(tmp_path, monkeypatch):
    """A set code whose webhook event gave another PIN needs attention (pin_changed), so status
    asks Seam for it although it is set: Seam's PIN stays, the other is forgotten, and the code
    needs nothing more."""
    payload = make_devices(1, seed=33)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    await run.apply(stays(payload, per_door=1))
    start = latest_start(run) + dt.timedelta(minutes=5)
    move_sandbox_clock_to(run, start)
    await refresh(run, start)
    [code] = run.state.codes.values()
    ledger = await Ledger.open(run.ledger)
    try:
        forged = event(
            "set_on_device", code.access_code_id, device_id=code.device_id, code="999999"
        )
        assert (await ledger.record_seam_event(read_event(forged))).outcome == "applied"
    finally:
        await ledger.close()
    with sqlite3.connect(run.ledger) as db:
        flagged = db.execute("SELECT code, reported_code, needs_attention FROM codes").fetchone()
    assert flagged[:2] == (code.pin, "999999")
    assert flagged[2].startswith("pin_changed: ")
    settled = await refresh(run, start + dt.timedelta(minutes=1))
    assert settled.result.codes["access_code_id"].to_list() == [code.access_code_id]
    assert settled.exit_code == 0
    with sqlite3.connect(run.ledger) as db:
        after = db.execute("SELECT code, reported_code, needs_attention FROM codes").fetchone()
    assert after == (code.pin, None, None)


async def record_events(run, *events: dict) -> list[str]:
    """Record signed events in the run's ledger, as the receiver would; their outcomes."""
    ledger = await Ledger.open(run.ledger)
    try:
        return [(await ledger.record_seam_event(read_event(sent))).outcome for sent in events]
    finally:
        await ledger.close()


def code_row(run) -> tuple:
    with sqlite3.connect(run.ledger) as db:
        return db.execute("SELECT code, reported_code, needs_attention FROM codes").fetchone()


@pytest.mark.anyio
async def test_a_pin_dispute_stays_while_seam_has_no_pin(tmp_path, monkeypatch):
    """Before its window Seam lists the code without a PIN; events gave it 111111, then
    222222 (pin_changed). status asking Seam then settles nothing: the attention and both PINs
    stay, and pins doesn't hand the row out; once Seam has a PIN, Seam's wins."""
    payload = make_devices(1, seed=34)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    await run.apply(stays(payload, per_door=1))
    [code] = run.state.codes.values()

    def set_with(pin: str, hour: int) -> dict:
        at = f"2026-12-07T1{hour}:00:00Z"
        return event("set_on_device", code.access_code_id, device_id=code.device_id, code=pin,
                     occurred_at=at)  # fmt: skip

    assert await record_events(run, set_with("111111", 0), set_with("222222", 1)) == [
        "applied",
        "applied",
    ]
    disputed = code_row(run)
    assert disputed[:2] == ("111111", "222222")
    assert disputed[2].startswith("pin_changed: ")
    now = dt.datetime.now(dt.UTC)
    status = await refresh(run, now)
    assert status.exit_code == 1
    assert code_row(run) == disputed
    pins = await export_pins(ledger_path=run.ledger, out=tmp_path / "pins.csv", now=now)
    [row] = pins.pins.to_dicts()
    assert row["ready"] is False
    assert row["why_not_ready"].startswith("needs_attention: pin_changed: ")
    assert "(recorded PIN 111111, the event's PIN 222222)" in row["why_not_ready"]
    start = latest_start(run) + dt.timedelta(minutes=5)
    move_sandbox_clock_to(run, start)
    settled = await refresh(run, start)
    assert settled.exit_code == 0
    assert code_row(run) == (code.pin, None, None)


class PinReplaced(httpx.AsyncBaseTransport):
    """Gives every code in Seam's lists the PIN ``pin`` (whatever Seam said)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, pin: str) -> None:
        self.inner, self.pin = inner, pin

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        answer = await self.inner.handle_async_request(request)
        if request.url.path != "/access_codes/list":
            return answer
        body = json.loads(await answer.aread())
        for listed in body.get("access_codes", []):
            listed["code"] = self.pin
        return httpx.Response(answer.status_code, headers={"seam-request-id": "r"}, json=body)


@pytest.mark.anyio
async def test_a_value_that_is_not_a_pin_is_never_recorded(tmp_path, monkeypatch, caplog):
    """A first PIN from an event that is a formula, and a PIN in Seam's own answer that is
    one, are never recorded nor logged: the code needs attention (pin_unexpected, naming the
    event or the answer) and pins doesn't hand it out; a PIN from Seam settles it."""
    formula = '=HYPERLINK("http://x")'
    payload = make_devices(1, seed=35)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    await run.apply(stays(payload, per_door=1))
    [code] = run.state.codes.values()
    sent = event("set_on_device", code.access_code_id, device_id=code.device_id, code=formula)
    assert await record_events(run, sent) == ["applied"]
    assert code_row(run) == (
        None,
        None,
        f"pin_unexpected: Seam's event {sent['event_id']} gives this code a PIN that isn't 4 to"
        " 10 digits: it is not recorded, nor handed out, until Seam gives one that is (status"
        " asks)",
    )
    start = latest_start(run) + dt.timedelta(minutes=5)
    move_sandbox_clock_to(run, start)
    inner = run.transport
    run.transport = PinReplaced(inner, "12ab34")
    status = await refresh(run, start)
    assert status.exit_code == 1
    assert code_row(run) == (
        None,
        None,
        f"pin_unexpected: Seam's answer of {start.isoformat(timespec='seconds')} gives this code"
        " a PIN that isn't 4 to 10 digits: it is not recorded, nor handed out, until Seam gives"
        " one that is (status asks)",
    )
    pins = await export_pins(ledger_path=run.ledger, out=tmp_path / "pins.csv", now=start)
    assert pins.pins["ready"].to_list() == [False]
    assert formula not in (tmp_path / "pins.csv").read_text()
    assert not [
        r for r in caplog.records if formula in r.getMessage() or "12ab34" in str(r.__dict__)
    ]
    run.transport = inner
    settled = await refresh(run, start + dt.timedelta(minutes=1))
    assert settled.exit_code == 0
    assert code_row(run) == (code.pin, None, None)
