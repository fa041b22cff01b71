"""The receiver's HTTP surface: a POST on any path is a delivery; its answer says whether Seam
should send it again.

    200  recorded, or recorded before (a retry, a replay): Seam stops sending it
    400  signed, but not a Seam event: sending it again won't help, but Seam will retry
    401  not signed with the webhook's secret, or its timestamp is over 5 minutes off
    413  a body over ``MAX_BODY`` bytes
    503  the ledger couldn't take it within ``ANSWER_WITHIN`` seconds: Seam sends it again later

The ledger write runs in the ledger's worker thread, off the event loop, in a task of the
receiver's own: a delivery is never answered later than ``ANSWER_WITHIN`` (Seam gives up on an
answer after 15 seconds and retries), and a write still under way when it is answered 503 goes
on; its retry then finds it recorded. The receiver takes no run lock: an ``apply`` run may
write the same ledger meanwhile (SQLite's WAL, or PostgreSQL), and each waits for the other's
commit.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import TaskGroup
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pipeline.common.errors import PipelineError
from pipeline.ledger.events import EventOutcome, SeamEvent
from pipeline.ledger.location import LedgerLocation
from pipeline.ledger.store import Ledger
from pipeline.webhooks.events import read_event
from pipeline.webhooks.guard import OncePerMinute
from pipeline.webhooks.verify import Refused, Verifier

log = logging.getLogger(__name__)

# Seam waits 15 s for an answer before it counts the delivery as failed; answering within
# this leaves room for the network and a proxy.
ANSWER_WITHIN = 5.0
# Seam's events are a few kilobytes; a body larger than this isn't one.
MAX_BODY = 1024 * 1024


class WebhookReceiver:
    """Verifies deliveries and records their events in the ledger at ``ledger``, each once.

    Use ``async with receiver.accepting():`` around serving it (the app's lifespan does): it
    opens the ledger, the ledger writes run in its tasks, and leaving it waits for the writes
    under way, then closes the ledger.
    """

    def __init__(
        self, ledger: LedgerLocation, verifier: Verifier, *, answer_within: float = ANSWER_WITHIN
    ) -> None:
        self.ledger_path = ledger
        self._verifier = verifier
        self._answer_within = answer_within
        self._ledger: Ledger | None = None
        self._tasks: TaskGroup | None = None
        # Anyone can post: deliveries not signed with the secret are said once a minute,
        # counted, never a line each (a flood of them would fill the disk with lines).
        self._unsigned = OncePerMinute(
            "refused webhook deliveries not signed with the webhook's secret (answered 401)",
            logger=log,
        )

    @asynccontextmanager
    async def accepting(self) -> AsyncIterator[None]:
        """Accept deliveries for the block, with the ledger open. Raises as ``Ledger.open``
        does when it can't be opened."""
        async with await Ledger.open(self.ledger_path) as ledger:
            try:
                async with anyio.create_task_group() as tasks:
                    self._ledger, self._tasks = ledger, tasks
                    try:
                        yield
                    finally:
                        self._tasks = None
            finally:
                self._ledger = None

    async def receive(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """The HTTP status and JSON answer for one delivery (see the module's table). Never
        raises for what a delivery holds; logs one line per delivery, never its PIN, but for
        those not signed with the secret: one line a minute, counting them."""
        try:
            delivery = self._verifier.verify(body, headers)
            event = read_event(delivery.event)
        except Refused as refused:
            said = {"status": refused.status, "reason": refused.reason[:200]}
            if refused.status == 401:
                self._unsigned.note(reason=said["reason"])
            else:
                log.warning("refused a webhook delivery", extra=said)
            return refused.status, {"ok": False, "error": refused.reason[:200]}
        where = {
            "delivery_id": delivery.delivery_id[:100],
            "event_id": event.event_id[:100],
            "event_type": event.event_type[:100],
            "access_code_id": (event.access_code_id or "")[:100] or None,
        }
        recorded = await self._record(event, delivery.delivery_id)
        if isinstance(recorded, str):
            log.warning(f"webhook event not recorded: {recorded}", extra=where)
            return 503, {"ok": False, "error": recorded}
        changes = ", ".join(
            f"{tag} {before or '-'} -> {after or '-'}" for tag, before, after in recorded.changed
        )
        log.info(
            f"webhook event {recorded.outcome}",
            extra=where | ({"codes": changes} if changes else {}),
        )
        return 200, {"ok": True, "outcome": recorded.outcome}

    async def _record(self, event: SeamEvent, delivery_id: str) -> EventOutcome | str:
        """Record the event in a task of the receiver's; its outcome, or why it isn't recorded
        (yet: a write still going on after ``answer_within`` seconds goes on)."""
        ledger, tasks = self._ledger, self._tasks
        if ledger is None or tasks is None:
            raise RuntimeError("the receiver is not accepting: use `async with accepting()`")
        done = anyio.Event()
        result: list[EventOutcome | str] = []

        async def record() -> None:
            try:
                result.append(await ledger.record_seam_event(event, delivery_id=delivery_id))
            except PipelineError as exc:  # the ledger's disk: Seam sends it again later
                result.append(f"the ledger can't record it: {exc.one_line()}")
            except Exception as exc:  # a defect of ours: on record, and the server goes on
                log.exception("recording a webhook event failed")
                result.append(f"internal error {type(exc).__name__}")
            finally:
                done.set()

        tasks.start_soon(record)
        with anyio.move_on_after(self._answer_within):
            await done.wait()
        if not result:
            return f"the ledger is busy: still writing after {self._answer_within:g} s"
        return result[0]


def create_app(receiver: WebhookReceiver) -> Starlette:
    """The ASGI app: serve it with uvicorn (its lifespan opens ``receiver.accepting()``), or
    drive it with ``httpx.ASGITransport`` inside ``receiver.accepting()``."""

    async def deliver(request: Request) -> JSONResponse:
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY:
                    return JSONResponse(
                        {"ok": False, "error": f"body over {MAX_BODY} bytes"}, status_code=413
                    )
        except ClientDisconnect:
            return JSONResponse({"ok": False, "error": "disconnected"}, status_code=400)
        status, answer = await receiver.receive(bytes(body), request.headers)
        return JSONResponse(answer, status_code=status)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with receiver.accepting():
            yield

    return Starlette(routes=[Route("/{path:path}", deliver, methods=["POST"])], lifespan=lifespan)
