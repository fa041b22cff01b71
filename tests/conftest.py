from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import stamina

from pipeline.catalog.doors import DeviceCatalog, read_device_file
from pipeline.ledger.location import LedgerLocation, PostgresLedger
from pipeline.report.output import LIBRARY_LOGGERS
from tests.paths import SANDBOX_DEVICES
from tests.virtual_time import VIRTUAL_BACKEND

if TYPE_CHECKING:
    from tests.postgres import PostgresServer


@pytest.fixture(autouse=True)
def no_retry_sleeps():
    """Retries keep their logic (attempt count, what is retried) but never sleep."""
    with stamina.set_testing(True, attempts=10, cap=True):
        yield


@pytest.fixture(autouse=True)
def no_ledger_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's ORACODE_LEDGER never becomes a test's ledger."""
    monkeypatch.delenv("ORACODE_LEDGER", raising=False)


@pytest.fixture(autouse=True)
def own_run_directory(monkeypatch: pytest.MonkeyPatch, tmp_path_factory) -> None:
    """Each test keeps its Seam workspace locks in a folder of its own (tests running side by
    side use the sandbox's one workspace), never in the machine's run directory."""
    monkeypatch.setenv("ORACODE_RUN_DIR", str(tmp_path_factory.mktemp("run")))


@pytest.fixture
def anyio_backend(request: pytest.FixtureRequest) -> object:
    """Async tests run on asyncio; those marked ``virtual_time`` on a loop whose clock jumps
    instead of sleeping (``tests.virtual_time``). A module's own ``anyio_backend`` wins."""
    if request.node.get_closest_marker("virtual_time") is not None:
        return VIRTUAL_BACKEND
    return "asyncio"


@pytest.fixture(scope="session")
def sandbox_catalog() -> DeviceCatalog:
    return read_device_file(SANDBOX_DEVICES)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The CLI configures process-wide loggers: put them back for the next tests (for modules
    that run commands in this process: ``pytest.mark.usefixtures("restore_logging")``)."""
    loggers = [logging.getLogger(name) for name in ("pipeline", *LIBRARY_LOGGERS)]
    saved = [(logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    yield
    for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


# The ledger's two databases; PostgreSQL's cases (a throwaway server) are among the slow ones.
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)]


@pytest.fixture(params=BACKENDS)
def ledger_location(request: pytest.FixtureRequest, tmp_path) -> LedgerLocation:
    """Where a test's ledger lives, once per database: a SQLite file in a fresh folder, or a
    fresh database on the session's PostgreSQL server (one database: pin it with
    ``@pytest.mark.parametrize("ledger_location", ["sqlite"], indirect=True)``)."""
    if request.param == "sqlite":
        return tmp_path / "ledger.sqlite"
    return PostgresLedger(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server (``tests.postgres``), started by the first test that asks
    for it, so sessions without such tests neither start one nor import psycopg; stopped and
    removed at the session's end. Without the server binaries every test that needs it fails,
    saying to run ``make postgres``: none is skipped."""
    from tests.postgres import PostgresMissing, remove_server, start_server

    try:
        server = start_server()
    except PostgresMissing as missing:
        pytest.fail(str(missing), pytrace=False)
    try:
        yield server
    finally:
        remove_server(server)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh database on the session's server, as a URL with the superuser's password."""
    return postgres_server.new_database()
