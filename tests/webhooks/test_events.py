"""What each event type says of its code, and the ledger's rule that no event moves a code back
(``pipeline.webhooks.events``, ``pipeline.ledger.events``), without HTTP."""

from __future__ import annotations

import datetime as dt
import json

import anyio
import pytest

from pipeline.ledger.events import DUPLICATE
from pipeline.ledger.store import Ledger
from pipeline.webhooks.events import read_event
from pipeline.webhooks.verify import Refused
from tests.ledger.helpers import dict_rows, holding_ledger, query
from tests.webhooks.helpers import PIN, code_rows, event, event_rows

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("event_type", "status", "attention"),
    [
        ("set_on_device", "set", None),
        ("scheduled_on_device", "unset", None),
        ("failed_to_set_on_device", None, "seam_error: failed_to_set_on_device: Seam could not"),
        ("delay_in_setting_on_device", None, "seam_warning: delay_in_setting_on_device:"),
        ("removed_from_device", "removed", "removed_from_device: Seam removed the code"),
        ("deleted", "deleted", "missing_on_seam: Seam deleted the code"),
        ("deleted_external_to_seam", "deleted", "missing_on_seam: the code was deleted outside"),
        ("changed", None, None),
        ("created", None, None),
    ],
)
def test_each_event_type_says_its_status_and_attention(event_type, status, attention):
    """The table of event types: the status each reports, the attention each raises (Seam's
    message, or ours when it gives none)."""
    read = read_event(event(event_type))
    assert read.status == status
    assert (read.attention or "").startswith(attention or "")
    assert (read.attention is None) == (attention is None)


def test_the_pin_comes_from_set_on_device_and_never_shows_in_a_repr():
    """set_on_device's ``code`` is the PIN; a SeamEvent's repr leaves it out."""
    read = read_event(event("set_on_device", code=PIN))
    assert read.pin == PIN
    assert PIN not in repr(read)


def test_seams_errors_on_the_code_and_its_door_are_the_message():
    """A failure's message is Seam's errors on the code and on its device, in that order."""
    read = read_event(
        event(
            "failed_to_set_on_device",
            access_code_errors=[{"error_code": "code_rejected", "message": "refused"}],
            device_errors=[{"error_code": "device_offline", "message": "offline"}],
        )
    )
    assert read.attention == "seam_error: code_rejected: refused; device_offline: offline"


@pytest.mark.parametrize("payload", [{}, {"event_id": "evt_1"}, {"event_type": "x"}])
def test_an_object_without_event_id_or_type_is_not_an_event(payload):
    """A signed object lacking event_id or event_type is refused with 400."""
    with pytest.raises(Refused) as refused:
        read_event(payload)
    assert refused.value.status == 400


async def test_an_older_set_still_moves_a_code_on_and_fills_its_pin(ledger_path):
    """A set_on_device older than status's last look still moves an ``unset`` code on (a later
    status is later whenever it arrives) and gives it its PIN."""
    query(ledger_path, "UPDATE codes SET status_checked_at = '2026-12-01T13:00:00+00:00'")
    ledger = await Ledger.open(ledger_path)
    try:
        read = read_event(event("set_on_device", code=PIN, occurred_at="2026-12-01T12:00:00Z"))
        recorded = await ledger.record_seam_event(read, delivery_id="msg_1")
        older_failure = read_event(
            event("failed_to_set_on_device", "ac-2", occurred_at="2026-12-01T12:00:00Z")
        )
        superseded = await ledger.record_seam_event(older_failure, delivery_id="msg_2")
    finally:
        await ledger.close()
    assert recorded.outcome == "applied"
    assert recorded.changed == (("tag-1", "unset", "set"),)
    assert superseded.outcome == "superseded"
    codes = code_rows(ledger_path)
    assert (codes["ac-1"]["code_status"], codes["ac-1"]["code"]) == ("set", PIN)
    assert codes["ac-2"]["needs_attention"] is None


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        (
            {"device_id": "device-2"},
            "the event names device_id 'device-2', not its code's door device-1",
        ),
        ({"device_id": None}, "the event names no device_id, not its code's door device-1"),
        ({"occurred_at": "garbage"}, "its occurred_at 'garbage' is not an instant"),
        ({"occurred_at": None}, "its occurred_at 'None' is not an instant"),
        ({"occurred_at": "2026-12-01T12:00:00"}, "its occurred_at '2026-12-01T12:00:00' is not"),
        (
            {"occurred_at": "9999-12-31T00:00:00Z"},
            "its occurred_at '9999-12-31T00:00:00Z' is more than 5 minutes ahead of this host's"
            " clock: it hasn't happened yet",
        ),
    ],
)
async def test_an_event_for_another_door_or_without_a_real_time_changes_nothing(
    ledger_path, fields, why
):
    """A signed set_on_device whose device_id isn't its code's door, or whose occurred_at isn't
    an instant (garbage, missing, without its offset) or is more than 5 minutes ahead of this
    host's clock, is kept as not_applied with why, and neither the code's status nor its PIN
    moves."""
    sent = read_event(event("set_on_device", code="111111") | fields)
    ledger = await Ledger.open(ledger_path)
    try:
        recorded = await ledger.record_seam_event(sent, delivery_id="msg_1")
    finally:
        await ledger.close()
    assert (recorded.outcome, recorded.changed) == ("not_applied", ())
    codes = code_rows(ledger_path)
    assert (codes["ac-1"]["code_status"], codes["ac-1"]["code"]) == ("unset", None)
    [kept] = event_rows(ledger_path)
    assert kept["outcome"] == "not_applied"
    assert json.loads(kept["detail"])[0]["not_applied"].startswith(why)


