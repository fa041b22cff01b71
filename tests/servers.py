"""Servers on real sockets for tests: the sandbox over HTTP in a thread (with the environment a
subprocess needs to reach it), and a bare loopback TCP server to script the wire byte by byte."""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
from anyio.abc import SocketStream

from pipeline.sandbox import Faults, SandboxState, create_app
from pipeline.sandbox.server import serve_in_thread
from tests.apply_helpers import API_KEY, TAG

Handler = Callable[[SocketStream, bytes], Awaitable[None]]


def served(payload: dict, faults: Faults, door_rate=(10, 2.0)):
    state = SandboxState.from_payload(payload, door_rate=door_rate, seed=1)
    return state, serve_in_thread(create_app(state, faults))


def environment(url: str, key: str = API_KEY) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAM_")}
    return {**env, "SEAM_API_KEY": key, "SEAM_ENDPOINT": url}


def tags_on_doors(state: SandboxState) -> Counter[str]:
    return Counter(m[0] for c in state.codes.values() if (m := TAG.search(c.name or "")))


async def read_request(stream: SocketStream) -> bytes:
    """One HTTP/1.1 request, head and body (by its Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += await stream.receive()
    return head + b"\r\n\r\n" + body


@asynccontextmanager
async def server(handle: Handler) -> AsyncIterator[str]:
    """A loopback TCP server that hands each request to ``handle``; yields its URL."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def serve(stream: SocketStream) -> None:
        async with stream:
            try:
                while True:
                    await handle(stream, await read_request(stream))
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass

    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, serve)
        yield f"http://127.0.0.1:{port}"
        group.cancel_scope.cancel()


def wait_for_codes(state: SandboxState, count: int, process: subprocess.Popen) -> None:
    """Until the sandbox holds ``count`` codes (the run is busy creating); fails if the
    process ends first, or after a minute."""
    deadline = time.monotonic() + 60
    while len(state.codes) < count:
        assert process.poll() is None, "apply ended before it held that many codes"
        assert time.monotonic() < deadline
        time.sleep(0.02)
