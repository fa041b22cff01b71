from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import stamina

from pipeline.catalog.doors import DeviceCatalog, read_device_file
from pipeline.report.output import LIBRARY_LOGGERS
from tests.paths import SANDBOX_DEVICES
from tests.virtual_time import VIRTUAL_BACKEND


@pytest.fixture(autouse=True)
def no_retry_sleeps():
    """Retries keep their logic (attempt count, what is retried) but never sleep."""
    with stamina.set_testing(True, attempts=10, cap=True):
        yield


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
