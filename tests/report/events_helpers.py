"""A stand-in for Seam's ``/events/list`` in front of the in-process sandbox (the sandbox's own
is being written on another branch): ``access_code.set_on_device`` events derived from the
sandbox's codes and clock, as Seam documents them (no cursor, at most ``limit`` per call),
oldest first. Each code is set at its own moment in the 10 minutes after the sandbox says
``set`` (real locks don't all sync at once), so events rarely share an instant."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from pipeline.sandbox.state import SET_LEAD, SandboxState

SET_ON_DEVICE = "access_code.set_on_device"


def with_events(state: SandboxState, app: ASGIApp) -> ASGIApp:
    """``app`` with ``/events/list`` answered from ``state`` (counted in ``state.requests``)."""

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/events/list":
            await app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        state.requests[("/events/list", 200)] += 1
        response = JSONResponse({"events": set_events(state, json.loads(body or b"{}"))})
        await response(scope, receive, send)

    return serve


def set_events(state: SandboxState, request: dict[str, Any]) -> list[dict[str, Any]]:
    """The set-on-device events after ``request['since']`` up to the sandbox's now, oldest
    first, at most ``limit`` (500 by default)."""
    since = dt.datetime.fromisoformat(request["since"].replace("Z", "+00:00"))
    types = request.get("event_types")
    if types is not None and SET_ON_DEVICE not in types:
        return []
    now = state.clock.now()
    events = []
    for code in state.codes.values():
        spread = dt.timedelta(seconds=int(code.access_code_id.replace("-", ""), 16) % 600)
        set_at = code.starts_at - SET_LEAD + spread
        if code.is_stuck or not since < set_at <= now:
            continue
        at = set_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        events.append(
            {
                "event_id": f"evt-{code.access_code_id}",
                "event_type": SET_ON_DEVICE,
                "access_code_id": code.access_code_id,
                "device_id": code.device_id,
                "code": code.pin,
                "occurred_at": at,
                "created_at": at,
            }
        )
    events.sort(key=lambda event: (event["occurred_at"], event["event_id"]))
    return events[: int(request.get("limit", 500))]
