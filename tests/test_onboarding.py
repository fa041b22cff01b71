"""What a new user sees first: where the run talks to, a clear line when nothing answers there,
and only the pipeline's own log lines unless ``--verbose`` asks for the libraries' too."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys

import httpx
import pytest

from pipeline.cli import main
from pipeline.cli.logs import configure_logging
from pipeline.cli.parser import build_parser
from pipeline.common.errors import SeamUnavailableError
from pipeline.common.settings import SeamCredentials
from pipeline.seam.client import SeamClient, talking_to
from tests.paths import ROOT

SAMPLE = ROOT / "inputs" / "reservations-sample.csv"
CONFIG = ROOT / "inputs" / "pipeline.toml"


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- where the run talks to ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "line"),
    [
        ("https://connect.getseam.com", "talking to Seam at https://connect.getseam.com"),
        ("https://connect.getseam.com/", "talking to Seam at https://connect.getseam.com/"),
        (
            "http://127.0.0.1:8787",
            "talking to http://127.0.0.1:8787 (not Seam's production endpoint)",
        ),
        (
            "https://proxy.example/seam",
            "talking to https://proxy.example/seam (not Seam's production endpoint)",
        ),
        (
            "https://connect.getseam.com.example",
            "talking to https://connect.getseam.com.example (not Seam's production endpoint)",
        ),
    ],
)
def test_the_endpoint_line_says_whether_it_is_seam(endpoint, line):
    """Seam's production host is named as Seam; any other endpoint is said not to be it."""
    assert talking_to(httpx.URL(endpoint)) == line


@pytest.mark.anyio
async def test_a_client_on_the_network_says_where_once(caplog):
    """A client with its own network transport logs the endpoint once as it opens; one on an
    in-process transport (tests, the benchmarks' fakes) says nothing."""
    credentials = SeamCredentials(api_key="seam_test_key", endpoint="http://127.0.0.1:8787")
    with caplog.at_level(logging.INFO, logger="pipeline.seam.client"):
        async with SeamClient(credentials):
            pass
        async with SeamClient(
            credentials, transport=httpx.MockTransport(lambda r: httpx.Response(200))
        ):
            pass
    assert [r.getMessage() for r in caplog.records if r.name == "pipeline.seam.client"] == [
        "talking to http://127.0.0.1:8787 (not Seam's production endpoint)"
    ]


