"""The sandbox's HTTP surface: Seam's paths (POST, JSON, bearer key) and ``/_sandbox/`` controls.

Every Seam response carries ``seam-request-id``; errors use Seam's shape
``{"error": {"type", "message", "data"?}, "ok": false}``. Faults, when configured, are drawn
from a seeded generator so a run can be repeated exactly.

What falls due on the sandbox clock (late creates, lifecycle events) happens before each
request is handled, so an answer never lags behind the clock; while the app runs under a
server (its lifespan), a background task also catches up every ``CATCH_UP_EVERY`` seconds of
real time and the webhook sender posts the events.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from pipeline.sandbox.controls import control_routes
from pipeline.sandbox.events import Event
from pipeline.sandbox.handlers import (
    HANDLERS,
    Handler,
    SeamFailure,
    answer_late,
    catch_up,
    create_code,
    get_workspace,
    rate_limited,
)
from pipeline.sandbox.state import WORKSPACE_ID, Faults, SandboxState
from pipeline.sandbox.webhooks import WebhookSender

# Real seconds between two catch-ups while nothing is asked: how late a webhook can be.
CATCH_UP_EVERY = 0.2


class DroppedConnection(Exception):
    """The sandbox dropped a connection on purpose, after the request took effect."""


class _Dropped(Response):
    """Start a 200 answer, send part of it, then break off (the client can't know the outcome)."""

    def __init__(self, request_id: str) -> None:
        super().__init__()
        self.request_id = request_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"4096"),
            (b"seam-request-id", self.request_id.encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"access_code": {', "more_body": True})
        raise DroppedConnection("connection dropped by the sandbox after the code was created")


def create_app(
    state: SandboxState, faults: Faults | None = None, webhooks: WebhookSender | None = None
) -> Starlette:
    """The ASGI app; serve it with uvicorn or drive it with ``httpx.ASGITransport``.

    ``webhooks`` gets every event the state records (default: a sender without a URL, which
    ``/_sandbox/configure`` can give one). It sends only while the app's lifespan runs (a
    server runs it; in-process, enter ``app.router.lifespan_context(app)``)."""
    faults = faults or Faults()
    sender = WebhookSender() if webhooks is None else webhooks

    def send(event: Event) -> None:
        if sender.settings.url is not None:
            sender.enqueue(event.public(WORKSPACE_ID))

    state.events.on_record = send

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as group:
            group.start_soon(_keep_catching_up, state)
            group.start_soon(sender.run)
            yield
            group.cancel_scope.cancel()

    async def seam(request: Request) -> Response:
        path = request.url.path
        # The backend goes on between requests: what fell due meanwhile happens before this one.
        catch_up(state)
        request_id = f"req_{state.new_id()}"
        response = _answer(
            state, faults, HANDLERS.get(path), request, await request.body(), request_id
        )
        state.requests[(path, 0 if isinstance(response, _Dropped) else response.status_code)] += 1
        low, high = faults.latency_ms
        if high > 0:
            await anyio.sleep(state.rng.uniform(low, high) / 1000)
        response.headers["seam-request-id"] = request_id
        return response

    control = control_routes(state, faults, sender)
    return Starlette(
        lifespan=lifespan,
        routes=[
            *(
                Route(f"/_sandbox/{name}", endpoint, methods=["GET", "POST"])
                for name, endpoint in control.items()
            ),
            Route("/{path:path}", seam, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        ],
    )


async def _keep_catching_up(state: SandboxState) -> None:
    while True:
        catch_up(state)
        await anyio.sleep(CATCH_UP_EVERY)


def _answer(
    state: SandboxState,
    faults: Faults,
    handler: Handler | None,
    request: Request,
    raw: bytes,
    request_id: str,
) -> Response:
    try:
        workspace_id = _authenticate(request, faults.revoked_keys)
        if handler is None:
            raise SeamFailure(404, "not_found", f"no endpoint {request.url.path}")
        if request.method != "POST":
            raise SeamFailure(405, "method_not_allowed", "use POST with a JSON body")
        _take_global_slot(state)
        if faults.fail_before and state.rng.random() < faults.fail_before:
            raise SeamFailure(503, "service_unavailable", "temporarily unavailable (sandbox fault)")
        body = _json_body(raw)
        if handler is create_code and faults.late and state.rng.random() < faults.late:
            raise answer_late(state, faults, body)
        result = handler(state, faults, body)
        if handler is get_workspace:
            result["workspace"]["workspace_id"] = workspace_id
    except SeamFailure as failure:
        return _error(failure)
    if handler is create_code and faults.drop_after and state.rng.random() < faults.drop_after:
        kind = state.rng.choice(("502", "504", "drop"))
        if kind == "drop":
            return _Dropped(request_id)
        error_type = "bad_gateway" if kind == "502" else "gateway_timeout"
        return _error(SeamFailure(int(kind), error_type, "upstream error (sandbox fault)"))
    return JSONResponse({**result, "ok": True})


def _error(failure: SeamFailure) -> JSONResponse:
    error: dict[str, Any] = {"type": failure.error_type, "message": failure.message}
    if failure.data is not None:
        error["data"] = failure.data
    return JSONResponse(
        {"error": error, "ok": False}, status_code=failure.status, headers=failure.headers
    )


def _authenticate(request: Request, revoked: set[str]) -> str:
    """The workspace the request acts in (the sandbox's own for an API key; for a personal
    access token, the one its ``seam-workspace`` header names), or a 401."""
    header = request.headers.get("authorization", "")
    token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    if token in revoked:
        raise SeamFailure(401, "unauthorized", "Unauthorized: this API key has been revoked")
    if not token.startswith("seam_"):
        raise SeamFailure(401, "unauthorized", "Unauthorized: send Authorization: Bearer seam_...")
    if token.startswith("seam_at"):
        workspace_id = request.headers.get("seam-workspace")
        if not workspace_id:
            raise SeamFailure(
                401, "unauthorized", "a personal access token needs the seam-workspace header"
            )
        return workspace_id
    return WORKSPACE_ID


def _take_global_slot(state: SandboxState) -> None:
    window = state.global_window
    if window is None:
        return
    now = state.clock.monotonic()
    wait = window.wait_needed(now)
    if wait > 0:
        raise rate_limited("global", f"{state.global_rate:g} requests per second", wait)
    window.record(now)


def _json_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise SeamFailure(400, "invalid_input", "the request body is not JSON") from exc
    if not isinstance(body, dict):
        raise SeamFailure(400, "invalid_input", "the request body must be a JSON object")
    return body
