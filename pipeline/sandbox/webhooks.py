"""Webhooks as Seam sends them through Svix: each event POSTed to the configured URL with the
event object as the JSON body, signed, and retried on Svix's schedule scaled down.

Signing, Svix's scheme: ``svix-id`` is one message id per event, the same on every attempt;
``svix-timestamp`` is the Unix time in seconds of each attempt, on the *real* clock (never the
sandbox clock, which a test may have moved days ahead: receivers refuse a timestamp more than
5 minutes off); ``svix-signature`` is ``v1,`` and the base64 HMAC-SHA256 of
``"{svix-id}.{svix-timestamp}.{body}"`` keyed with the base64-decoded part of ``whsec_...``.

Attempts: the first at once, then after each failure (an answer outside 2xx, no answer within
``DELIVERY_TIMEOUT`` or no connection) the next after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and
10 h (Svix: "an attempt that fails three times before eventually succeeding will be delivered
roughly 35 minutes and 5 seconds following the first attempt"), each wait times
``retry_scale``; after the 8th failure the message is given up. Requests are never held up by
a delivery: the sender runs as its own task, on real time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import hmac
import itertools
import json
import math
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

# Seconds before each attempt, counted from the previous attempt's failure (Svix's schedule).
RETRY_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
# 0.01: the first retries within a second and 3 s, the last at about 16 minutes in all.
DEFAULT_RETRY_SCALE = 0.01
# Svix gives an endpoint 15 seconds to answer.
DELIVERY_TIMEOUT = 15.0
MAX_IN_FLIGHT = 16
SECRET_PREFIX = "whsec_"


class WebhookSettingError(ValueError):
    """A webhook setting that can't be used; ``setting`` is ``url``, ``secret`` or
    ``retry_scale`` (the caller names it its own way: an option or a configure key)."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"webhook {setting} {problem}")
        self.setting, self.problem = setting, problem


@dataclass(frozen=True)
class WebhookSettings:
    """Where to post events (None: nowhere), the signing secret and the retry scale."""

    url: str | None = None
    secret: str | None = field(default=None, repr=False)
    retry_scale: float = DEFAULT_RETRY_SCALE

    def __post_init__(self) -> None:
        if self.url is not None and not (
            isinstance(self.url, str) and self.url.startswith(("http://", "https://"))
        ):
            raise WebhookSettingError("url", "must be an http:// or https:// URL")
        if self.secret is not None:
            signing_key(self.secret)
        elif self.url is not None:
            raise WebhookSettingError("secret", "is needed to sign the deliveries (whsec_...)")
        scale = self.retry_scale
        if isinstance(scale, bool) or not isinstance(scale, int | float):
            raise WebhookSettingError("retry_scale", "must be a number")
        if not (math.isfinite(scale) and scale >= 0):
            raise WebhookSettingError("retry_scale", "must be 0 or more")


def signing_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; raises WebhookSettingError (without
    showing the secret)."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise WebhookSettingError("secret", "must be whsec_ followed by base64, as Seam shows it")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookSettingError(
            "secret", "must be whsec_ followed by base64, as Seam shows it"
        ) from exc
    if not key:
        raise WebhookSettingError("secret", "must be whsec_ followed by base64, as Seam shows it")
    return key


