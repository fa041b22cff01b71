"""``/_sandbox/`` endpoints for tests and benchmarks: inspect, reset, move the clock, change
faults and webhooks, seed codes. Never on Seam's paths, and no key needed.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pipeline.common.rates import Rate
from pipeline.sandbox.handlers import catch_up
from pipeline.sandbox.state import WORKSPACE_ID, Code, Faults, SandboxState
from pipeline.sandbox.webhooks import WebhookSender, WebhookSettingError, WebhookSettings

# /_sandbox/configure's keys for the webhook settings, by WebhookSettings field.
_WEBHOOK_KEYS = {
    "url": "webhook_url",
    "secret": "webhook_secret",
    "retry_scale": "webhook_retry_scale",
}


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise HTTPException(400, "the request body is not JSON") from exc
    if not isinstance(body, dict):
        raise HTTPException(400, "the request body must be a JSON object")
    return body


def _number(body: dict[str, Any], key: str, current: float, *, at_most: float) -> float:
    """``body[key]`` as a number in 0..at_most, or ``current`` when the key is absent."""
    value = body.get(key, current)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HTTPException(400, f"{key} must be a number")
    if not (math.isfinite(value) and 0 <= value <= at_most):
        span = f"between 0 and {at_most:g}" if math.isfinite(at_most) else "0 or more"
        raise HTTPException(400, f"{key} must be {span}")
    return float(value)


def _webhook_settings(body: dict[str, Any], current: WebhookSettings) -> WebhookSettings:
    """The webhook settings with the body's ``webhook_*`` keys applied (a null URL stops the
    sending); an HTTPException 400 naming the key when they can't be used."""
    given = {name: body[key] for name, key in _WEBHOOK_KEYS.items() if key in body}
    try:
        return replace(current, **given)
    except WebhookSettingError as exc:
        raise HTTPException(400, f"{_WEBHOOK_KEYS[exc.setting]} {exc.problem}") from exc


def control_routes(
    state: SandboxState, faults: Faults, webhooks: WebhookSender
) -> dict[str, Callable[[Request], Awaitable[Response]]]:
    """``/_sandbox/`` endpoints for tests and benchmarks (never on Seam's paths, no key)."""

    async def stats(request: Request) -> Response:
        catch_up(state)
        return JSONResponse(
            {
                "requests": [
                    {"path": path, "status": status, "count": count}
                    for (path, status), count in sorted(state.requests.items())
                ],
                "codes_per_door": {d: len(c) for d, c in state.codes_by_device.items() if c},
                "codes": len(state.codes),
                "clock": state.clock.now().isoformat(),
                "late": {
                    "answered_504": state.late_counts["answered_504"],
                    "carried_out": state.late_counts["carried_out"],
                    "refused": state.late_counts["refused"],
                    "refused_by_type": dict(sorted(state.late_refusals.items())),
                    "pending": len(state.late_creates),
                },
                "events": {
                    "recorded": len(state.events.events),
                    "by_type": dict(sorted(state.events.counts.items())),
                },
                "webhooks": webhooks.stats(),
            }
        )

    async def codes(request: Request) -> Response:
        catch_up(state)
        now = state.clock.now()
        return JSONResponse(
            {
                "codes": [
                    {
                        **code.public(now, WORKSPACE_ID),
                        "pin": code.pin,
                        "rounded_by_s": code.rounded_by_s,
                        "max_time_rounding": code.max_time_rounding,
                        "created_monotonic": code.created_monotonic,
                    }
                    for code in state.codes.values()
                ]
            }
        )

    async def reset(request: Request) -> Response:
        state.reset()
        webhooks.reset()
        return JSONResponse({"ok": True})

    async def clock(request: Request) -> Response:
        body = await _body(request)
        state.clock.advance(float(body.get("advance_seconds", 0)))
        catch_up(state)
        return JSONResponse({"now": state.clock.now().isoformat()})

    async def configure(request: Request) -> Response:
        body = await _body(request)
        # Checked before anything is set, so a refused request changes nothing.
        late = _number(body, "late", faults.late, at_most=1.0)
        late_after = _number(body, "late_after", faults.late_after, at_most=math.inf)
        list_lag = _number(body, "list_lag", faults.list_lag, at_most=math.inf)
        hooks = _webhook_settings(body, webhooks.settings)
        if hooks != webhooks.settings:
            webhooks.configure(hooks)
        faults.late, faults.late_after, faults.list_lag = late, late_after, list_lag
        faults.fail_before = float(body.get("fail_before", faults.fail_before))
        faults.drop_after = float(body.get("drop_after", faults.drop_after))
        if key := body.get("revoke_key"):
            faults.revoked_keys.add(str(key))
        if "door_rate" in body:
            rate = body["door_rate"]
            state.door_rate = None if rate is None else Rate(int(rate[0]), float(rate[1]))
            state.door_windows = {}
        return JSONResponse(
            {
                "fail_before": faults.fail_before,
                "drop_after": faults.drop_after,
                "late": faults.late,
                "late_after": faults.late_after,
                "list_lag": faults.list_lag,
                # Never the secret: only whether there is one.
                "webhook_url": webhooks.settings.url,
                "webhook_secret_set": webhooks.settings.secret is not None,
                "webhook_retry_scale": webhooks.settings.retry_scale,
            }
        )

    async def seed_codes(request: Request) -> Response:
        body = await _body(request)
        per_door = int(body.get("per_door", 0))
        only = body.get("device_ids")
        now = state.clock.now()
        for device_id, slots in state.slots.items():
            if only is not None and device_id not in only:
                continue
            slot = next((s for s in slots if s.is_eligible), None)
            if slot is None:
                continue
            for n in range(per_door):
                start = now + dt.timedelta(days=2 + n % 300)
                state.add_code(
                    Code(
                        access_code_id=state.new_id(),
                        device_id=device_id,
                        name=f"seeded {len(state.codes_by_device[device_id])}",
                        starts_at=start,
                        ends_at=start + dt.timedelta(days=2),
                        slot=slot,
                        site_name=None,
                        pin=f"{slot.prefix}{n:05d}"[:6],
                        created_at=now,
                        rounded_by_s=0.0,
                        max_time_rounding="1hour",
                    )
                )
        return JSONResponse({"codes": len(state.codes)})

    async def duplicate(request: Request) -> Response:
        """A second code like an existing one (same door, name and window; its own id and
        PIN), as a backend that carried a create out twice would leave: a duplicate made on
        purpose, for the pipeline to find and say."""
        body = await _body(request)
        original = state.codes.get(str(body.get("access_code_id")))
        if original is None:
            raise HTTPException(404, "no such access_code_id")
        now = state.clock.now()
        copy = replace(
            original,
            access_code_id=state.new_id(),
            pin=state.new_pin(original.device_id, original.slot.prefix),
            created_at=now,
            created_monotonic=state.clock.monotonic(),
        )
        state.add_code(copy)
        return JSONResponse({"access_code": copy.public(now, WORKSPACE_ID), "pin": copy.pin})

    return {
        "stats": stats,
        "codes": codes,
        "reset": reset,
        "clock": clock,
        "configure": configure,
        "seed_codes": seed_codes,
        "duplicate": duplicate,
    }
