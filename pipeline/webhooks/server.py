"""Serving the receiver with uvicorn, on a socket bound first so that a port in use is one line.

uvicorn serves on the caller's event loop (``serve``), with the app's lifespan opening the
ledger and waiting, on the way out, for the ledger writes under way (SIGINT and SIGTERM stop
it gracefully). Its log lines go where the pipeline's go (``configure_logging``). Its HTTP
protocol is ``guard``'s: a deadline for each request, a cap on connections, and one line a
minute, not a traceback per accept, when the process runs out of file descriptors.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import uvicorn

from pipeline.common.listening import listen
from pipeline.webhooks import guard
from pipeline.webhooks.app import WebhookReceiver, create_app
from pipeline.webhooks.guard import GuardedH11Protocol, quiet_out_of_descriptors

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8788


def bind(host: str, port: int) -> socket.socket:
    """The receiver's listening socket on ``host``:``port`` (0: a free port), as ``listen``
    has it (UsageError, exit 2, when it can't be had)."""
    return listen(host, port, server="the webhook receiver")


def address(listening: socket.socket) -> str:
    """The receiver's URL on ``listening`` (its port, when it was bound to port 0)."""
    host, port = listening.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _server(receiver: WebhookReceiver) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(receiver),
        log_config=None,  # the pipeline's logging, as configured by the command
        access_log=False,  # a line per delivery comes from the receiver itself
        lifespan="on",
        http=GuardedH11Protocol,
        # The cap is the protocol's, at the connection (refused ones are never counted here);
        # uvicorn's own, one above it, only backs it up for requests still being handled
        # after their connection went.
        limit_concurrency=guard.MAX_CONNECTIONS + 1,
        # A connection kept alive after an answer, with nothing more sent, is closed.
        timeout_keep_alive=5,
    )
    return uvicorn.Server(config)


async def serve(receiver: WebhookReceiver, listening: socket.socket) -> None:
    """Serve ``receiver`` on ``listening`` until SIGINT or SIGTERM (uvicorn's graceful stop)."""
    quiet_out_of_descriptors(asyncio.get_running_loop())
    await _server(receiver).serve(sockets=[listening])


@asynccontextmanager
async def serving(receiver: WebhookReceiver, listening: socket.socket) -> AsyncIterator[str]:
    """Serve ``receiver`` on ``listening`` in the background for the block (tests); yields its
    URL once it answers, and stops it gracefully at the end of the block."""
    server = _server(receiver)
    loop = asyncio.get_running_loop()
    handler = loop.get_exception_handler()
    quiet_out_of_descriptors(loop)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(functools.partial(server.serve, sockets=[listening]))
        with anyio.fail_after(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn sets a flag, not an event
                await anyio.sleep(0.01)
        try:
            yield address(listening)
        finally:
            server.should_exit = True
    loop.set_exception_handler(handler)