def sign(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    """The ``svix-signature`` value for one attempt."""
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    msg_id: str = field(compare=False)
    body: bytes = field(compare=False)
    attempt: int = field(compare=False, default=0)
    generation: int = field(compare=False, default=0)


class WebhookSender:
    """Posts each event it is given to ``settings.url``; ``run`` does the sending.

    ``enqueue`` never blocks and never fails (no URL: the event is not sent; events recorded
    while there is none are not sent later, as a Seam webhook added later gets no past
    events). Counters: ``sent`` messages answered 2xx, ``failed`` attempts that failed,
    ``retried`` attempts after a message's first, ``gave_up`` messages whose every attempt
    failed, ``discarded`` messages dropped when the URL was removed, ``pending`` messages
    waiting for an attempt or in one. Not thread-safe: call it on the server's event loop."""

    def __init__(
        self,
        settings: WebhookSettings | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = WebhookSettings() if settings is None else settings
        self.transport = transport
        self._fresh: deque[_Delivery] = deque()
        self._queue: list[_Delivery] = []
        self._seq = itertools.count()
        self._wake: anyio.Event | None = None
        self._generation = 0
        self._in_flight = 0
        self.counts: Counter[str] = Counter()

    def enqueue(self, event: dict[str, Any]) -> None:
        """Send this event object (if there is a URL), with a new message id."""
        if self.settings.url is None:
            return
        body = json.dumps(event, separators=(",", ":")).encode()
        delivery = _Delivery(0.0, next(self._seq), f"msg_{uuid.uuid4().hex}", body)
        delivery.generation = self._generation
        self._fresh.append(delivery)
        if self._wake is not None:
            self._wake.set()

    def configure(self, settings: WebhookSettings) -> None:
        """New settings from now on; without a URL, what waits is dropped (``discarded``)."""
        self.settings = settings
        if settings.url is None:
            self.counts["discarded"] += len(self._fresh) + len(self._queue) + self._in_flight
            self._drop_waiting()

    def reset(self) -> None:
        """Forget what waits and the counters (attempts under way are no longer counted)."""
        self._drop_waiting()
        self.counts = Counter()

    def _drop_waiting(self) -> None:
        self._generation += 1
        self._fresh.clear()
        self._queue.clear()
        self._in_flight = 0

    def stats(self) -> dict[str, Any]:
        return {
            "url": self.settings.url,
            "retry_scale": self.settings.retry_scale,
            "sent": self.counts["sent"],
            "failed": self.counts["failed"],
            "retried": self.counts["retried"],
            "gave_up": self.counts["gave_up"],
            "discarded": self.counts["discarded"],
            "pending": len(self._fresh) + len(self._queue) + self._in_flight,
        }

    async def run(self) -> None:
        """Send until cancelled: each message when due, at most ``MAX_IN_FLIGHT`` at a time."""
        self._wake = anyio.Event()
        limiter = anyio.CapacityLimiter(MAX_IN_FLIGHT)
        async with (
            httpx.AsyncClient(transport=self.transport, timeout=DELIVERY_TIMEOUT) as client,
            anyio.create_task_group() as group,
        ):
            while True:
                now = anyio.current_time()
                while self._fresh:
                    delivery = self._fresh.popleft()
                    delivery.due = now
                    heapq.heappush(self._queue, delivery)
                while self._queue and self._queue[0].due <= now:
                    delivery = heapq.heappop(self._queue)
                    self._in_flight += 1
                    group.start_soon(self._attempt, client, limiter, delivery)
                wait = self._queue[0].due - now if self._queue else math.inf
                with anyio.move_on_after(wait):
                    await self._wake.wait()
                self._wake = anyio.Event()

    async def _attempt(
        self, client: httpx.AsyncClient, limiter: anyio.CapacityLimiter, delivery: _Delivery
    ) -> None:
        if delivery.attempt > 0:
            self.counts["retried"] += 1
        async with limiter:
            is_delivered = await self._post(client, delivery)
        if delivery.generation != self._generation:
            return  # dropped (reset, or no URL any more) while it was under way
        self._in_flight -= 1
        if is_delivered:
            self.counts["sent"] += 1
            return
        self.counts["failed"] += 1
        delivery.attempt += 1
        if delivery.attempt >= len(RETRY_SCHEDULE):
            self.counts["gave_up"] += 1
            return
        delay = RETRY_SCHEDULE[delivery.attempt] * self.settings.retry_scale
        delivery.due = anyio.current_time() + delay
        delivery.seq = next(self._seq)
        heapq.heappush(self._queue, delivery)
        if self._wake is not None:
            self._wake.set()

    async def _post(self, client: httpx.AsyncClient, delivery: _Delivery) -> bool:
        url, secret = self.settings.url, self.settings.secret
        if url is None or secret is None:
            return False
        timestamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "svix-id": delivery.msg_id,
            "svix-timestamp": timestamp,
            "svix-signature": sign(signing_key(secret), delivery.msg_id, timestamp, delivery.body),
        }
        try:
            response = await client.post(url, content=delivery.body, headers=headers)
        except httpx.HTTPError:
            return False
        return response.is_success
