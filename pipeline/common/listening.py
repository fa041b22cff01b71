"""A listening socket for the project's servers, had before anything says the server is up: a
port in use is one line and exit 2, not a banner followed by the server's own error. The
webhook receiver serves on it; the Seam sandbox only tries it and lets uvicorn bind again (on
a socket given to uvicorn the sandbox answered the creation benchmark's bursts about a second
slower over 3,200 creates, measured; the cause wasn't found)."""

from __future__ import annotations

import os
import socket

from pipeline.common.errors import UsageError


def listen(host: str, port: int, *, server: str) -> socket.socket:
    """A socket listening on ``host``:``port`` (0: a free port) for ``server`` (its name in
    the error). Raises UsageError (exit 2) when it can't be had (the port is in use, the host
    isn't this machine's)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except (OSError, OverflowError) as exc:
        # create_server's own text repeats the address: the errno's alone says the cause.
        errno = getattr(exc, "errno", None)
        cause = os.strerror(errno) if errno else str(exc)
        raise UsageError(
            f"{server} can't listen on {host}:{port}: {cause}",
            hint="pick another --port, or stop what listens there; --host must be an address"
            " of this machine",
        ) from exc
