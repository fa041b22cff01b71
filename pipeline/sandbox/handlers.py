"""Seam's paths as plain functions of the state and a JSON body: the devices, the access
codes with the door's rules, and the events. Each returns the answer's fields or raises
``SeamFailure``.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from collections.abc import Callable
from typing import Any

from pipeline.sandbox.events import BadQuery, read_query
from pipeline.sandbox.rules import (
    ROUNDING,
    RuleViolation,
    check_duration,
    check_instant,
    check_window,
    match_slot,
)
from pipeline.sandbox.state import WORKSPACE_ID, Code, Faults, SandboxState, SlidingWindow

ORACODE = "dormakaba_oracode_door"


class SeamFailure(Exception):
    """Raised by a handler: becomes an error response in Seam's shape."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        data: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message
        self.data, self.headers = data, headers or {}


Handler = Callable[[SandboxState, Faults, dict[str, Any]], dict[str, Any]]


def rate_limited(limit: str, what: str, wait: float) -> SeamFailure:
    return SeamFailure(
        429,
        "rate_limit_exceeded",
        f"rate limit exceeded: {limit} limit of {what}",
        data={"limit": limit, "retry_after_seconds": wait},
        headers={"retry-after": str(max(1, math.ceil(wait)))},
    )


def _invalid(field: str, message: str) -> SeamFailure:
    return SeamFailure(
        400,
        "invalid_input",
        f"{field}: {message}",
        data={"validation_errors": {field: {"_errors": [message]}}},
    )


def _device(state: SandboxState, body: dict[str, Any]) -> dict[str, Any]:
    device_id = body.get("device_id")
    if not isinstance(device_id, str):
        raise _invalid("device_id", "Required")
    device = state.devices.get(device_id)
    if device is None:
        raise SeamFailure(404, "device_not_found", f"Device {device_id} not found")
    return device


def _page(
    items: list[Any], body: dict[str, Any], default_limit: int
) -> tuple[list[Any], dict[str, Any]]:
    limit = body.get("limit", default_limit)
    if not isinstance(limit, int | float) or not math.isfinite(limit) or limit < 1:
        raise _invalid("limit", "must be a positive number")
    cursor = body.get("page_cursor")
    try:
        start = int(base64.urlsafe_b64decode(cursor).decode()) if cursor else 0
    except (ValueError, TypeError) as exc:
        raise _invalid("page_cursor", "is not a cursor this API gave out") from exc
    end = start + int(limit)
    has_next = end < len(items)
    next_cursor = base64.urlsafe_b64encode(str(end).encode()).decode() if has_next else None
    return items[start:end], {
        "has_next_page": has_next,
        "next_page_cursor": next_cursor,
        "next_page_url": None,
    }


def _list_devices(state: SandboxState, faults: Faults, body: dict[str, Any]) -> dict[str, Any]:
    devices = list(state.devices.values())
    types = set(body.get("device_types") or []) | (
        {body["device_type"]} if body.get("device_type") else set()
    )
    if types:
        devices = [d for d in devices if d["device_type"] in types]
    if manufacturer := body.get("manufacturer"):
        devices = [
            d for d in devices if d.get("properties", {}).get("manufacturer") == manufacturer
        ]
    if ids := body.get("device_ids"):
        wanted = set(ids)
        devices = [d for d in devices if d["device_id"] in wanted]
    page, pagination = _page(devices, body, 500)
    return {"devices": page, "pagination": pagination}


def _get_device(state: SandboxState, faults: Faults, body: dict[str, Any]) -> dict[str, Any]:
    return {"device": _device(state, body)}


def _get_lock(state: SandboxState, faults: Faults, body: dict[str, Any]) -> dict[str, Any]:
    device = _device(state, body)
    return {"lock": device, "device": device}


def create_code(state: SandboxState, faults: Faults, body: dict[str, Any]) -> dict[str, Any]:
    """Create a code now, if the door's rules and its rate limit allow it."""
    return _create(state, body, now=state.clock.now(), now_mono=state.clock.monotonic())


def answer_late(state: SandboxState, faults: Faults, body: dict[str, Any]) -> SeamFailure:
    """A create the gateway times out on (``--late``): the door's rate window counts it now
    (a 429 if the window is full, and then nothing is queued), the backend carries it out
    ``late_after`` seconds later (``carry_out_late_creates``); returns the 504 to answer."""
    device_id = body.get("device_id")
    if isinstance(device_id, str) and device_id in state.devices:
        now_mono = state.clock.monotonic()
        window = _door_rate_window(state, device_id, now_mono)
        if window is not None:
            window.record(now_mono)
    state.queue_late_create(body, faults.late_after)
    return SeamFailure(
        504, "gateway_timeout", "upstream request timed out (sandbox fault: it may still happen)"
    )


