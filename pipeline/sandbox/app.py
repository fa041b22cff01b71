"""The sandbox's HTTP surface: Seam's paths (POST, JSON, bearer key) and ``/_sandbox/`` controls.

Every Seam response carries ``seam-request-id``; errors use Seam's shape
``{"error": {"type", "message", "data"?}, "ok": false}``. Faults, when configured, are drawn
from a seeded generator so a run can be repeated exactly.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from pipeline.sandbox.controls import control_routes
from pipeline.sandbox.handlers import (
    HANDLERS,
    Handler,
    SeamFailure,
    answer_late,
    carry_out_late_creates,
    create_code,
    rate_limited,
)
from pipeline.sandbox.state import Faults, SandboxState


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


def create_app(state: SandboxState, faults: Faults | None = None) -> Starlette:
    """The ASGI app; serve it with uvicorn or drive it with ``httpx.ASGITransport``."""
    faults = faults or Faults()

    async def seam(request: Request) -> Response:
        path = request.url.path
        # The backend goes on between requests: what fell due meanwhile happens before this one.
        carry_out_late_creates(state)
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

    control = control_routes(state, faults)
    return Starlette(
        routes=[
            *(
                Route(f"/_sandbox/{name}", endpoint, methods=["GET", "POST"])
                for name, endpoint in control.items()
            ),
            Route("/{path:path}", seam, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        ]
    )


def _answer(
    state: SandboxState,
    faults: Faults,
    handler: Handler | None,
    request: Request,
    raw: bytes,
    request_id: str,
) -> Response:
    try:
        _authenticate(request, faults.revoked_keys)
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


def _authenticate(request: Request, revoked: set[str]) -> None:
    header = request.headers.get("authorization", "")
    token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    if token in revoked:
        raise SeamFailure(401, "unauthorized", "Unauthorized: this API key has been revoked")
    if not token.startswith("seam_"):
        raise SeamFailure(401, "unauthorized", "Unauthorized: send Authorization: Bearer seam_...")
    if token.startswith("seam_at") and not request.headers.get("seam-workspace"):
        raise SeamFailure(
            401, "unauthorized", "a personal access token needs the seam-workspace header"
        )


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
    except ValueError as exc:
        raise SeamFailure(400, "invalid_input", "the request body is not JSON") from exc
    if not isinstance(body, dict):
        raise SeamFailure(400, "invalid_input", "the request body must be a JSON object")
    return body
