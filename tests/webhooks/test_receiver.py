"""The webhook receiver in-process: signed deliveries apply, forged, stale and replayed ones
change nothing, late events never move a code back, and no log line holds a secret or a PIN."""

from __future__ import annotations

import json
import logging
import time

import httpx
import pytest
from pydantic import SecretStr

from pipeline.ledger.lock import run_lock
from pipeline.webhooks import Verifier, WebhookReceiver, create_app, guard
from tests.ledger.helpers import holding_ledger
from tests.webhooks.helpers import (
    OTHER_SECRET,
    PIN,
    SECRET,
    code_rows,
    delivery,
    event,
    event_rows,
    sign,
)

pytestmark = pytest.mark.anyio


async def post(client: httpx.AsyncClient, body: bytes, headers: dict[str, str], path: str = "/"):
    return await client.post(path, content=body, headers=headers)


async def test_a_signed_set_on_device_records_the_status_and_the_pin(client, ledger_path):
    """A signed set_on_device makes its code ``set`` with its PIN, and the event is kept once."""
    sent = event("set_on_device", code=PIN)
    response = await post(client, *delivery(sent, delivery_id="msg_1"))
    assert (response.status_code, response.json()) == (200, {"ok": True, "outcome": "applied"})
    codes = code_rows(ledger_path)
    assert (codes["ac-1"]["code_status"], codes["ac-1"]["code"]) == ("set", PIN)
    assert (codes["ac-2"]["code_status"], codes["ac-2"]["code"]) == ("unset", None)
    [kept] = event_rows(ledger_path)
    assert {k: kept[k] for k in ("event_id", "event_type", "access_code_id", "delivery_id")} == {
        "event_id": sent["event_id"],
        "event_type": "access_code.set_on_device",
        "access_code_id": "ac-1",
        "delivery_id": "msg_1",
    }
    assert (kept["occurred_at"], kept["outcome"]) == ("2026-12-01T12:00:00.000Z", "applied")
    assert json.loads(kept["detail"]) == [
        {"idempotency_tag": "tag-1", "from": "unset", "to": "set", "pin": "recorded"}
    ]


async def test_any_path_takes_deliveries_and_the_webhook_headers_too(client, ledger_path):
    """A delivery to any path is taken, signed under ``webhook-*`` headers as well."""
    body, headers = delivery(event("set_on_device", code=PIN), prefix="webhook-")
    response = await post(client, body, headers, path="/seam/hooks/oracode")
    assert response.status_code == 200
    assert code_rows(ledger_path)["ac-1"]["code_status"] == "set"


@pytest.mark.parametrize("ledger_location", ["sqlite"], indirect=True)  # no delivery: no ledger
async def test_only_post_is_a_delivery(client):
    """A GET on the receiver is 405: Seam only posts."""
    assert (await client.get("/")).status_code == 405


@pytest.mark.parametrize(
    ("case", "secret", "age"),
    [
        ("forged: signed with another secret", OTHER_SECRET, 0),
        ("stale: six minutes old", SECRET, 360),
        ("from the future: six minutes ahead", SECRET, -360),
    ],
)
async def test_a_forged_or_stale_delivery_is_refused_and_changes_nothing(
    client, ledger_path, case, secret, age
):
    """A delivery not signed with the secret, or timed outside Svix's 5 minutes, is 401."""
    before = code_rows(ledger_path)
    body, headers = delivery(
        event("set_on_device", code=PIN), secret=secret, timestamp=int(time.time()) - age
    )
    response = await post(client, body, headers)
    assert response.status_code == 401
    assert response.json()["ok"] is False
    assert code_rows(ledger_path) == before
    assert event_rows(ledger_path) == []


