"""A local Seam API for dormakaba Oracode doors: the same paths, shapes, rules, rate limits and
failure modes the pipeline meets in production, as a real HTTP server (uvicorn) or in-process
(``httpx.ASGITransport``). It imports nothing from the pipeline's client; its ``--door-rate``
is read as apply reads it (``pipeline.settings.parse_rate``).
"""

from pipeline.sandbox.app import DroppedConnection, create_app
from pipeline.sandbox.server import build_sandbox, serve, serve_in_thread
from pipeline.sandbox.state import Faults, SandboxState

__all__ = [
    "DroppedConnection",
    "Faults",
    "SandboxState",
    "build_sandbox",
    "create_app",
    "serve",
    "serve_in_thread",
]
