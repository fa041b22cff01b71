"""The ledger tests' fixtures: an open ledger on each backend (SQLite in a fresh folder, and a
fresh database on the session's throwaway PostgreSQL server), closed afterwards.

Tests that take ``ledger`` are the ledger's contract and run against both; those about SQLite's
files (modes, WAL, old files) take ``sqlite_ledger``.
"""

from __future__ import annotations

import pytest

from pipeline.ledger.location import LedgerLocation, PostgresLedger
from pipeline.ledger.store import Ledger

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)]


@pytest.fixture(params=BACKENDS)
def ledger_location(request: pytest.FixtureRequest, tmp_path) -> LedgerLocation:
    if request.param == "sqlite":
        return tmp_path / "ledger.sqlite"
    return PostgresLedger(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def ledger(ledger_location):
    opened = await Ledger.open(ledger_location)
    yield opened
    await opened.close()


@pytest.fixture
async def sqlite_ledger(tmp_path):
    opened = await Ledger.open(tmp_path / "ledger.sqlite")
    yield opened
    await opened.close()