@pytest.mark.parametrize("ledger_location", ["sqlite"], indirect=True)
async def test_unsigned_deliveries_are_said_once_a_minute_with_their_count(
    client, monkeypatch, caplog
):
    """Anyone can post: 50 forged deliveries within a minute are one warning line, and the
    next one after the minute a second line counting the 49 it didn't say, and itself."""
    clock = [1000.0]
    monkeypatch.setattr(guard.time, "monotonic", lambda: clock[0])
    with caplog.at_level(logging.INFO, logger="pipeline.webhooks"):
        for _ in range(50):
            body, headers = delivery(event("set_on_device", code=PIN), secret=OTHER_SECRET)
            assert (await post(client, body, headers)).status_code == 401
            clock[0] += 0.5
        clock[0] += guard.SAY_EVERY
        assert (
            await post(client, *delivery(event("created"), secret=OTHER_SECRET))
        ).status_code == 401
    lines = [(r.getMessage(), r.__dict__.get("times")) for r in caplog.records]
    said = "refused webhook deliveries not signed with the webhook's secret (answered 401)"
    assert lines == [(said, 1), (said, 50)]


@pytest.mark.parametrize(
    "damage",
    [
        {"svix-signature": "v1"},  # no comma: Svix can't split it
        {"svix-signature": "v1,***"},  # not base64
        {"svix-signature": "v2,abcd"},  # no v1 signature at all
        {"svix-timestamp": "soon"},
        {"svix-id": ""},  # then Svix looks for webhook-* headers: none
    ],
)
async def test_a_malformed_signature_is_refused_and_changes_nothing(client, ledger_path, damage):
    """A delivery whose signature headers can't even be read is 401, like a forged one."""
    body, headers = delivery(event("set_on_device", code=PIN))
    response = await post(client, body, headers | damage)
    assert response.status_code == 401
    assert event_rows(ledger_path) == []
    assert code_rows(ledger_path)["ac-1"]["code"] is None


async def test_a_tampered_body_is_refused(client, ledger_path):
    """The signature covers the body: the same headers on another body are 401."""
    body, headers = delivery(event("set_on_device", code=PIN))
    response = await post(client, body.replace(PIN.encode(), b"000000"), headers)
    assert response.status_code == 401
    assert code_rows(ledger_path)["ac-1"]["code"] is None


async def test_a_body_over_a_mebibyte_is_413(client, ledger_path):
    """A body larger than any Seam event is refused before its signature is checked."""
    body, headers = delivery(event("set_on_device", code=PIN, padding="x" * 1024 * 1024))
    assert (await post(client, body, headers)).status_code == 413
    assert event_rows(ledger_path) == []


async def test_a_signed_body_that_is_not_an_event_is_400(client, ledger_path):
    """Signed, but no event_id or event_type: 400, nothing kept."""
    body, headers = delivery({"hello": "world"})
    assert (await post(client, body, headers)).status_code == 400
    assert event_rows(ledger_path) == []


async def test_a_signed_body_nested_too_deep_is_400_not_a_server_error(client, ledger_path, caplog):
    """A signed body of 200,000 nested brackets: 400 with one line, no traceback, nothing kept."""
    body = b"[" * 200_000 + b"]" * 200_000
    _, headers = delivery({})
    headers["svix-signature"] = sign(body, headers["svix-id"], int(headers["svix-timestamp"]))
    response = await post(client, body, headers)
    assert response.status_code == 400
    assert response.json()["error"] == "signed, but its JSON is nested too deep to be a Seam event"
    assert event_rows(ledger_path) == []
    assert not any(record.exc_info for record in caplog.records)