def test_an_endpoint_without_a_scheme_stops_apply_at_once(tmp_path, monkeypatch, capsys):
    """SEAM_ENDPOINT=127.0.0.1:8787 (no http://): exit 2 with one line, before any endpoint
    line or ledger."""
    for name in [n for n in os.environ if n.startswith("SEAM_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SEAM_API_KEY", "seam_test_key")
    monkeypatch.setenv("SEAM_ENDPOINT", "127.0.0.1:8787")
    ledger = tmp_path / "ledger.sqlite"
    argv = ["apply", str(SAMPLE), "--config", str(CONFIG), "--ledger", str(ledger)]
    assert main([*argv, "--results", str(tmp_path / "r.csv")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: SEAM_ENDPOINT '127.0.0.1:8787' is not an http:// or https:// URL"
        " (give it as https://host[:port][/path])"
    ]
    assert not ledger.exists()


# -- a refused connection -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_refused_connection_says_to_check_seam_endpoint():
    """Nothing listening at the endpoint: the read gives up with one line that names the
    endpoint and the doors' listing, and says to check SEAM_ENDPOINT."""
    url = f"http://127.0.0.1:{free_port()}"
    credentials = SeamCredentials(api_key="seam_test_key", endpoint=url)
    async with SeamClient(credentials) as client:
        with pytest.raises(SeamUnavailableError) as caught:
            await client.read("/devices/list", {})
    assert caught.value.error_type == "connect_failed"
    assert caught.value.one_line() == (
        f"Seam error connect_failed: could not connect to {url}/devices/list: All connection"
        " attempts failed (the doors could not be listed: 6 attempts in a row found no"
        f" connection; check SEAM_ENDPOINT (now {url}) and the network, then rerun)"
    )


# -- library log lines only with --verbose ------------------------------------------------------


async def read_once_retried() -> None:
    """A /devices/list answered 503 once, then 200: one retry, so stamina logs once."""
    answers = iter([httpx.Response(503), httpx.Response(200, json={"devices": []})])
    credentials = SeamCredentials(api_key="seam_test_key", endpoint="http://seam.test")
    transport = httpx.MockTransport(lambda request: next(answers))
    async with SeamClient(credentials, transport=transport) as client:
        assert [device async for device in client.list_devices()] == []


@pytest.mark.anyio
async def test_a_retried_read_logs_nothing_without_verbose(capsys, caplog):
    """Without --verbose a read's retry leaves no ``stamina.retry_scheduled`` anywhere."""
    configure_logging("text")
    await read_once_retried()
    assert "stamina" not in capsys.readouterr().err
    assert not [r for r in caplog.records if r.name.startswith("stamina")]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("log_format", "expected"),
    [
        ("text", "warning: stamina.retry_scheduled "),
        ("json", '"message": "stamina.retry_scheduled"'),
    ],
)
async def test_verbose_shows_the_libraries_lines_in_the_log_format(capsys, log_format, expected):
    """With --verbose stamina's retry line is on stderr, in the text or JSON log format."""
    configure_logging(log_format, verbose=True)
    await read_once_retried()
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize("command", [["plan", "x.csv"], ["apply", "x.csv"], ["status"]])
def test_verbose_is_an_option_of_the_commands_that_talk_to_seam(command):
    """plan, apply and status take --verbose; it is off unless given."""
    parser = build_parser()
    assert parser.parse_args(command).verbose is False
    assert parser.parse_args([*command, "--verbose"]).verbose is True


# -- the whole command, as a user runs it ------------------------------------------------------


def apply_process(url: str, tmp_path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAM_")}
    env |= {"SEAM_API_KEY": "seam_test_key", "SEAM_ENDPOINT": url}
    command = [sys.executable, "-m", "pipeline", "apply", str(SAMPLE), "--config", str(CONFIG)]
    command += ["--ledger", str(tmp_path / "ledger.sqlite"), "--results", str(tmp_path / "r.csv")]
    return subprocess.run(
        [*command, *extra],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_apply_on_an_endpoint_where_nothing_listens(tmp_path):
    """apply with nothing at SEAM_ENDPOINT: exit 3, the endpoint line, then one error line
    that says to check SEAM_ENDPOINT; no library line (stamina's retries) in between."""
    url = f"http://127.0.0.1:{free_port()}"
    done = apply_process(url, tmp_path)
    assert done.returncode == 3
    assert done.stderr.splitlines() == [
        f"info: talking to {url} (not Seam's production endpoint)",
        f"error: Seam error connect_failed: could not connect to {url}/devices/list: All"
        " connection attempts failed (the doors could not be listed: 6 attempts in a row found"
        f" no connection; check SEAM_ENDPOINT (now {url}) and the network, then rerun)",
    ]


@pytest.mark.slow
def test_apply_verbose_shows_the_retries(tmp_path):
    """apply --verbose: stamina's five retry lines are on stderr before the error line."""
    done = apply_process(f"http://127.0.0.1:{free_port()}", tmp_path, "--verbose")
    assert done.returncode == 3
    lines = done.stderr.splitlines()
    assert sum(line.startswith("warning: stamina.retry_scheduled ") for line in lines) == 5
    assert lines[-1].startswith("error: Seam error connect_failed: ")


@pytest.mark.slow
@pytest.mark.parametrize(("extra", "retries"), [((), 0), (("--verbose",), 5)])
def test_doors_says_its_retries_only_with_verbose(tmp_path, extra, retries):
    """doors with nothing at SEAM_ENDPOINT: the endpoint line and one error line; stamina's
    five retry lines only with --verbose (never bare, as Python's last-resort handler wrote
    them)."""
    url = f"http://127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAM_")}
    env |= {"SEAM_API_KEY": "seam_test_key", "SEAM_ENDPOINT": url}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "doors", *extra],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stderr.splitlines()
    assert done.returncode == 3
    assert lines[0] == f"info: talking to {url} (not Seam's production endpoint)"
    assert lines[-1] == (
        f"error: Seam error connect_failed: could not connect to {url}/devices/list: All"
        " connection attempts failed (the doors could not be listed: 6 attempts in a row found"
        f" no connection; check SEAM_ENDPOINT (now {url}) and the network, then rerun)"
    )
    if not retries:
        assert len(lines) == 2
    assert sum(line.startswith("warning: stamina.retry_scheduled ") for line in lines) == retries
    assert not any(line.startswith("stamina.") for line in lines)
