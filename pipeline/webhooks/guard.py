"""The receiver's defence of its own, for an address the whole internet can reach.

uvicorn's HTTP/1.1 protocol (h11) waits as long as a client keeps sending, a byte at a time,
and accepts every connection while file descriptors last. ``GuardedH11Protocol`` adds:
    a deadline   a connection must have sent its whole request (head and body) within
                 ``REQUEST_WITHIN`` seconds of opening, or of the previous answer on it;
                 otherwise it is closed
    a cap        at most ``MAX_CONNECTIONS`` connections at once: one beyond is answered 503
                 and closed as it opens, without waiting for its request, so slow clients
                 can't use up the descriptors; it is never one of uvicorn's connections, so it
                 counts against no limit of the accepted ones
and ``quiet_out_of_descriptors`` makes the event loop say once a minute, in one line, that the
process has run out of file descriptors (asyncio's accept loop otherwise logs a traceback for
every attempt, thousands a second). Connections closed or refused are said the same way, at
most once a minute each, never a line per connection.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import resource
import socket
import time
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

# Seconds a connection has to send its whole request. A delivery is a few kilobytes: a client
# slower than this is a slow-loris attack or broken, not Seam.
REQUEST_WITHIN = 30.0
# Connections at once. Seam (Svix) delivers a few at a time; the rest of the descriptors
# (systemd's usual LimitNOFILE is 1024) stay free for the ledger and for answering 503.
MAX_CONNECTIONS = 100
# At most one line per kind of trouble in this many seconds.
SAY_EVERY = 60.0
_OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})
# What a refused connection's client sent already is read and dropped up to this (bytes).
_DROPPED_AT_MOST = 1024 * 1024
_REFUSED_BODY = b'{"ok": false, "error": "too many connections at once: try again later"}'
# The whole answer to a connection over the cap, written as it opens (before its request).
_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"retry-after: 5\r\nconnection: close\r\n"
    + f"content-length: {len(_REFUSED_BODY)}\r\n\r\n".encode()
    + _REFUSED_BODY
)


class OncePerMinute:
    """Logs a kind of trouble at most once every ``SAY_EVERY`` seconds (to ``logger``, by
    default this module's), counting the times in between into the next line."""

    def __init__(
        self, message: str, *, level: int = logging.WARNING, logger: logging.Logger = log
    ) -> None:
        self._message = message
        self._level = level
        self._log = logger
        self._said_at: float | None = None
        self._since = 0

    def note(self, **fields: Any) -> None:
        self._since += 1
        now = time.monotonic()
        if self._said_at is not None and now - self._said_at < SAY_EVERY:
            return
        self._log.log(self._level, self._message, extra={**fields, "times": self._since})
        self._said_at, self._since = now, 0


_closed_slow = OncePerMinute(
    f"closed connections that hadn't sent their request within {REQUEST_WITHIN:g} s"
)
_refused = OncePerMinute(
    f"refused connections over the cap of {MAX_CONNECTIONS} at once (answered 503)"
)
_no_descriptors = OncePerMinute(
    "the webhook receiver is out of file descriptors: new connections wait until some close"
    " (raise the process's open-file limit, e.g. systemd's LimitNOFILE)",
    level=logging.ERROR,
)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request and a cap on connections (see
    the module's docstring)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._deadline: asyncio.TimerHandle | None = None
        self._is_refused = len(self.connections) >= MAX_CONNECTIONS
        if self._is_refused:
            # Never added to uvicorn's connections: it holds no place of an accepted one.
            self.transport = transport  # type: ignore[assignment]
            _refused.note()
            _drop_what_came(transport)
            transport.write(_REFUSED)  # type: ignore[attr-defined]
            transport.close()  # once the answer is written out: nothing is waited for
            return
        super().connection_made(transport)  # type: ignore[arg-type]
        self._start_deadline()

    def data_received(self, data: bytes) -> None:
        if self._is_refused:
            return  # answered already, and closing
        super().data_received(data)
        if self.conn.their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR):
            self._stop_deadline()  # the whole request is in: the answer is the app's

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._start_deadline()  # the next request on this connection, within its own time

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def _start_deadline(self) -> None:
        self._stop_deadline()
        self._deadline = self.loop.call_later(REQUEST_WITHIN, self._too_slow)

    def _stop_deadline(self) -> None:
        deadline = getattr(self, "_deadline", None)
        if deadline is not None:
            deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            _closed_slow.note()
            self.transport.close()


def _drop_what_came(transport: asyncio.BaseTransport) -> None:
    """Read and drop what the client sent already (its request, up to ``_DROPPED_AT_MOST``
    bytes), without waiting for more: a socket closed with unread data is reset, and the
    client would never read its 503."""
    raw = transport.get_extra_info("socket")
    try:
        sock = socket.socket(fileno=os.dup(raw.fileno())) if raw is not None else None
    except OSError:
        return  # out of descriptors: closed all the same
    if sock is None:
        return
    with sock:
        dropped = 0
        try:
            while dropped < _DROPPED_AT_MOST and (data := sock.recv(65536, socket.MSG_DONTWAIT)):
                dropped += len(data)
        except OSError:
            pass  # nothing more there yet, or the client went: closed all the same


def quiet_out_of_descriptors(loop: asyncio.AbstractEventLoop) -> None:
    """Make ``loop`` say running out of file descriptors in one line at most once a minute
    (with the open-file limit), instead of a traceback for every accept it tries; any other
    error goes to the loop's handler as before."""
    previous = loop.get_exception_handler()

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _OUT_OF_DESCRIPTORS:
            _no_descriptors.note(error=exc.strerror, open_file_limit=open_file_limit())
        elif _a_retry_after_close(context):
            pass  # the server stopped while it waited to accept again: nothing left to serve
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)


def _a_retry_after_close(context: dict[str, Any]) -> bool:
    """Whether ``context`` is asyncio's accept retry meeting a closed listening socket: out of
    descriptors, asyncio stops accepting and starts again a second later, whether or not the
    server closed in that second (then the socket's descriptor is -1, and the retry raises
    ValueError)."""
    callback = getattr(context.get("handle"), "_callback", None)
    return isinstance(context.get("exception"), ValueError) and (
        getattr(callback, "__name__", None) == "_start_serving"
    )


def open_file_limit() -> int:
    """The process's soft limit on open file descriptors."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
