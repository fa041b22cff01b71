"""The sandbox's webhooks: Svix-signed posts of its events, retried on the scaled schedule."""

from __future__ import annotations

import base64
import itertools
import time

import anyio
import httpx
import pytest

from pipeline.cli import main
from pipeline.commands.options import SandboxOptions
from pipeline.common.errors import UsageError
from pipeline.sandbox import WebhookSender, WebhookSettings
from pipeline.sandbox.webhooks import RETRY_SCHEDULE, sign, signing_key
from tests.sandbox.events_helpers import CABIN, create_stay, list_events
from tests.sandbox.webhook_helpers import SECRET, URL, Receiver, hooked, settled, until, verify

pytestmark = pytest.mark.anyio


def test_signatures_match_svix_published_vector():
    """sign() gives the signature of Svix's (and Standard Webhooks') published test vector."""
    key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    signature = sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_check_refuses_another_secret_and_a_changed_body():
    """The signature check these tests rely on accepts ours and refuses forgeries."""
    key, timestamp, body = signing_key(SECRET), str(int(time.time())), b'{"event_id":"e"}'
    headers = {
        "svix-id": "msg_1",
        "svix-timestamp": timestamp,
        "svix-signature": sign(key, "msg_1", timestamp, body),
    }
    other = "whsec_" + base64.b64encode(b"someone else's signing key").decode()

    def is_verified(raw: bytes, secret: str = SECRET) -> bool:
        try:
            verify(headers, raw, secret)
        except Exception:
            return False
        return True

    assert is_verified(body)
    assert not is_verified(body, other)
    assert not is_verified(b'{"event_id":"f"}')


async def test_each_event_is_posted_signed_with_the_event_as_body():
    """Each event goes out once, signed, its body the object /events/list shows, ids distinct."""
    async with hooked() as (state, client, receiver, sender):
        code, starts = await create_stay(client, state, CABIN)
        await client.post(
            "/_sandbox/clock",
            json={"advance_seconds": (starts - state.clock.now()).total_seconds()},
        )
        await settled(sender)
        listed = await list_events(client, since=code["created_at"])
    bodies = [verify(d.headers, d.body) for d in receiver.deliveries]
    # Sent as recorded, a few at a time: the arrival order is not guaranteed (nor is Seam's).
    assert {b["event_id"]: b for b in bodies} == {e["event_id"]: e for e in listed}
    assert [e["event_type"] for e in listed] == [
        "access_code.created",
        "access_code.scheduled_on_device",
        "access_code.set_on_device",
    ]
    ids = [d.headers["svix-id"] for d in receiver.deliveries]
    assert len(set(ids)) == 3
    assert all(i.startswith("msg_") for i in ids)
    assert all(d.headers["content-type"] == "application/json" for d in receiver.deliveries)
    # Real time, though the sandbox clock is days ahead: receivers refuse > 5 minutes off.
    stamps = [int(d.headers["svix-timestamp"]) for d in receiver.deliveries]
    assert all(abs(stamp - time.time()) < 60 for stamp in stamps)


async def test_a_failed_delivery_is_retried_with_the_same_svix_id():
    """A 500, a refused connection, a 503, then 200: four attempts, one svix-id, each signed."""
    refused = httpx.ConnectError("connection refused")
    async with hooked(script=[500, refused, 503]) as (state, client, receiver, sender):
        await create_stay(client, state, CABIN)
        await settled(sender)
        stats = (await client.get("/_sandbox/stats")).json()["webhooks"]
    assert len(receiver.deliveries) == 4
    assert len({d.headers["svix-id"] for d in receiver.deliveries}) == 1
    assert len({verify(d.headers, d.body)["event_id"] for d in receiver.deliveries}) == 1
    assert stats == {
        "url": URL,
        "retry_scale": 1e-4,
        "sent": 1,
        "failed": 3,
        "retried": 3,
        "gave_up": 0,
        "discarded": 0,
        "pending": 0,
    }


async def test_retries_wait_on_seams_schedule_times_the_scale():
    """The waits between attempts are at least Seam's (0, 5 s, 5 min) times the scale."""
    async with hooked(script=[500, 500, 500], scale=1e-4) as (state, client, receiver, sender):
        await create_stay(client, state, CABIN)
        await settled(sender)
    times = [d.at for d in receiver.deliveries]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(gaps) == 3
    for gap, wait in zip(gaps, RETRY_SCHEDULE[1:4], strict=False):
        assert wait * 1e-4 <= gap < wait * 1e-4 + 1.0


async def test_a_message_is_given_up_after_eight_failed_attempts():
    """An always failing receiver gets 8 attempts (Seam's schedule), then the message is dropped."""
    async with hooked(script=[500] * 20, scale=1e-6) as (state, client, receiver, sender):
        await create_stay(client, state, CABIN)
        await settled(sender)
    assert len(receiver.deliveries) == len(RETRY_SCHEDULE) == 8
    stats = sender.stats()
    assert (stats["sent"], stats["failed"], stats["retried"], stats["gave_up"]) == (0, 8, 7, 1)


