"""What a new user sees first: only the pipeline's own log lines unless ``--verbose`` asks for
the libraries' too."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import httpx
import pytest

from pipeline.cli.parser import build_parser
from pipeline.report.output import LIBRARY_LOGGERS, configure_logging
from pipeline.seam.client import SeamClient
from pipeline.settings import SeamCredentials
from tests.paths import ROOT

SAMPLE = ROOT / "inputs" / "reservations-sample.csv"
CONFIG = ROOT / "inputs" / "pipeline.toml"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide loggers: put them back for the next tests."""
    loggers = [logging.getLogger(name) for name in ("pipeline", *LIBRARY_LOGGERS)]
    saved = [(logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    yield
    for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
