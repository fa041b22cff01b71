"""The ledger as an async context manager: the block's end closes it, what was queued committed."""

from __future__ import annotations

import sqlite3

import pytest

from pipeline.ledger.store import Ledger
from tests.ledger.helpers import access_code, planned

pytestmark = pytest.mark.anyio


async def test_leaving_the_block_commits_what_was_queued_and_closes(tmp_path):
    """An answer queued (not awaited) inside the block is on disk after it, and the ledger is
    closed: another query on it fails."""
    path = tmp_path / "ledger.sqlite"
    async with await Ledger.open(path) as ledger:
        run_id = await ledger.start_run("apply", [])
        await ledger.register(run_id, [planned("t1")])
        await ledger.mark_sending("t1", run_id)
        ledger.mark_created("t1", run_id, access_code(), "req-1", how="created")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT state FROM codes").fetchall() == [("created",)]
    with pytest.raises(sqlite3.ProgrammingError, match="closed database"):
        ledger._db.execute("SELECT 1")


async def create_then_fail(path) -> None:
    async with await Ledger.open(path) as ledger:
        run_id = await ledger.start_run("apply", [])
        await ledger.register(run_id, [planned("t1")])
        await ledger.mark_sending("t1", run_id)
        ledger.mark_created("t1", run_id, access_code(), "req-1", how="created")
        raise RuntimeError("boom")


async def test_an_error_in_the_block_still_commits_and_closes(tmp_path):
    """The block raising: the error goes on, and what was queued before it is committed."""
    path = tmp_path / "ledger.sqlite"
    with pytest.raises(RuntimeError, match="boom"):
        await create_then_fail(path)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT state FROM codes").fetchall() == [("created",)]
