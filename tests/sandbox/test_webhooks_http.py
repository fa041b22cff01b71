"""The sandbox's webhooks over real HTTP: uvicorn posting to a receiver on loopback."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import defaultdict
from zoneinfo import ZoneInfo

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pipeline.sandbox import WebhookSettings, build_sandbox, serve_in_thread
from tests.paths import SANDBOX_DEVICES
from tests.sandbox.webhook_helpers import SECRET, verify
from tests.sandbox_helpers import KEY, create_body, door

pytestmark = pytest.mark.slow


def receiver(fail_first: int) -> tuple[Starlette, list[tuple[dict[str, str], bytes]]]:
    """A Starlette app on any path: records each delivery, answers 503 to the first few."""
    seen: list[tuple[dict[str, str], bytes]] = []
    lock = threading.Lock()

    async def take(request: Request) -> Response:
        body = await request.body()
        with lock:
            seen.append((dict(request.headers), body))
            count = len(seen)
        return Response(status_code=503 if count <= fail_first else 204)

    return Starlette(routes=[Route("/{path:path}", take, methods=["POST"])]), seen


def test_a_served_sandbox_posts_signed_lifecycle_webhooks_and_retries():
    """Served by uvicorn: create, move the clock; three signed events arrive, the first retried."""
    app, seen = receiver(fail_first=2)
    with serve_in_thread(app) as hooks_url:
        state, sandbox_app = build_sandbox(
            SANDBOX_DEVICES,
            webhooks=WebhookSettings(f"{hooks_url}/seam", SECRET, retry_scale=1e-3),
        )
        zone = ZoneInfo("America/New_York")
        day = (state.clock.now() + dt.timedelta(days=3)).astimezone(zone).date()
        starts = dt.datetime.combine(day, dt.time(16), zone)
        ends = dt.datetime.combine(day + dt.timedelta(days=2), dt.time(11), zone)
        body = create_body(
            door(state, "Lakeside Lodge", "Cabin 1"), starts.isoformat(), ends.isoformat()
        )
        with (
            serve_in_thread(sandbox_app) as url,
            httpx.Client(base_url=url, headers=KEY, timeout=10) as client,
        ):
            created = client.post("/access_codes/create", json=body).json()["access_code"]
            ahead = (starts - state.clock.now()).total_seconds()
            client.post("/_sandbox/clock", json={"advance_seconds": ahead})
            deadline = time.monotonic() + 20
            while (stats := client.get("/_sandbox/stats").json()["webhooks"])["pending"]:
                assert time.monotonic() < deadline, stats
                time.sleep(0.05)
            pin = client.post(
                "/access_codes/get", json={"access_code_id": created["access_code_id"]}
            ).json()["access_code"]["code"]
    attempts: dict[str, list[dict[str, object]]] = defaultdict(list)
    for headers, raw in seen:
        attempts[headers["svix-id"]].append(verify(headers, raw))
    assert len(seen) == 5  # 2 failed attempts, then 3 delivered
    assert sorted(len(tries) for tries in attempts.values()) in ([1, 1, 3], [1, 2, 2])
    assert all(len({e["event_id"] for e in tries}) == 1 for tries in attempts.values())
    events = [tries[0] for tries in attempts.values()]
    assert sorted(str(e["event_type"]) for e in events) == [
        "access_code.created",
        "access_code.scheduled_on_device",
        "access_code.set_on_device",
    ]
    assert next(e["code"] for e in events if "code" in e) == pin
    assert (stats["sent"], stats["failed"], stats["retried"]) == (3, 2, 2)