async def test_a_slow_receiver_never_holds_up_requests():
    """A receiver that doesn't answer: the create and a read are answered at once regardless."""
    async with hooked(delay=30) as (state, client, receiver, sender):
        started = anyio.current_time()
        code, _ = await create_stay(client, state, CABIN)
        await client.post("/access_codes/get", json={"access_code_id": code["access_code_id"]})
        await until(lambda: bool(receiver.deliveries), within=5)
        took = anyio.current_time() - started
        pending = sender.stats()["pending"]
    assert took < 5
    assert pending == 1


async def test_configure_starts_changes_and_stops_the_webhooks():
    """configure sets URL and secret (never echoed), refuses a bad one unchanged, stops on null."""
    async with hooked(settings=WebhookSettings()) as (state, client, receiver, sender):
        await create_stay(client, state, CABIN, days_ahead=-1)  # 3 events, no URL yet
        bad = await client.post(
            "/_sandbox/configure", json={"webhook_url": URL, "webhook_secret": "hunter2"}
        )
        no_secret = await client.post("/_sandbox/configure", json={"webhook_url": URL})
        set_up = await client.post(
            "/_sandbox/configure",
            json={"webhook_url": URL, "webhook_secret": SECRET, "webhook_retry_scale": 0},
        )
        await create_stay(client, state, CABIN, days_ahead=-3, nights=5)
        await settled(sender)
        delivered = len(receiver.deliveries)
        stopped = await client.post("/_sandbox/configure", json={"webhook_url": None})
        await create_stay(client, state, CABIN, days_ahead=-5, nights=7)
        await settled(sender)
        recorded = len(state.events.events)
    assert bad.status_code == 400
    assert "webhook_secret must be whsec_" in bad.text
    assert "hunter2" not in bad.text
    assert no_secret.status_code == 400
    assert "webhook_secret is needed" in no_secret.text
    assert set_up.status_code == 200
    assert set_up.json()["webhook_url"] == URL
    assert set_up.json()["webhook_secret_set"] is True
    assert SECRET not in set_up.text
    assert delivered == 3  # only the events recorded once there was a URL
    assert all(verify(d.headers, d.body) for d in receiver.deliveries)
    assert stopped.json()["webhook_url"] is None
    assert len(receiver.deliveries) == 3
    assert recorded == 9  # recorded all along, sent or not


async def test_reset_forgets_waiting_deliveries_and_the_counters():
    """/_sandbox/reset drops what waits to be sent and zeroes the webhook counters."""
    async with hooked(script=[500] * 20, scale=100) as (state, client, receiver, sender):
        await create_stay(client, state, CABIN)
        await until(lambda: sender.stats()["failed"] >= 1, within=5)
        await client.post("/_sandbox/reset")
        stats = (await client.get("/_sandbox/stats")).json()["webhooks"]
    assert (stats["pending"], stats["failed"], stats["sent"]) == (0, 0, 0)
    assert len(receiver.deliveries) == 1  # the retry, 500 s away, was dropped


@pytest.mark.parametrize(
    ("kwargs", "line"),
    [
        ({"webhook_url": "ftp://x"}, "--webhook-url must be an http:// or https:// URL"),
        (
            {"webhook_url": "http://127.0.0.1:8788/"},
            "--webhook-secret is needed to sign the deliveries (whsec_...)"
            " (or set SEAM_WEBHOOK_SECRET)",
        ),
        (
            {"webhook_url": "http://127.0.0.1:8788/", "webhook_secret": "whsec_!!"},
            "--webhook-secret must be whsec_ followed by base64, as Seam shows it"
            " (or set SEAM_WEBHOOK_SECRET)",
        ),
        ({"webhook_retry_scale": -1.0}, "--webhook-retry-scale must be 0 or more"),
    ],
)
def test_options_refuse_unusable_webhook_settings(kwargs, line):
    """A bad URL, secret or scale is a UsageError naming the option, never showing the secret."""
    with pytest.raises(UsageError) as caught:
        SandboxOptions(**kwargs).webhooks(environ={})
    assert str(caught.value) == line


def test_the_secret_comes_from_the_environment_when_not_given():
    """Without --webhook-secret the sender signs with SEAM_WEBHOOK_SECRET (with a URL only)."""
    url = "http://127.0.0.1:8788/"
    given = SandboxOptions(webhook_url=url).webhooks(environ={"SEAM_WEBHOOK_SECRET": SECRET})
    ignored = SandboxOptions().webhooks(environ={"SEAM_WEBHOOK_SECRET": "not a secret"})
    assert (given.url, given.secret) == (url, SECRET)
    assert ignored == WebhookSettings()
    assert SECRET not in repr(given)


def test_the_cli_refuses_a_bad_secret_with_exit_2(monkeypatch, capsys):
    """sandbox --webhook-secret nonsense: exit 2, one line, the secret not shown."""
    monkeypatch.delenv("SEAM_WEBHOOK_SECRET", raising=False)
    code = main(["sandbox", "--webhook-url", "http://127.0.0.1:9/", "--webhook-secret", "s3cret"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == [
        "error: --webhook-secret must be whsec_ followed by base64, as Seam shows it"
        " (or set SEAM_WEBHOOK_SECRET)"
    ]


async def test_a_sender_without_settings_sends_nothing():
    """enqueue without a URL is a no-op: nothing waits, nothing is counted."""
    sender = WebhookSender(transport=httpx.MockTransport(Receiver()))
    sender.enqueue({"event_id": "e"})
    assert sender.stats()["pending"] == 0
