"""The sandbox as a real HTTP server: uvicorn on a free loopback port, and the CLI process."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from pipeline.sandbox import Faults, build_sandbox, serve_in_thread
from tests.paths import ROOT, SANDBOX_DEVICES
from tests.sandbox_helpers import KEY, create_body, door

pytestmark = pytest.mark.slow


def test_real_server_auth_rate_limit_and_dropped_answer():
    """Over TCP: 401 without a key, 429 + Retry-After after 10 creates, a dropped create exists."""
    state, app = build_sandbox(SANDBOX_DEVICES, faults=Faults(), seed=5)
    device_id = door(state, "Harbor View", "Room 101")

    def body(n: int) -> dict[str, object]:
        start = dt.date(2027, 1, 1) + dt.timedelta(days=n)
        return create_body(
            device_id, f"{start}T15:30:00-08:00", f"{start + dt.timedelta(days=1)}T10:30:00-08:00"
        )

    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        unauthorized = client.post("/devices/list", json={})
        answers = [
            client.post("/access_codes/create", json=body(n), headers=KEY) for n in range(11)
        ]
        state.clock.advance(60)
        client.post("/_sandbox/configure", json={"drop_after": 1.0})
        lost = []
        for n in range(20, 26):
            try:
                lost.append(
                    client.post("/access_codes/create", json=body(n), headers=KEY).status_code
                )
            except httpx.RemoteProtocolError:
                lost.append("dropped")
        listed = client.post("/access_codes/list", json={"device_id": device_id}, headers=KEY)
    assert unauthorized.status_code == 401
    assert unauthorized.json()["error"]["type"] == "unauthorized"
    assert [a.status_code for a in answers] == [200] * 10 + [429]
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert all(a.headers["seam-request-id"] for a in answers)
    assert "dropped" in lost
    assert set(lost) <= {"dropped", 502, 504}
    assert len(listed.json()["access_codes"]) == 16  # 10 answered + 6 whose answer was lost


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_cli_serves_and_stops_cleanly_on_ctrl_c():
    """`oracode-provision sandbox` answers on its port and exits 0 on SIGINT, no traceback."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "sandbox", "--port", str(port), "--seed", "1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}/devices/list", json={}, headers=KEY)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "the sandbox did not start"
                time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert answer.status_code == 200
    assert len(answer.json()["devices"]) == 14
    assert process.returncode == 0
    assert "Traceback" not in err
    assert "13 Oracode doors" in out


def test_cli_late_and_list_lag_flags_reach_the_server():
    """--late, --late-after and --list-lag set the faults; a late create appears after the clock
    moves past late_after, and /access_codes/list shows it only after the lag."""
    port = free_port()
    command = [sys.executable, "-m", "pipeline", "sandbox", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--late", "1", "--late-after", "20", "--list-lag", "5"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                shown = httpx.post(f"{base}/_sandbox/configure", json={})
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "the sandbox did not start"
                time.sleep(0.1)
        with httpx.Client(base_url=base, headers=KEY, timeout=10) as client:
            device_id = next(
                d["device_id"]
                for d in client.post("/devices/list", json={}).json()["devices"]
                if d["properties"]["name"] == "Room 101"
            )
            created = client.post(
                "/access_codes/create",
                json=create_body(
                    device_id, "2027-01-01T15:30:00-08:00", "2027-01-02T10:30:00-08:00"
                ),
            )
            client.post("/_sandbox/clock", json={"advance_seconds": 20})
            hidden = client.post("/access_codes/list", json={"device_id": device_id}).json()
            stats = client.get("/_sandbox/stats").json()
            client.post("/_sandbox/clock", json={"advance_seconds": 5})
            listed = client.post("/access_codes/list", json={"device_id": device_id}).json()
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
    finally:
        process.kill()
    assert (shown.json()["late"], shown.json()["late_after"], shown.json()["list_lag"]) == (
        1.0,
        20.0,
        5.0,
    )
    assert created.status_code == 504
    assert created.json()["error"]["type"] == "gateway_timeout"
    assert hidden["access_codes"] == []
    assert (stats["codes"], stats["late"]["carried_out"]) == (1, 1)
    assert len(listed["access_codes"]) == 1


def test_cli_refuses_a_device_file_it_cannot_use(tmp_path):
    """A user level without a prefix: one line, exit 2, no traceback."""
    from tests.generate import make_door, make_level

    level = make_level("G", 1, "15:00", "11:00", prefix_field="not_a_prefix")
    devices = tmp_path / "d.json"
    devices.write_text(json.dumps({"devices": [make_door("d1", "R", "S", "UTC", [level])]}))
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "sandbox", "--devices", str(devices), "--port", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert "level 'G' has no prefix" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_on_a_port_in_use_says_so_in_one_line_before_any_banner(capsys):
    """A port another server holds: exit 2, one line naming the sandbox, the address and what
    to do; no banner saying it serves."""
    from pipeline.cli import main

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["sandbox", "--devices", str(SANDBOX_DEVICES), "--port", str(port)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"error: the Seam sandbox can't listen on 127.0.0.1:{port}: Address already in use"
        " (pick another --port, or stop what listens there; --host must be an address of this"
        " machine)\n"
    )