async def test_a_replayed_delivery_answers_200_and_changes_nothing_twice(client, ledger_path):
    """The same delivery again (Seam's retry, or a replay within 5 minutes) is 200 and does
    nothing: a failure already resolved by a set isn't raised again."""
    failed = delivery(
        event(
            "failed_to_set_on_device",
            occurred_at="2026-12-01T12:00:00Z",
            access_code_errors=[{"error_code": "door_offline", "message": "the door is offline"}],
        ),
        delivery_id="msg_failed",
    )
    assert (await post(client, *failed)).json()["outcome"] == "applied"
    failing = code_rows(ledger_path)["ac-1"]
    assert failing["needs_attention"] == "seam_error: door_offline: the door is offline"
    assert json.loads(failing["code_errors"]) == [
        {"error_code": "door_offline", "message": "the door is offline"}
    ]
    set_later = event("set_on_device", code=PIN, occurred_at="2026-12-01T12:05:00Z")
    assert (await post(client, *delivery(set_later))).json()["outcome"] == "applied"
    resolved = code_rows(ledger_path)["ac-1"]
    assert (resolved["needs_attention"], resolved["code_errors"]) == (None, "[]")

    again = await post(client, *failed)
    assert (again.status_code, again.json()["outcome"]) == (200, "replayed")
    assert code_rows(ledger_path)["ac-1"]["needs_attention"] is None
    assert [row["delivery_id"] for row in event_rows(ledger_path)].count("msg_failed") == 1


async def test_the_same_event_in_another_delivery_changes_nothing(client, ledger_path):
    """One event id delivered twice (two endpoints, say) is recorded once: ``duplicate``."""
    sent = event("set_on_device", code=PIN)
    assert (await post(client, *delivery(sent))).json()["outcome"] == "applied"
    again = await post(client, *delivery(sent))
    assert (again.status_code, again.json()["outcome"]) == (200, "duplicate")
    assert len(event_rows(ledger_path)) == 1


@pytest.mark.parametrize(
    ("first", "then", "outcome"),
    [
        # scheduled happened first but arrives last: older, and lower
        (("set_on_device", "12:05"), ("scheduled_on_device", "12:00"), "superseded"),
        # a scheduled that happened later still doesn't move a set code back
        (("set_on_device", "12:05"), ("scheduled_on_device", "12:10"), "superseded"),
        # a failure to set that happened before the set is news of the past
        (("set_on_device", "12:05"), ("failed_to_set_on_device", "12:00"), "superseded"),
        (("set_on_device", "12:05"), ("delay_in_setting_on_device", "12:01"), "superseded"),
    ],
)
async def test_a_late_event_never_moves_a_set_code_back(client, ledger_path, first, then, outcome):
    """Out of order, a set code stays ``set`` with its PIN and nothing to look at."""
    for (kind, at), pin in ((first, PIN), (then, None)):
        fields = {"code": pin} if pin else {}
        sent = event(kind, occurred_at=f"2026-12-01T{at}:00.000Z", **fields)
        answer = (await post(client, *delivery(sent))).json()["outcome"]
    assert answer == outcome
    code = code_rows(ledger_path)["ac-1"]
    assert (code["code_status"], code["code"], code["needs_attention"]) == ("set", PIN, None)


async def test_a_set_after_a_scheduled_moves_the_code_on(client, ledger_path):
    """In order, scheduled then set: the code ends ``set`` with its PIN."""
    await post(client, *delivery(event("scheduled_on_device", occurred_at="2026-12-01T12:00Z")))
    assert code_rows(ledger_path)["ac-1"]["code_status"] == "unset"
    sent = event("set_on_device", code=PIN, occurred_at="2026-12-01T12:05Z")
    await post(client, *delivery(sent))
    code = code_rows(ledger_path)["ac-1"]
    assert (code["code_status"], code["code"]) == ("set", PIN)


async def test_an_unknown_code_is_kept_as_not_ours_and_changes_no_code(client, ledger_path):
    """An event about a code the ledger doesn't have is 200, kept as ``not_ours``."""
    before = code_rows(ledger_path)
    sent = event("set_on_device", "ac-someone-else", code="111111")
    response = await post(client, *delivery(sent))
    assert (response.status_code, response.json()["outcome"]) == (200, "not_ours")
    assert code_rows(ledger_path) == before
    assert [row["outcome"] for row in event_rows(ledger_path)] == ["not_ours"]


