"""What each event type says of its code, and the ledger's rule that no event moves a code back
(``pipeline.webhooks.events``, ``pipeline.ledger.events``), without HTTP."""

from __future__ import annotations

import anyio
import pytest

from pipeline.ledger.events import DUPLICATE, SeamEvent
from pipeline.ledger.store import Ledger
from pipeline.webhooks.events import read_event
from pipeline.webhooks.verify import Refused
from tests.ledger.helpers import holding_ledger, query
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


async def test_an_event_without_a_time_goes_by_the_status_order_alone(ledger_path):
    """An event carrying no time is never older: the status order alone decides."""
    ledger = await Ledger.open(ledger_path)
    try:
        for status in ("set", "unset"):
            change = SeamEvent(
                f"evt_{status}", "access_code.x", access_code_id="ac-1", status=status
            )
            await ledger.record_seam_event(change)
    finally:
        await ledger.close()
    assert code_rows(ledger_path)["ac-1"]["code_status"] == "set"
    assert [row["outcome"] for row in event_rows(ledger_path)] == ["applied", "superseded"]


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
