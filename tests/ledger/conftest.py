"""The ledger tests' fixtures: an open ledger on each backend (SQLite in a fresh folder, and a
fresh database on the session's throwaway PostgreSQL server), closed afterwards.

Tests that take ``ledger`` are the ledger's contract and run against both; those about SQLite's
files (modes, WAL, old files) take ``sqlite_ledger``.
"""

from __future__ import annotations

import pytest

from pipeline.ledger.store import Ledger


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
