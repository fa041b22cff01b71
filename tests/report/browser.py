"""A headless Chromium (``chromium_path``: ``$CHROMIUM``, else Debian's, which ``make chromium``
installs; Playwright's own browser builds are never used), driven by Playwright through its
path with a fresh profile; and a loopback HTTP server for a folder."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.report.chromium import VARIABLE, chromium_path

# Nothing of the browser's own goes out (updates, sync, field trials), no first-run screens.
FLAGS = (
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@contextmanager
def chromium_page(profile: Path, *, width: int = 1200, height: int = 900) -> Iterator[Page]:
    """A page of a headless Chromium whose profile is the fresh folder ``profile``."""
    chromium = chromium_path()
    if not chromium.exists():
        pytest.fail(
            f"no Chromium at {chromium}: run `make chromium` (make test runs it), or set"
            f" {VARIABLE} to another Chromium's path"
        )
    # Chromium's sandbox can't start as root.
    flags = [*FLAGS, *(["--no-sandbox"] if os.geteuid() == 0 else [])]
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=chromium,
            headless=True,
            args=flags,
            viewport={"width": width, "height": height},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serving(folder: Path) -> Iterator[str]:
    """``folder`` over HTTP on a free loopback port; yields the server's base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            thread.join()