async def test_an_event_a_few_minutes_ahead_of_this_clock_is_applied(ledger_path):
    """Clocks differ: a set_on_device 4 minutes ahead of this host's clock is applied; one 6
    minutes ahead is not."""
    now = dt.datetime.now(dt.UTC)
    ledger = await Ledger.open(ledger_path)
    try:
        outcomes = [
            await ledger.record_seam_event(
                read_event(event("set_on_device", code=PIN, occurred_at=(now + ahead).isoformat())),
                delivery_id=f"msg_{n}",
            )
            for n, ahead in enumerate((dt.timedelta(minutes=6), dt.timedelta(minutes=4)))
        ]
    finally:
        await ledger.close()
    assert [outcome.outcome for outcome in outcomes] == ["not_applied", "applied"]
    assert (
        code_rows(ledger_path)["ac-1"]["code_status"],
        code_rows(ledger_path)["ac-1"]["code"],
    ) == ("set", PIN)


async def test_another_pin_for_a_code_is_never_swapped_in(ledger_path):
    """The code's PIN is 130411; signed events giving 111111, then 222222, keep 130411: the
    code needs attention (pin_changed), the latest other PIN is kept beside it, no log of the
    ledger holds either; status, asking Seam, settles it."""
    ledger = await Ledger.open(ledger_path)
    try:
        first = await ledger.record_seam_event(read_event(event("set_on_device", code="130411")))
        outcomes = [
            await ledger.record_seam_event(
                read_event(event("set_on_device", code=pin, occurred_at=f"2026-12-01T1{n}:00:00Z"))
            )
            for n, pin in ((3, "111111"), (4, "222222"))
        ]
    finally:
        await ledger.close()
    assert first.outcome == "applied"
    assert [outcome.outcome for outcome in outcomes] == ["applied", "applied"]
    [row] = dict_rows(
        ledger_path,
        "SELECT code, reported_code, needs_attention FROM codes WHERE access_code_id = 'ac-1'",
    )
    assert (row["code"], row["reported_code"]) == ("130411", "222222")
    assert row["needs_attention"].startswith(
        "pin_changed: Seam's event of 2026-12-01T14:00:00Z gives this code another PIN than the"
        " one recorded, which stays until status asks Seam"
    )
    details = " ".join(str(row["detail"]) for row in event_rows(ledger_path))
    assert "111111" not in details
    assert "222222" not in details


async def test_a_delivery_waits_for_another_writer_and_finds_the_event_it_recorded(ledger_path):
    """Two deliveries of one event at once (two receivers, or Seam's retry racing the first):
    the second waits until the first's transaction ends, then finds the event recorded and
    changes nothing, on either database (never a unique-key error, nor a write from a stale
    read)."""
    read = read_event(event("set_on_device", code=PIN))
    outcomes = []
    ledger = await Ledger.open(ledger_path)
    try:
        async with anyio.create_task_group() as group:
            with holding_ledger(ledger_path) as first:
                first.execute(
                    "INSERT INTO seam_events (event_id, event_type, received_at, outcome)"
                    " VALUES (?, ?, '2026-12-01T12:00:00+00:00', 'applied')",
                    (read.event_id, read.event_type),
                )

                async def deliver() -> None:
                    outcomes.append(await ledger.record_seam_event(read, delivery_id="msg_2"))

                group.start_soon(deliver)
                await anyio.sleep(0.5)
                assert outcomes == []  # waiting for the first delivery's transaction
    finally:
        await ledger.close()
    assert [outcome.outcome for outcome in outcomes] == [DUPLICATE]
    assert code_rows(ledger_path)["ac-1"]["code"] is None  # the first one's own, not ours
    assert len(event_rows(ledger_path)) == 1
