"""Every run ends by itself, whatever Seam does: a total deadline per request, a cap on any wait
Seam asks for, listings that would never end stopped, and credentials that can't make a request
refused at start. Each CLI case checks the exit code and the exact one line."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import pytest
import stamina
from anyio.abc import SocketStream

from pipeline.cli import main
from pipeline.common.errors import ConfigError, SeamUnavailableError
from pipeline.common.settings import SeamCredentials
from pipeline.seam import answers as seam
from pipeline.seam.answers import MAX_WAIT_SECONDS, clamp_wait
from pipeline.seam.client import SeamClient
from tests.paths import ROOT
from tests.servers import server

SAMPLE = ROOT / "inputs" / "reservations-sample.csv"
DEVICES = json.loads((ROOT / "inputs" / "sandbox-devices.json").read_text())["devices"]
# (status, headers, body) for a request's path and JSON body
Answer = tuple[int, dict[str, str], dict[str, object]]
Responder = Callable[[str, dict[str, object]], Answer]


@contextmanager
def seam_server(respond: Responder) -> Iterator[str]:
    """A loopback HTTP server (in a thread, so the CLI can run its own event loop) that answers
    each POST with ``respond(path, body)``; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, headers, payload = respond(self.path, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            for name, value in {"seam-request-id": "req-1", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def use_seam(monkeypatch: pytest.MonkeyPatch, endpoint: str, key: str = "seam_test_key") -> None:
    for name in list(os.environ):
        if name.startswith("SEAM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SEAM_API_KEY", key)
    monkeypatch.setenv("SEAM_ENDPOINT", endpoint)


def plan_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, list[str]]:
    """``plan`` on the sample against Seam: the exit code and the lines on stderr (but the
    ``talking to`` line, which tests/test_onboarding.py checks)."""
    code = main(["plan", str(SAMPLE), "--out", str(tmp_path / "plan.csv"), *extra])
    lines = capsys.readouterr().err.strip().splitlines()
    return code, [line for line in lines if not line.startswith("info: talking to ")]


# -- a total deadline per request ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.anyio
async def test_an_answer_that_trickles_in_ends_at_the_request_deadline():
    """A body sent one byte at a time never trips the per-read timeout; the whole request's
    deadline ends it as an unknown outcome (``timeout``), never ``connect_failed``."""

    async def trickle(stream: SocketStream, request: bytes) -> None:
        await stream.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        await stream.send(b"Content-Length: 1000\r\n\r\n")
        while True:
            await stream.send(b" ")
            await anyio.sleep(0.05)

    async with server(trickle) as url:
        credentials = SeamCredentials(api_key="seam_wire_key", endpoint=url)
        async with SeamClient(credentials, timeout=30.0, request_timeout=0.5) as client:
            started = anyio.current_time()
            with anyio.fail_after(10), pytest.raises(SeamUnavailableError) as caught:
                await client.create_access_code({"device_id": "door-1"})
    assert caught.value.error_type == "timeout"
    assert caught.value.message == f"no whole answer from {url}/access_codes/create within 0.5 s"
    assert anyio.current_time() - started < 5


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_read_whose_answers_never_finish_gives_up_after_its_attempts():
    """A read retries a request that timed out, then stops with the ``timeout`` error and a hint
    saying how many attempts were made."""
    seen = 0

    async def stall(stream: SocketStream, request: bytes) -> None:
        nonlocal seen
        seen += 1
        await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{")
        await anyio.sleep_forever()

    async with server(stall) as url:
        credentials = SeamCredentials(api_key="seam_wire_key", endpoint=url)
        async with SeamClient(credentials, request_timeout=0.2) as client:
            with anyio.fail_after(20), pytest.raises(SeamUnavailableError) as caught:
                await client.read("/devices/get", {"device_id": "door-1"})
    assert seen == 6  # read_attempts (stamina testing mode caps but keeps it)
    assert caught.value.one_line() == (
        f"Seam error timeout: no whole answer from {url}/devices/get within 0.2 s"
        " (/devices/get failed 6 times in a row; rerun later)"
    )


def test_request_timeout_must_be_positive(tmp_path, monkeypatch, capsys):
    """``--request-timeout 0``: exit 2 and one line before anything is opened."""
    use_seam(monkeypatch, "http://127.0.0.1:9")
    ledger = tmp_path / "ledger.sqlite"
    code = main(["status", "--ledger", str(ledger), "--request-timeout", "0"])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --request-timeout must be a positive number of seconds"
    ]
    assert not ledger.exists()


# -- a cap on any wait --------------------------------------------------------------------------


def test_clamp_wait_caps_and_warns_once(caplog):
    """Waits over MAX_WAIT_SECONDS become MAX_WAIT_SECONDS, shorter ones and None are kept, and
    one warning is logged per kind of wait, however often it is clamped."""
    with caplog.at_level(logging.WARNING, logger="pipeline.seam.answers"):
        assert clamp_wait(None, what="test wait") is None
        assert clamp_wait(2.5, what="test wait") == 2.5
        assert clamp_wait(86400, what="test wait") == MAX_WAIT_SECONDS
        assert clamp_wait(1e9, what="test wait") == MAX_WAIT_SECONDS
    assert [record.getMessage() for record in caplog.records] == [
        f"test wait asked for a wait of 86400 s; waiting {MAX_WAIT_SECONDS:g} s at most"
    ]


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_day_long_retry_after_on_a_read_waits_only_the_cap(monkeypatch):
    """``Retry-After: 86400`` on /devices/list (real sleeps, stamina's testing mode off) is
    waited for MAX_WAIT_SECONDS only, then the read is sent again and succeeds."""
    monkeypatch.setattr(seam, "MAX_WAIT_SECONDS", 0.2)
    answers = iter([(429, {"Retry-After": "86400"}, {}), (200, {}, {"devices": DEVICES[:1]})])

    with seam_server(lambda path, body: next(answers)) as url:
        credentials = SeamCredentials(api_key="seam_test_key", endpoint=url)
        with stamina.set_testing(False):
            async with SeamClient(credentials) as client:
                with anyio.fail_after(10):
                    devices = [device async for device in client.list_devices()]
    assert [device.device_id for device in devices] == [DEVICES[0]["device_id"]]


@pytest.mark.slow
def test_a_read_that_keeps_getting_429_stops_with_one_line(tmp_path, monkeypatch, capsys):
    """/devices/list answered 429 with a day-long Retry-After every time: plan gives up after
    its attempts, exit 3, one line that says so (after the clamp's warning)."""

    def busy(path: str, body: dict[str, object]) -> Answer:
        error = {"type": "rate_limited", "message": "too many requests"}
        return 429, {"Retry-After": "86400"}, {"error": error}

    monkeypatch.setattr(seam, "_clamped", set())  # the clamp's warning is once per process
    with seam_server(busy) as url:
        use_seam(monkeypatch, url)
        code, lines = plan_cli(tmp_path, capsys)
    assert code == 3
    assert lines == [
        "warning: Seam's Retry-After on /devices/list asked for a wait of 86400 s; waiting"
        " 120 s at most asked=86400.0 cap=120.0",
        "error: Seam error rate_limited: too many requests [HTTP 429, seam-request-id req-1]"
        " (/devices/list failed 6 times in a row; rerun later)",
    ]


# -- listings that would never end --------------------------------------------------------------


@pytest.mark.slow
def test_a_repeated_page_cursor_stops_the_listing(tmp_path, monkeypatch, capsys):
    """/devices/list hands back a cursor it already gave: exit 3, one line naming it."""

    def loop(path: str, body: dict[str, object]) -> Answer:
        cursor = "c2" if body.get("page_cursor") == "c1" else "c1"
        pagination = {"has_next_page": True, "next_page_cursor": cursor}
        return 200, {}, {"devices": DEVICES[:1], "pagination": pagination}

    with seam_server(loop) as url:
        use_seam(monkeypatch, url)
        code, lines = plan_cli(tmp_path, capsys)
    assert code == 3
    assert lines == [
        "error: Seam error repeated_page_cursor: /devices/list sent page cursor 'c1' a second"
        " time after 3 pages: the listing would never end (rerun later; if it happens again,"
        " pass this line on to Seam support)"
    ]


@pytest.mark.slow
def test_a_listing_past_the_page_limit_stops(tmp_path, monkeypatch, capsys):
    """Ever-new cursors: the listing stops after MAX_PAGES pages, exit 3, one line."""
    monkeypatch.setattr(seam, "MAX_PAGES", 5)
    pages = 0

    def endless(path: str, body: dict[str, object]) -> Answer:
        nonlocal pages
        pages += 1
        pagination = {"has_next_page": True, "next_page_cursor": f"c{pages}"}
        return 200, {}, {"devices": [], "pagination": pagination}

    with seam_server(endless) as url:
        use_seam(monkeypatch, url)
        code, lines = plan_cli(tmp_path, capsys)
    assert (code, pages) == (3, 5)
    assert lines == [
        "error: Seam error too_many_pages: /devices/list still had a next page after 5 pages:"
        " the listing would never end (rerun later; if it happens again, pass this line on to"
        " Seam support)"
    ]


# -- credentials that can't make a request ------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("seam_key\n", "it ends with a line break"),
        (" seam_key", "it starts or ends with whitespace"),
        ("seam_k ey", "it holds whitespace"),
        ("seam_k\u00e9y", "it holds a character that isn't ASCII"),
        ("seam_k\x00ey", "it holds a control character"),
    ],
)
def test_a_malformed_api_key_is_refused_at_start(tmp_path, monkeypatch, capsys, key, problem):
    """A key that can't go into a header: exit 2, one line saying what is wrong with it, never
    the key itself, and no request sent."""
    if "\x00" in key:
        # The environment can't hold a NUL byte; the settings object can.
        with pytest.raises(ConfigError) as caught:
            SeamCredentials(api_key=key).auth_headers()
        assert caught.value.one_line() == (
            f"SEAM_API_KEY looks malformed ({problem})"
            " (set SEAM_API_KEY again to the value exactly as Seam shows it)"
        )
        return
    requests = 0

    def count(path: str, body: dict[str, object]) -> Answer:
        nonlocal requests
        requests += 1
        return 200, {}, {"devices": []}

    with seam_server(count) as url:
        use_seam(monkeypatch, url, key=key)
        code, lines = plan_cli(tmp_path, capsys)
    assert code == 2
    assert lines == [
        f"error: SEAM_API_KEY looks malformed ({problem})"
        " (set SEAM_API_KEY again to the value exactly as Seam shows it)"
    ]
    assert requests == 0


