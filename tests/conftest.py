from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import stamina

import tests.properties  # noqa: F401  (registers Hypothesis's fast profile before it is loaded)
from pipeline.catalog.doors import DeviceCatalog, read_device_file
from pipeline.cli.logs import LIBRARY_LOGGERS
from pipeline.ledger.location import LedgerLocation, PostgresLedger
from tests.clock import session_clock
from tests.paths import SANDBOX_DEVICES
from tests.virtual_time import VIRTUAL_BACKEND

if TYPE_CHECKING:
    from tests.postgres import PostgresServer


@pytest.fixture(autouse=True)
def no_retry_sleeps():
    """Retries keep their logic (attempt count, what is retried) but never sleep."""
    with stamina.set_testing(True, attempts=10, cap=True):
        yield


@pytest.fixture(scope="session", autouse=True)
def one_clock_for_the_session() -> Iterator[None]:
    """Every process of the session reads a wall clock that starts at ``TEST_NOW``
    (``tests.clock``): the tests' dated stays mean the same whatever the machine's date."""
    with session_clock():
        yield


# What a developer's shell may hold that would change what a test sees: credentials and the
# endpoint (the tests set their own), libpq's connection defaults (a PGPASSWORD is masked in
# every message), a forced terminal or width for rich and argparse, and HTTP proxies.
LEAKING_VARIABLES = (
    "ORACODE_LEDGER",
    "SEAM_API_KEY",
    "SEAM_PERSONAL_ACCESS_TOKEN",
    "SEAM_WORKSPACE_ID",
    "SEAM_ENDPOINT",
    "SEAM_WEBHOOK_SECRET",
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSSLMODE",
    "PGOPTIONS",
    "PGAPPNAME",
    "PGCONNECT_TIMEOUT",
    "FORCE_COLOR",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "COLUMNS",
    "LINES",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


@pytest.fixture(scope="session", autouse=True)
def a_session_apart_from_the_machine(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """What the per-test fixtures below do, for the whole session too: a module's or a
    session's fixture (made before any test's own) sees no developer's setting either, and
    keeps its workspace locks out of the machine's run directory, which other checkouts'
    tests on this machine share."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in LEAKING_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("ORACODE_RUN_DIR", str(tmp_path_factory.mktemp("session-run")))
        yield


@pytest.fixture(autouse=True)
def nothing_from_the_developer_s_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's ORACODE_LEDGER, Seam or PostgreSQL settings, terminal or proxy never
    reach a test (nor, through the environment, its subprocesses)."""
    for name in LEAKING_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def in_a_folder_of_its_own(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """Each test runs in an empty folder of its own: a command's default ``outputs/`` never
    lands in the checkout, and nothing an earlier run left there is read."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


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


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The CLI configures process-wide loggers: put them back for the next test, whichever
    test ran a command in this process."""
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
