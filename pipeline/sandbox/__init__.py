"""A local Seam API for dormakaba Oracode doors: the same paths, shapes, rules, rate limits and
failure modes the pipeline meets in production, as a real HTTP server (uvicorn) or in-process
(``httpx.ASGITransport``), with the events of each code's lifecycle (``/events/list``) and
Svix-signed webhooks for them. It imports nothing from the pipeline's client (it posts its
webhooks with its own httpx client); its ``--door-rate`` is read as apply reads it
(``pipeline.common.rates.Rate.parse``).
"""

from pipeline.sandbox.app import DroppedConnection, create_app
from pipeline.sandbox.server import build_sandbox, serve, serve_in_thread
from pipeline.sandbox.state import Faults, SandboxState
from pipeline.sandbox.webhooks import WebhookSender, WebhookSettingError, WebhookSettings

__all__ = [
    "DroppedConnection",
    "Faults",
    "SandboxState",
    "WebhookSender",
    "WebhookSettingError",
    "WebhookSettings",
    "build_sandbox",
    "create_app",
    "serve",
    "serve_in_thread",
]
