"""The receiver's event loop when the server stops while asyncio waits to accept again."""

from __future__ import annotations

import asyncio
import errno
import os
import socket

import pytest

from pipeline.webhooks import guard

pytestmark = pytest.mark.anyio


class _OutOfDescriptorsOnce(socket.socket):
    """A listening socket whose first accept fails as a process out of descriptors does."""

    def __init__(self) -> None:
        super().__init__(socket.AF_INET, socket.SOCK_STREAM)
        self.failed = asyncio.Event()

    def accept(self):  # type: ignore[no-untyped-def]
        if not self.failed.is_set():
            self.failed.set()
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        return super().accept()


async def test_a_server_stopped_while_out_of_descriptors_stops_without_a_traceback():
    """asyncio retries accepting a second after running out of descriptors; when the server
    has closed meanwhile, that retry's error is no traceback (one line for the shortage)."""
    loop = asyncio.get_running_loop()
    passed_on: list[dict] = []
    loop.set_exception_handler(lambda _, context: passed_on.append(context))
    guard.quiet_out_of_descriptors(loop)
    listening = _OutOfDescriptorsOnce()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    listening.setblocking(False)
    server = await asyncio.start_server(lambda *_: None, sock=listening)
    with socket.create_connection(listening.getsockname()):
        await listening.failed.wait()
    server.close()
    await asyncio.sleep(1.3)  # asyncio's retry comes a second after the failed accept
    assert listening.fileno() == -1
    assert passed_on == []