# A 401 as Seam gives it, and as a server that isn't Seam's API gives it (no error body).
SEAMS_401 = {"error": {"type": "unauthorized", "message": "Unauthorized"}}
KEY_HINT = "check SEAM_API_KEY (or SEAM_PERSONAL_ACCESS_TOKEN and SEAM_WORKSPACE_ID)"


def not_seam_hint(url: str) -> str:
    return (
        "an answer 401 without Seam's error body may not come from Seam's API: check"
        f" SEAM_ENDPOINT (now {url}), then SEAM_API_KEY"
    )


@pytest.mark.parametrize("body", [SEAMS_401, {}], ids=["seams", "not-seams"])
def test_plan_with_a_refused_key_says_what_to_check(tmp_path, monkeypatch, capsys, body):
    """plan answered 401: exit 3 and one line saying to check SEAM_API_KEY, as apply's does;
    without Seam's error body, to check SEAM_ENDPOINT first."""
    with seam_server(lambda path, request: (401, {}, body)) as url:
        use_seam(monkeypatch, url)
        code, lines = plan_cli(tmp_path, capsys)
    assert code == 3
    if body:
        assert lines == [
            "error: Seam error unauthorized: Unauthorized [HTTP 401, seam-request-id req-1]"
            f" ({KEY_HINT})"
        ]
    else:
        assert lines == [
            "error: Seam error http_401: HTTP 401 without a Seam error body"
            f" [HTTP 401, seam-request-id req-1] ({not_seam_hint(url)})"
        ]


