"""What the HTML report reads from the ledger besides the report's rows: each run's requests and
the hand-off rows of a range of check-in dates, all from one snapshot of the ledger; the index
those rows' status changes are read through."""

from __future__ import annotations

import pytest

from pipeline.ledger.location import PostgresLedger
from pipeline.ledger.store import Ledger
from pipeline.seam.answers import Exchange
from pipeline.seam.models import AccessCode
from tests.ledger.helpers import planned, query

pytestmark = pytest.mark.anyio


def code(code_id: str, pin: str | None) -> AccessCode:
    return AccessCode(access_code_id=code_id, device_id="device-1", code=pin, status="set")


def exchange(path: str = "/access_codes/create") -> Exchange:
    return Exchange(path, {}, 200, "req", None, None, 0.01)


async def test_requests_per_run_counts_the_requests_each_run_logged(ledger):
    """Every exchange a run's client logged is one request of that run; a run that sent none
    and a run not asked about are left out."""
    first, second, quiet = [await ledger.start_run("apply", []) for _ in range(3)]
    for run_id, sent in ((first, 3), (second, 1)):
        observe = ledger.observe(run_id)
        for _ in range(sent):
            observe(exchange())
    await ledger.register(first, [planned("t1")])  # a state change is no request
    await ledger.commit()
    assert await ledger.requests_per_run([first, second, quiet]) == {first: 3, second: 1}
    assert await ledger.requests_per_run([second]) == {second: 1}


async def test_held_pins_are_every_pin_the_ledger_holds(ledger):
    """The codes' PINs, another PIN an event reported for a code, and the PINs of the codes
    found carrying a tag twice; a code without a PIN adds none."""
    run_id = await ledger.start_run("apply", [])
    await ledger.register(run_id, [planned("t1"), planned("t2"), planned("t3")])
    for tag, pin in (("t1", "111111"), ("t2", None)):
        ledger.mark_created(tag, run_id, code(f"ac-{tag}", pin), "req", how="created")
    ledger.note_duplicates(run_id, {"t3": [code(f"ac-3{n}", f"33333{n}") for n in (1, 2)]})
    await ledger.commit()
    query(ledger.path, "UPDATE codes SET reported_code = '222222' WHERE idempotency_tag = 't1'")
    assert await ledger.held_pins() == {"111111", "222222", "333331", "333332"}


async def test_pin_rows_keep_to_the_check_in_dates_asked_for(ledger):
    """With ``check_in_dates`` only the codes whose starts_at (the lock's date, as written)
    falls on one of those dates, both ends included."""
    run_id = await ledger.start_run("apply", [])
    dates = {"t1": "2026-12-01", "t2": "2026-12-02", "t3": "2026-12-04", "t4": "2026-12-05"}
    await ledger.register(
        run_id,
        [planned(tag) | {"starts_at": f"{day}T23:30:00-08:00"} for tag, day in dates.items()],
    )
    kept = await ledger.pin_rows(("2026-12-02", "2026-12-04"))
    assert [row["idempotency_tag"] for row in kept] == ["t2", "t3"]
    assert len(await ledger.pin_rows()) == 4


async def test_reads_within_a_snapshot_see_the_ledger_as_at_the_first(ledger):
    """A code another connection registers while a snapshot is open is not among the
    snapshot's rows, however often it reads; once the snapshot ends, it is."""
    run_id = await ledger.start_run("apply", [])
    await ledger.register(run_id, [planned("t1")])
    other = await Ledger.open(ledger.path)
    try:
        async with ledger.snapshot():
            assert [row["idempotency_tag"] for row in await ledger.pin_rows()] == ["t1"]
            await other.register(run_id, [planned("t2")])
            assert [row["idempotency_tag"] for row in await ledger.pin_rows()] == ["t1"]
            assert await ledger.requests_per_run([run_id]) == {}
        assert len(await ledger.pin_rows()) == 2
    finally:
        await other.close()


def _indexes(ledger: Ledger) -> set[str]:
    if isinstance(ledger.path, PostgresLedger):
        sql = "SELECT indexname FROM pg_indexes WHERE tablename = 'events'"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
    return {name for (name,) in query(ledger.path, sql)}


async def test_status_events_are_indexed_by_tag_in_new_and_older_ledgers(ledger):
    """A new ledger has the index of status events by tag; a ledger made before it gets it
    when opened."""
    assert "events_status_by_tag" in _indexes(ledger)
    query(ledger.path, "DROP INDEX events_status_by_tag")
    assert "events_status_by_tag" not in _indexes(ledger)
    await (await Ledger.open(ledger.path)).close()
    assert "events_status_by_tag" in _indexes(ledger)