def carry_out_late_creates(state: SandboxState) -> None:
    """Carry out every queued late create whose time has come, earliest first, each as of its
    due time (its ``created_at`` is that time, or the wall clock's now if earlier: virtual
    event-loop time moves only the monotonic clock). The door's rules, code-count limit
    included, are checked then; a create they refuse creates nothing and is counted under
    ``refused`` with its error type. Its rate was counted when it arrived, not again."""
    for late in state.pop_due_late_creates():
        now = min(late.due_at, state.clock.now())
        try:
            _create(state, late.body, now=now, now_mono=late.due, rate_counted=True)
        except SeamFailure as failure:
            state.late_counts["refused"] += 1
            state.late_refusals[failure.error_type] += 1
        else:
            state.late_counts["carried_out"] += 1


def catch_up(state: SandboxState) -> None:
    """What fell due on the sandbox clock happens now: late creates carried out, then the
    lifecycle events recorded (each as of its own moment)."""
    carry_out_late_creates(state)
    state.record_due_events()


def _door_rate_window(state: SandboxState, device_id: str, now_mono: float) -> SlidingWindow | None:
    """The door's rate window, or a 429 when it is full (10 creations a minute per device)."""
    window = state.door_window(device_id)
    if window is not None and (wait := window.wait_needed(now_mono)) > 0:
        assert state.door_rate is not None
        count, period = state.door_rate
        raise rate_limited(
            "door", f"{count} access code creations per {period:g} s on device {device_id}", wait
        )
    return window


def _create(
    state: SandboxState,
    body: dict[str, Any],
    *,
    now: dt.datetime,
    now_mono: float,
    rate_counted: bool = False,
) -> dict[str, Any]:
    device = _device(state, body)
    device_id = device["device_id"]
    if device["device_type"] != ORACODE or device_id not in state.slots:
        raise _invalid("device_id", "this sandbox only creates codes on dormakaba Oracode doors")
    properties = device.get("properties", {})
    can_offline = device.get(
        "can_program_offline_access_codes", properties.get("offline_access_codes_enabled")
    )
    if not can_offline:
        raise _invalid("device_id", "this device can't program offline access codes")
    if not isinstance(body.get("name", ""), str | None):
        raise _invalid("name", "must be a string")
    if "code" in body:
        raise _invalid("code", "dormakaba Oracode PINs are generated; don't send code")
    is_offline = body.get("is_offline_access_code", body.get("use_offline_access_code"))
    if is_offline is not True:
        raise _invalid("is_offline_access_code", "must be true on a dormakaba Oracode door")
    rounding_name = body.get("max_time_rounding", "1hour")
    if not isinstance(rounding_name, str) or rounding_name not in ROUNDING:
        raise _invalid("max_time_rounding", "must be one of 1hour, 1h, 1day, 1d")
    window = None if rate_counted else _door_rate_window(state, device_id, now_mono)
    try:
        starts_at = check_instant(body.get("starts_at"), "starts_at")
        ends_at = check_instant(body.get("ends_at"), "ends_at")
        check_window(starts_at, ends_at, now)
        match = match_slot(state.slots[device_id], starts_at, ends_at, ROUNDING[rounding_name])
        # The lock keeps the level's window (in the level's zone): that is what must fit.
        check_duration(match.starts_at, match.ends_at, match.slot.zone)
    except RuleViolation as violation:
        raise SeamFailure(400, violation.error_type, violation.message) from violation
    limit = state.code_limits.get(device_id)
    existing = len(state.codes_by_device[device_id])
    if limit is not None and existing >= limit:
        raise SeamFailure(
            400,
            "no_space_for_access_code_on_device",
            f"device {device_id} holds {existing} access codes, its limit of {limit}; "
            "dormakaba Oracode codes can't be deleted",
            data={"limit": limit, "used": existing},
        )
    if window is not None:
        window.record(now_mono)
    code = Code(
        access_code_id=state.new_id(),
        device_id=device_id,
        name=body.get("name"),
        starts_at=match.starts_at,
        ends_at=match.ends_at,
        slot=match.slot,
        site_name=device["properties"]["dormakaba_oracode_metadata"].get("site_name"),
        pin=state.new_pin(device_id, match.slot.prefix),
        created_at=now,
        rounded_by_s=match.rounded_by.total_seconds(),
        max_time_rounding=rounding_name,
        is_stuck=device_id in state.stuck_devices,
        created_monotonic=now_mono,
    )
    state.add_code(code)
    attempt_id = state.new_id()
    state.attempts[attempt_id] = code.access_code_id
    return {
        "access_code": code.public(now, WORKSPACE_ID),
        "action_attempt": _attempt(attempt_id, "pending", None),
    }


