"""The ledger tests' one fixture: an open ledger in a fresh folder, closed afterwards."""

from __future__ import annotations

import pytest

from pipeline.ledger.store import Ledger


@pytest.fixture
async def ledger(tmp_path):
    opened = await Ledger.open(tmp_path / "ledger.sqlite")
    yield opened
    await opened.close()
