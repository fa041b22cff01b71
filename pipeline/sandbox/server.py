"""Serving the sandbox with uvicorn: in the foreground (the CLI) or in a thread (tests, demo)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from pipeline.common.rates import SEAM_DOOR_RATE, Rate
from pipeline.sandbox.app import DroppedConnection, create_app
from pipeline.sandbox.state import Faults, SandboxState
from pipeline.sandbox.webhooks import WebhookSender, WebhookSettings

DEFAULT_DEVICES = Path("inputs/sandbox-devices.json")


def parse_latency(text: str) -> tuple[float, float]:
    """``40-120`` → (40.0, 120.0); ``50`` → (50.0, 50.0)."""
    low, _, high = text.partition("-")
    return float(low), float(high or low)


def build_sandbox(
    devices: Path = DEFAULT_DEVICES,
    *,
    door_rate: Rate | None = SEAM_DOOR_RATE,
    global_rate: float | None = None,
    faults: Faults | None = None,
    seed: int = 0,
    webhooks: WebhookSettings | None = None,
) -> tuple[SandboxState, Starlette]:
    """Load the device file and build the state and its app. ``door_rate`` is creates per
    door as ``pipeline.common.rates.Rate.parse`` reads ``--door-rate`` (None: no limit);
    ``webhooks`` where the events are posted (default: nowhere)."""
    payload = json.loads(devices.read_text(encoding="utf-8"))
    state = SandboxState.from_payload(
        payload, door_rate=door_rate, global_rate=global_rate, seed=seed
    )
    return state, create_app(state, faults, WebhookSender(webhooks))


def _is_not_a_deliberate_drop(record: logging.LogRecord) -> bool:
    """A connection the sandbox drops on purpose is a fault it simulates, not a server error."""
    return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


logging.getLogger("uvicorn.error").addFilter(_is_not_a_deliberate_drop)


def serve(app: Starlette, host: str, port: int) -> None:
    """Run in the foreground until Ctrl-C (uvicorn stops cleanly on SIGINT/SIGTERM)."""
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


@contextmanager
def serve_in_thread(app: Starlette, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve on a free loopback port in a background thread; yields the base URL."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="sandbox", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the sandbox server did not start")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()
    try:
        yield f"http://{bound[0]}:{bound[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
