"""The Seam client on a real socket: what goes on the wire, and how each way of not getting an
answer is told apart (the exactly-once protocol rests on it)."""

from __future__ import annotations

import json
import socket

import anyio
import pytest
from anyio.abc import SocketStream

from pipeline import __version__
from pipeline.common.errors import SeamError, SeamUnavailableError
from pipeline.common.settings import SeamCredentials
from pipeline.seam.client import SeamClient
from pipeline.seam.models import AccessCode
from tests.servers import Handler, server

pytestmark = pytest.mark.anyio
CODE = {"access_code_id": "ac-1", "device_id": "door-1", "name": "Guest", "status": "setting"}


def answer(status: int, payload: dict[str, object], request_id: str = "req-1") -> bytes:
    body = json.dumps(payload).encode()
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nseam-request-id: {request_id}\r\n\r\n"
    ).encode() + body


def client(endpoint: str, timeout: float = 30.0) -> SeamClient:
    credentials = SeamCredentials(api_key="seam_wire_key", endpoint=endpoint)
    return SeamClient(credentials, timeout=timeout)


@pytest.mark.slow
async def test_a_create_is_one_json_post_to_the_endpoints_path_with_the_key():
    """The request on the wire: POST to the endpoint's own path + the API path, the key as a
    bearer token, a JSON body, the pipeline's user agent; the answer is parsed."""
    seen: list[bytes] = []

    async def handle(stream: SocketStream, request: bytes) -> None:
        seen.append(request)
        await stream.send(answer(200, {"access_code": CODE}))

    body = {"device_id": "door-1", "name": "Guest", "is_offline_access_code": True}
    async with server(handle) as url, client(f"{url}/seam/") as seam:
        created = await seam.create_access_code(body)
        again = await seam.create_access_code(body)
    assert (created.access_code.access_code_id, created.request_id) == ("ac-1", "req-1")
    assert again.access_code == created.access_code
    head, _, sent = seen[0].partition(b"\r\n\r\n")
    request_line, *header_lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)}
    assert request_line == "POST /seam/access_codes/create HTTP/1.1"
    assert headers["authorization"] == "Bearer seam_wire_key"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == f"oracode-pipeline/{__version__}"
    assert headers["host"] == url.removeprefix("http://")
    assert json.loads(sent) == body
    assert seen[1] == seen[0]  # the same bytes again, over the kept-alive connection


async def test_a_refused_connection_is_known_not_sent():
    """Nothing listening: ``connect_failed``, the one unanswered outcome that is safe to resend."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with client(f"http://127.0.0.1:{port}") as seam:
        with pytest.raises(SeamUnavailableError) as caught:
            await seam.create_access_code({"device_id": "door-1"})
    assert caught.value.error_type == "connect_failed"
    assert f"127.0.0.1:{port}/access_codes/create" in caught.value.message


async def hang(stream: SocketStream, request: bytes) -> None:
    await anyio.sleep_forever()


async def drop(stream: SocketStream, request: bytes) -> None:
    await stream.aclose()


async def half_answer(stream: SocketStream, request: bytes) -> None:
    await stream.send(answer(200, {"access_code": CODE})[:-5])
    await stream.aclose()


@pytest.mark.slow
@pytest.mark.parametrize("handle", [hang, drop, half_answer], ids=["timeout", "dropped", "cut"])
async def test_a_lost_answer_is_an_unknown_outcome(handle: Handler):
    """The request reached the server but no whole answer came back (read timeout, connection
    dropped, answer cut short): ``connection_error``, never ``connect_failed``."""
    async with server(handle) as url, client(url, timeout=0.5) as seam:
        with anyio.fail_after(10), pytest.raises(SeamUnavailableError) as caught:
            await seam.create_access_code({"device_id": "door-1"})
    assert caught.value.error_type == "connection_error"


@pytest.mark.slow
async def test_a_refusal_carries_seams_error_and_request_id():
    """A 4xx answer raises SeamError with Seam's type, message, status and request id."""

    async def handle(stream: SocketStream, request: bytes) -> None:
        error = {"type": "invalid_input", "message": "ends_at is before starts_at"}
        await stream.send(answer(400, {"error": error}, request_id="req-9"))

    async with server(handle) as url, client(url) as seam:
        with pytest.raises(SeamError) as caught:
            await seam.create_access_code({"device_id": "door-1"})
    assert not isinstance(caught.value, SeamUnavailableError)
    assert (caught.value.status, caught.value.error_type) == (400, "invalid_input")
    assert (caught.value.message, caught.value.request_id) == (
        "ends_at is before starts_at",
        "req-9",
    )


@pytest.mark.parametrize(
    ("code", "kept"),
    [
        ("130411", "130411"),
        ("1234", "1234"),
        ("1234567890", "1234567890"),
        (None, None),
        ("123", None),
        ("12345678901", None),
        ("12ab34", None),
        ('=HYPERLINK("http://x")', None),
        (" 130411", None),
        ("١٢٣٤٥٦", None),  # digits, but not the lock's
    ],
)
def test_an_access_code_keeps_only_a_pin(code, kept):
    """A code's PIN is 4 to 10 ASCII digits; anything else in its place is dropped (never
    kept, nor in a repr) and said by ``pin_unexpected``."""
    parsed = AccessCode.model_validate(
        {"access_code_id": "ac-1", "device_id": "d-1", "status": "set", "code": code}
    )
    assert parsed.code == kept
    assert parsed.pin_unexpected == (code is not None and kept is None)
    assert str(code) not in repr(parsed) or code is None