def _attempt(attempt_id: str, status: str, result: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "action_attempt_id": attempt_id,
        "action_type": "CREATE_ACCESS_CODE",
        "status": status,
        "result": result,
        "error": None,
    }


def _by_id(
    table: dict[str, Any], body: dict[str, Any], field: str, missing: str
) -> tuple[str, Any]:
    """Look ``body[field]`` up in ``table``; a 404 of type ``missing`` when it isn't there."""
    key = body.get(field)
    if not isinstance(key, str) or key not in table:
        noun = missing.removesuffix("_not_found").replace("_", " ").capitalize()
        raise SeamFailure(404, missing, f"{noun} {key} not found")
    return key, table[key]


def _get_code(state: SandboxState, faults: Faults, body: dict[str, Any]) -> dict[str, Any]:
    _, code = _by_id(state.codes, body, "access_code_id", "access_code_not_found")
    return {"access_code": code.public(state.clock.now(), WORKSPACE_ID)}


def _list_codes(state: SandboxState, faults: Faults, body: dict[str, Any]) -> dict[str, Any]:
    if body.get("device_id"):
        codes = list(state.codes_by_device.get(_device(state, body)["device_id"], []))
    elif isinstance(body.get("access_code_ids"), list):
        codes = [state.codes[i] for i in body["access_code_ids"] if i in state.codes]
    else:
        raise _invalid("device_id", "specify device_id or access_code_ids")
    if faults.list_lag:
        # Seam's list reads an index that catches up after a while; get reads the code itself.
        seen_before = state.clock.monotonic() - faults.list_lag
        codes = [c for c in codes if c.created_monotonic <= seen_before]
    now = state.clock.now()
    if search := body.get("search"):
        needle = str(search).lower()
        codes = [
            c
            for c in codes
            if needle in (c.name or "").lower()
            or needle in c.access_code_id
            or (c.status(now) == "set" and needle in c.pin)
        ]
    page, pagination = _page(codes, body, 55_000)
    return {
        "access_codes": [code.public(now, WORKSPACE_ID) for code in page],
        "pagination": pagination,
    }


def _get_attempt(state: SandboxState, faults: Faults, body: dict[str, Any]) -> dict[str, Any]:
    attempt_id, code_id = _by_id(
        state.attempts, body, "action_attempt_id", "action_attempt_not_found"
    )
    code = state.codes[code_id].public(state.clock.now(), WORKSPACE_ID)
    return {"action_attempt": _attempt(attempt_id, "success", {"access_code": code})}


def get_workspace(state: SandboxState, faults: Faults, body: dict[str, Any]) -> dict[str, Any]:
    """The workspace the key belongs to (the app puts in a personal access token's own)."""
    return {
        "workspace": {
            "workspace_id": WORKSPACE_ID,
            "name": "Oracode sandbox",
            "company_name": "Oracode sandbox",
            "is_sandbox": True,
            "connect_partner_name": None,
        }
    }


def _list_events(state: SandboxState, faults: Faults, body: dict[str, Any]) -> dict[str, Any]:
    """Events by ``occurred_at`` (ascending; Seam doesn't document an order), no cursor and no
    ``pagination``: a client pages by moving ``since`` to the last ``occurred_at`` it saw."""
    try:
        query = read_query(body)
    except BadQuery as bad:
        raise _invalid(bad.field, bad.message) from bad
    return {"events": [event.public(WORKSPACE_ID) for event in state.events.query(query)]}


HANDLERS: dict[str, Handler] = {
    "/devices/list": _list_devices,
    "/devices/get": _get_device,
    "/locks/get": _get_lock,
    "/access_codes/create": create_code,
    "/access_codes/get": _get_code,
    "/access_codes/list": _list_codes,
    "/action_attempts/get": _get_attempt,
    "/events/list": _list_events,
    "/workspaces/get": get_workspace,
}