@pytest.mark.parametrize(
    ("kind", "occurred_at", "status", "attention"),
    [
        (
            "deleted",
            "2026-12-02T08:00:00Z",
            "deleted",
            "missing_on_seam: Seam deleted the code before its window ended",
        ),
        (
            "removed_from_device",
            "2026-12-02T08:00:00Z",
            "removed",
            "removed_from_device: Seam removed the code from its door before its window ended",
        ),
        ("deleted", "2026-12-03T11:00:01Z", "deleted", None),  # its window is over
        ("removed_from_device", "2026-12-03T12:00:00Z", "removed", None),
    ],
)
async def test_a_code_gone_before_its_window_ends_needs_attention(
    client, ledger_path, kind, occurred_at, status, attention
):
    """A code Seam deleted or removed while its stay goes on needs a person; after, it doesn't."""
    await post(client, *delivery(event("set_on_device", code=PIN)))
    await post(client, *delivery(event(kind, occurred_at=occurred_at)))
    code = code_rows(ledger_path)["ac-1"]
    assert (code["code_status"], code["needs_attention"]) == (status, attention)


async def test_a_delay_in_setting_says_seams_warning(client, ledger_path):
    """delay_in_setting_on_device needs attention with Seam's warning, kept in code_warnings."""
    sent = event(
        "delay_in_setting_on_device",
        access_code_warnings=[{"warning_code": "slow_door", "message": "waiting for the door"}],
    )
    await post(client, *delivery(sent))
    code = code_rows(ledger_path)["ac-1"]
    assert code["needs_attention"] == "seam_warning: slow_door: waiting for the door"
    assert code["code_status"] == "unset"


async def test_the_secret_and_the_pin_are_in_no_log_line_nor_answer(client, ledger_path, caplog):
    """Whatever comes in, no log line (message or field) and no answer shows the secret or a
    PIN; each delivery is one line."""
    key = SECRET.removeprefix("whsec_")
    answers = []
    with caplog.at_level(logging.DEBUG):
        for body, headers in (
            delivery(event("set_on_device", code=PIN)),
            delivery(event("set_on_device", "ac-2", code=PIN), secret=OTHER_SECRET),
            delivery(event("set_on_device", "ac-unknown", code=PIN)),
            delivery(event("scheduled_on_device", code=PIN)),
        ):
            answers.append((await post(client, body, headers)).text)
    lines = [
        record.getMessage() + " " + " ".join(f"{k}={v}" for k, v in record.__dict__.items())
        for record in caplog.records
    ]
    receiver_lines = [r for r in caplog.records if r.name == "pipeline.webhooks.app"]
    assert len(receiver_lines) == 4
    for text in [*lines, *answers]:
        assert PIN not in text
        assert key not in text
        assert SECRET not in text
    assert code_rows(ledger_path)["ac-1"]["code"] == PIN


async def test_an_apply_run_holding_the_run_lock_doesnt_stop_deliveries(client, ledger_path):
    """The receiver takes no run lock: deliveries are recorded while an apply run holds it."""
    async with run_lock(ledger_path):
        response = await post(client, *delivery(event("set_on_device", code=PIN)))
    assert response.json()["outcome"] == "applied"


async def test_a_busy_ledger_is_503_within_the_answer_time_and_the_retry_finds_it(ledger_path):
    """A ledger another process is writing answers 503 in time (Seam retries); the write goes
    on, and the retry is 200 with the event recorded once."""
    answer_within = 0.3
    receiver = WebhookReceiver(
        ledger_path, Verifier(SecretStr(SECRET)), answer_within=answer_within
    )
    sent = delivery(event("set_on_device", code=PIN))
    async with receiver.accepting():
        transport = httpx.ASGITransport(app=create_app(receiver))
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as client:
            with holding_ledger(ledger_path):  # another writer holds the ledger
                started = time.monotonic()
                busy = await post(client, *sent)
                waited = time.monotonic() - started
            assert busy.status_code == 503
            assert waited < answer_within + 1.0
            retry = await post(client, *sent)
    assert (retry.status_code, retry.json()["outcome"]) == (200, "replayed")
    assert len(event_rows(ledger_path)) == 1
    assert code_rows(ledger_path)["ac-1"]["code"] == PIN