@pytest.mark.parametrize("body", [SEAMS_401, {}], ids=["seams", "not-seams"])
def test_apply_with_a_refused_key_says_what_to_check(tmp_path, monkeypatch, capsys, body):
    """apply answered 401 at its first request: exit 3 and one line; without Seam's error body
    it says to check SEAM_ENDPOINT before the key."""
    with seam_server(lambda path, request: (401, {}, body)) as url:
        use_seam(monkeypatch, url)
        ledger, results = str(tmp_path / "l.sqlite"), str(tmp_path / "r.csv")
        code = main(["apply", str(SAMPLE), "--ledger", ledger, "--results", results])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 3
    error = (
        "Seam error unauthorized: Unauthorized"
        if body
        else ("Seam error http_401: HTTP 401 without a Seam error body")
    )
    hint = KEY_HINT if body else not_seam_hint(url)
    assert lines[1:] == [
        f"error: Seam refused the API key: {error} [HTTP 401, seam-request-id req-1] ({hint})"
    ]


def test_an_endpoint_with_credentials_is_refused_without_showing_them(
    tmp_path, monkeypatch, capsys
):
    """SEAM_ENDPOINT=http://user:secret@host: exit 2, one line that names the setting and not
    the password or user name."""
    use_seam(monkeypatch, "http://admin:s3cr3t@127.0.0.1:9/seam")
    code, lines = plan_cli(tmp_path, capsys)
    assert code == 2
    assert lines == [
        "error: SEAM_ENDPOINT 'http://***@127.0.0.1:9/seam' holds a user name or password"
        " (remove them: Seam takes the key from SEAM_API_KEY only)"
    ]


@pytest.mark.parametrize(
    ("endpoint", "line"),
    [
        (
            "connect.getseam.com",
            "error: the config's endpoint 'connect.getseam.com' is not an http:// or https://"
            " URL (give it as https://host[:port][/path])",
        ),
        (
            "ftp://connect.getseam.com",
            "error: the config's endpoint 'ftp://connect.getseam.com' is not an http:// or"
            " https:// URL (give it as https://host[:port][/path])",
        ),
        (
            "user:pw@connect.getseam.com",
            "error: the config's endpoint '***@connect.getseam.com' holds a user name or"
            " password (remove them: Seam takes the key from SEAM_API_KEY only)",
        ),
    ],
)
def test_a_config_endpoint_that_isnt_a_url_names_the_setting(
    tmp_path, monkeypatch, capsys, endpoint, line
):
    """The config's ``endpoint`` without http:// or https://: exit 2, one line naming it."""
    use_seam(monkeypatch, "unused")
    monkeypatch.delenv("SEAM_ENDPOINT")
    config = tmp_path / "pipeline.toml"
    config.write_text(f'endpoint = "{endpoint}"\n')
    code, lines = plan_cli(tmp_path, capsys, "--config", str(config))
    assert code == 2
    assert lines == [line]
    assert "pw" not in lines[0]
