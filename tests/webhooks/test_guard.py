"""The receiver facing the internet, over a real uvicorn server on loopback: slow clients are
closed, connections over the cap are answered 503, and running out of file descriptors is one
line a minute, not a traceback per accept. Counts and times are kept small (the deadline and
the cap are lowered for the tests)."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import time

import anyio
import anyio.to_thread
import httpx
import pytest
from pydantic import SecretStr

from pipeline.webhooks import Verifier, WebhookReceiver, bind, guard, serving
from tests.ledger.helpers import ledger_argument
from tests.paths import ROOT
from tests.webhooks.helpers import PIN, SECRET, code_rows, delivery, event

pytestmark = [
    pytest.mark.slow,
    pytest.mark.anyio,
    # A socket-level test: one database is enough.
    pytest.mark.parametrize("ledger_location", ["sqlite"], indirect=True),
]


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` within ``seconds`` (blocking: for a worker thread)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(1024):
            pass
    except TimeoutError:
        return False
    except OSError:
        pass  # reset: closed too
    return True


async def test_slow_clients_are_closed_and_a_delivery_still_gets_through(ledger_path, monkeypatch):
    """Twenty clients sending their request a byte at a time (headers, or the body after whole
    headers), and ten that send nothing: every one is closed once the deadline (1 s here)
    has passed, while a signed delivery meanwhile is answered 200."""
    monkeypatch.setattr(guard, "REQUEST_WITHIN", 1.0)
    receiver = WebhookReceiver(ledger_path, Verifier(SecretStr(SECRET)))
    head = b"POST /seam HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n"
    with bind("127.0.0.1", 0) as listening:
        port = listening.getsockname()[1]
        async with serving(receiver, listening) as url:
            clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(30)]
            started = time.monotonic()

            async def trickle(sock: socket.socket, data: bytes) -> None:
                for byte in data[:12]:
                    try:
                        await anyio.to_thread.run_sync(sock.send, bytes([byte]))
                    except OSError:
                        return  # closed by the server
                    await anyio.sleep(0.2)

            async with anyio.create_task_group() as group:
                for n, sock in enumerate(clients[:20]):
                    if n % 2:
                        sock.sendall(head)  # whole headers, then the body slowly
                    group.start_soon(trickle, sock, b"x" * 100 if n % 2 else head)
                async with httpx.AsyncClient(base_url=url) as client:
                    body, headers = delivery(event("set_on_device", code=PIN))
                    answer = await client.post("/seam", content=body, headers=headers)
            closed = [await anyio.to_thread.run_sync(closed_within, sock, 3.0) for sock in clients]
            took = time.monotonic() - started
    for sock in clients:
        sock.close()
    assert answer.status_code == 200
    assert code_rows(ledger_path)["ac-1"]["code"] == PIN
    assert closed == [True] * 30
    assert took < 5


async def test_connections_over_the_cap_are_answered_503_at_once(ledger_path, monkeypatch):
    """With the cap at 5, five idle connections are kept and the sixth is answered 503 (and
    closed) as it opens; once the five go, a delivery is 200 again."""
    monkeypatch.setattr(guard, "MAX_CONNECTIONS", 5)
    receiver = WebhookReceiver(ledger_path, Verifier(SecretStr(SECRET)))
    with bind("127.0.0.1", 0) as listening:
        port = listening.getsockname()[1]
        async with serving(receiver, listening) as url:
            held = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
            await anyio.sleep(0.2)
            with socket.create_connection(("127.0.0.1", port)) as sixth:
                refused = await anyio.to_thread.run_sync(answer_of, sixth)
            for sock in held:
                sock.close()
            await anyio.sleep(0.2)
            async with httpx.AsyncClient(base_url=url) as client:
                body, headers = delivery(event("set_on_device", code=PIN))
                answer = await client.post("/seam", content=body, headers=headers)
    head, _, body = refused.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"\r\nretry-after: 5\r\n" in head
    assert json.loads(body) == {
        "ok": False,
        "error": "too many connections at once: try again later",
    }
    assert answer.status_code == 200


def http_request(body: bytes, headers: dict[str, str]) -> bytes:
    """A POST of ``body`` to /seam as it goes on the wire."""
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (
        f"POST /seam HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n{head}\r\n"
    ).encode() + body


def answer_of(sock: socket.socket, seconds: float = 2.0) -> bytes:
    """Everything the server sends on ``sock`` until it closes it; raises TimeoutError when it
    is still open after ``seconds`` of silence."""
    sock.settimeout(seconds)
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def open_descriptors() -> int:
    """How many file descriptors this process (the test and its in-process server) holds."""
    return len(os.listdir("/proc/self/fd"))


async def test_refused_connections_are_closed_at_once_and_count_against_no_accepted_one(
    ledger_path, monkeypatch
):
    """With the cap at 5 and five connections accepted, a hundred more are each answered 503
    and closed as they open (the server holds none of them once they are read), and a
    delivery on an accepted connection meanwhile is answered 200: they count against no
    limit of the accepted ones (uvicorn's is the cap plus one)."""
    monkeypatch.setattr(guard, "MAX_CONNECTIONS", 5)
    receiver = WebhookReceiver(ledger_path, Verifier(SecretStr(SECRET)))
    with bind("127.0.0.1", 0) as listening:
        port = listening.getsockname()[1]
        async with serving(receiver, listening):
            accepted = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
            await anyio.sleep(0.2)
            before = open_descriptors()
            refused = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
            said = [await anyio.to_thread.run_sync(answer_of, s, 0.5) for s in refused]
            # The clients' own hundred sockets are still open; the server's are closed.
            held = open_descriptors() - before - len(refused)
            body, headers = delivery(event("set_on_device", code=PIN))
            accepted[0].sendall(http_request(body, headers))
            answered = await anyio.to_thread.run_sync(accepted[0].recv, 4096)
    for sock in accepted + refused:
        sock.close()
    assert all(answer.startswith(b"HTTP/1.1 503 Service Unavailable") for answer in said)
    assert held < 5
    assert answered.startswith(b"HTTP/1.1 200 ")


async def test_a_refused_client_that_sent_its_request_reads_its_503(ledger_path, monkeypatch):
    """Over the cap, a client whose request is there before the connection is taken reads
    the 503 all the same (what it sent is dropped, not left to reset the connection)."""
    monkeypatch.setattr(guard, "MAX_CONNECTIONS", 1)
    receiver = WebhookReceiver(ledger_path, Verifier(SecretStr(SECRET)))
    body, headers = delivery(event("set_on_device", code=PIN))
    with bind("127.0.0.1", 0) as listening:
        port = listening.getsockname()[1]
        async with serving(receiver, listening):
            with socket.create_connection(("127.0.0.1", port)):
                await anyio.sleep(0.2)
                with socket.create_connection(("127.0.0.1", port)) as late:
                    late.sendall(http_request(body, headers))
                    said = await anyio.to_thread.run_sync(answer_of, late, 0.5)
    assert said.startswith(b"HTTP/1.1 503 Service Unavailable")


def low_file_limit() -> None:
    """In the child: an open-file limit a few dozen connections exhaust."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))


def test_out_of_file_descriptors_is_one_line_not_a_traceback_per_accept(ledger_path, tmp_path):
    """The receiver as a process with an open-file limit of 48, and 80 connections held open:
    it runs out of descriptors, says so in one line (not a traceback per accept), and answers
    a delivery once the connections are gone."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "SEAM_WEBHOOK_SECRET": SECRET}
    command = [
        sys.executable, "-m", "pipeline", "webhooks", "--port", str(port),
        "--ledger", ledger_argument(ledger_path),
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        preexec_fn=low_file_limit,  # only setrlimit, before exec
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    held: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert process.poll() is None
                assert time.monotonic() < deadline
                time.sleep(0.1)
        held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(80)]
        time.sleep(3)
        for sock in held:
            sock.close()
        time.sleep(1.5)  # asyncio tries accepting again after a second
        body, headers = delivery(event("set_on_device", code=PIN))
        answer = httpx.post(f"http://127.0.0.1:{port}/seam", content=body, headers=headers)
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert answer.status_code == 200
    lines = err.splitlines()
    assert "Traceback" not in err
    said = [line for line in lines if "out of file descriptors" in line]
    assert len(said) == 1
    assert said[0].startswith("error: the webhook receiver is out of file descriptors:")
    assert "open_file_limit=48" in said[0]
    assert len(lines) < 20
