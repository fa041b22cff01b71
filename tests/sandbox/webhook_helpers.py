"""A webhook receiver for tests (an httpx transport: no socket), a sandbox wired to it, and a
signature check with Svix's own verifier when the ``svix`` package is installed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

from pipeline.sandbox import Faults, SandboxState, WebhookSender, WebhookSettings, create_app
from tests.paths import SANDBOX_DEVICES
from tests.sandbox_helpers import KEY

SECRET = "whsec_" + base64.b64encode(b"the sandbox's test signing key!!").decode()
URL = "http://receiver.test/seam"


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes
    at: float  # anyio.current_time() when it arrived


@dataclass
class Receiver:
    """Records every delivery and answers from ``script`` (a status, or an exception to
    raise as the transport would), then 200; ``delay`` seconds before each answer."""

    script: Sequence[int | Exception] = ()
    delay: float = 0.0
    deliveries: list[Delivery] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._answers = list(self.script)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.deliveries.append(
            Delivery(dict(request.headers), request.content, anyio.current_time())
        )
        if self.delay:
            await anyio.sleep(self.delay)
        answer = self._answers.pop(0) if self._answers else 200
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer)


@asynccontextmanager
async def hooked(
    *,
    script: Sequence[int | Exception] = (),
    scale: float = 1e-4,
    delay: float = 0.0,
    settings: WebhookSettings | None = None,
) -> AsyncIterator[tuple[SandboxState, httpx.AsyncClient, Receiver, WebhookSender]]:
    """A sandbox whose webhooks reach a ``Receiver`` in-process, its lifespan running (the
    catch-up task and the sender), and an authenticated client."""
    receiver = Receiver(script, delay)
    sender = WebhookSender(
        settings if settings is not None else WebhookSettings(URL, SECRET, scale),
        transport=httpx.MockTransport(receiver),
    )
    state = SandboxState.from_payload(json.loads(SANDBOX_DEVICES.read_text(encoding="utf-8")))
    app = create_app(state, Faults(), sender)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://sandbox", headers=KEY) as client,
    ):
        yield state, client, receiver, sender


async def until(holds: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until ``holds()`` (another task's counters); fails after ``within`` seconds."""
    with anyio.fail_after(within):
        while not holds():  # noqa: ASYNC110 (the sender's counters have no event)
            await anyio.sleep(0.005)


async def settled(sender: WebhookSender) -> None:
    """Wait until nothing waits to be sent (delivered or given up)."""
    await until(lambda: not sender.stats()["pending"])


def verify(headers: dict[str, str], body: bytes, secret: str = SECRET) -> dict[str, Any]:
    """The event a delivery carries, once its signature checks out; raises otherwise. With
    ``svix`` installed its verifier decides (what the receiver uses), else the scheme by hand."""
    try:
        from svix.webhooks import Webhook
    except ImportError:
        return _verify_by_hand(headers, body, secret)
    Webhook(secret).verify(body, headers)  # raises; returns the event in 1.x, None in 2.9
    event: dict[str, Any] = json.loads(body)
    return event


def _verify_by_hand(headers: dict[str, str], body: bytes, secret: str) -> dict[str, Any]:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id, timestamp = headers["svix-id"], headers["svix-timestamp"]
    assert abs(int(timestamp) - time.time()) < 5 * 60, "outside Svix's 5-minute tolerance"
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    assert f"v1,{base64.b64encode(digest).decode()}" in headers["svix-signature"].split(" ")
    event: dict[str, Any] = json.loads(body)
    return event
