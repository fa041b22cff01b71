"""What other stages read and record through the ledger: status checks, moved reservations and
the report (the SQL lives in the ledger, they get plain rows)."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.common.errors import UsageError
from pipeline.ledger.store import STATUS_COLUMNS, Ledger
from pipeline.report.summary import make_report
from tests.ledger.helpers import access_code, planned, rows

pytestmark = pytest.mark.anyio
NOW = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)


async def made(ledger: Ledger, tags: list[str]) -> str:
    """Register ``tags`` and mark the first ``created``, the second ``sending`` (if any)."""
    run_id = await ledger.start_run("apply", [])
    await ledger.register(run_id, [planned(tag) for tag in tags])
    for tag in tags[:2]:
        await ledger.mark_sending(tag, run_id)
    ledger.mark_created(tags[0], run_id, access_code(), "req-1", how="created")
    await ledger.commit()
    return run_id


async def test_created_codes_are_the_created_ones_with_an_id_and_their_status_columns(ledger):
    """created_codes gives the created codes (with ``tags`` only those) as STATUS_COLUMNS,
    reported_code, created_at and withdrawn (None for a code still current); sending and
    pending ones are left out."""
    await made(ledger, ["t1", "t2", "t3"])
    [code] = await ledger.created_codes()
    assert tuple(code) == (*STATUS_COLUMNS, "reported_code", "created_at", "withdrawn")
    assert code["withdrawn"] is None
    assert (code["idempotency_tag"], code["access_code_id"], code["code_status"]) == (
        "t1",
        "ac-1",
        "set",
    )
    assert await ledger.created_codes(["t2", "t3"]) == []
    assert [c["idempotency_tag"] for c in await ledger.created_codes(["t1"])] == ["t1"]


async def test_recorded_statuses_update_the_codes_and_log_only_changes_and_attention(ledger):
    """record_statuses writes each row's status columns and check time; a ``status`` event only
    for a changed status or a code that needs attention."""
    run_id = await made(ledger, ["t1", "t2"])
    ledger.mark_created("t2", run_id, access_code("ac-2"), "req-2", how="created")
    await ledger.commit()
    same = {"code_status": "set", "previous_status": "set", "needs_attention": None}
    changed = {"code_status": "setting", "previous_status": "set", "needs_attention": "why"}
    statuses = [
        {"idempotency_tag": tag, "code": "123456", "code_errors": "[]", "code_warnings": "[]"} | row
        for tag, row in (("t1", same), ("t2", changed))
    ]
    await ledger.record_statuses(run_id, statuses, "2026-11-30T12:00:00+00:00")
    assert rows(
        ledger, "SELECT idempotency_tag, code_status, needs_attention, status_checked_at FROM codes"
    ) == [
        ("t1", "set", None, "2026-11-30T12:00:00+00:00"),
        ("t2", "setting", "why", "2026-11-30T12:00:00+00:00"),
    ]
    assert rows(ledger, "SELECT idempotency_tag FROM events WHERE kind = 'status'") == [("t2",)]


async def test_codes_of_reservations_are_those_that_may_exist(ledger):
    """codes_of_reservations gives the created and sending codes of the reservations asked for
    (a sending one without its access_code_id), never a pending one."""
    await made(ledger, ["t1", "t2", "t3"])
    found = await ledger.codes_of_reservations(["res-t1", "res-t2", "res-t3"])
    assert sorted((c["idempotency_tag"], c["access_code_id"]) for c in found) == [
        ("t1", "ac-1"),
        ("t2", None),
    ]
    assert await ledger.codes_of_reservations(["res-t2"]) == [
        {
            "reservation_id": "res-t2",
            "idempotency_tag": "t2",
            "device_id": "device-1",
            "door_name": "Room 101",
            "starts_at": "2026-12-01T15:00:00Z",
            "ends_at": "2026-12-03T11:00:00Z",
            "access_code_id": None,
        }
    ]


async def test_replacements_are_recorded_on_the_new_codes(ledger):
    """record_replacements links each reissued code to the code it replaces."""
    await made(ledger, ["t1", "t2"])
    await ledger.record_replacements({"t2": "t1"})
    assert rows(ledger, "SELECT idempotency_tag, replaces_tag FROM codes") == [
        ("t1", None),
        ("t2", "t1"),
    ]


async def test_the_report_is_built_from_the_ledgers_rows(ledger):
    """make_report builds its sections from the rows the ledger reads (orphans, the doors'
    codes) and refuses a run that isn't an apply run."""
    run_id = await made(ledger, ["t1", "t2", "t3"])
    doors = [("device-1", "Room 101", "Hotel", True, "created", None, 3)]
    budgets = [("device-1", "lifetime", 10, "config", 1, 2, 3)]
    await ledger.record_apply(run_id, doors, budgets, ["res-t1"], now=NOW)
    await ledger.finish_run(run_id, 0, {"created": 1})
    made_report = await make_report(ledger, now=NOW)
    assert made_report.run_id == run_id
    assert made_report.orphaned["idempotency_tag"].to_list() == ["t2"]
    assert made_report.doors["outcome_unknown"].to_list() == [1]
    with pytest.raises(UsageError, match="the ledger has no apply run nope"):
        await make_report(ledger, now=NOW, run_id="nope")


async def test_a_status_check_never_takes_a_pin_away_and_dates_only_real_changes(ledger):
    """record_statuses keeps a known PIN when Seam's answer lacks it (a lagging list, or a
    webhook that recorded it meanwhile), and moves updated_at only when something changed."""
    run_id = await made(ledger, ["t1"])
    [before] = rows(ledger, "SELECT code, code_status, updated_at FROM codes")
    assert before[0] == "123456"

    def row(status: str, pin: str | None) -> dict:
        return {
            "idempotency_tag": "t1",
            "code_status": status,
            "code": pin,
            "code_errors": "[]",
            "code_warnings": "[]",
            "needs_attention": None,
            "previous_status": before[1],
        }

    await ledger.record_statuses(run_id, [row(before[1], None)], "2030-01-01T00:00:00+00:00")
    assert rows(ledger, "SELECT code, code_status, updated_at FROM codes") == [before]
    await ledger.record_statuses(run_id, [row("unset", None)], "2030-01-02T00:00:00+00:00")
    [after] = rows(ledger, "SELECT code, code_status, updated_at FROM codes")
    assert after == ("123456", "unset", "2030-01-02T00:00:00+00:00")


async def test_a_prepared_code_never_sent_goes_back_to_pending_and_a_created_one_stays(ledger):
    """unmark_sending: a code this run made ``sending`` but never sent is ``pending`` again,
    without its send time (its attempt stays counted, so no later send gets its number); one
    answered meanwhile (``created``) is left as is."""
    run_id = await ledger.start_run("apply", [])
    await ledger.register(run_id, [planned("t1"), planned("t2")])
    for tag in ("t1", "t2"):
        assert await ledger.mark_sending(tag, run_id)
    ledger.mark_created("t2", run_id, access_code(), "req-2", how="created")
    await ledger.unmark_sending(run_id, [("t1", 1), ("t2", 1)])
    select = "SELECT idempotency_tag, state, attempts, sent_at IS NULL FROM codes ORDER BY 1"
    assert [tuple(row) for row in rows(ledger, select)] == [
        ("t1", "pending", 1, True),
        ("t2", "created", 1, False),
    ]
    assert await ledger.mark_sending("t1", run_id) == 2  # sendable again, a new number


async def test_pin_rows_come_in_the_same_order_on_either_database(ledger):
    """By start, reservation, door (a code without a door name first), then tag: the hand-off
    file reads the same whichever database the ledger is in."""
    run_id = await ledger.start_run("apply", [])
    stay = {"reservation_id": "res-1"}  # one stay, three doors
    codes = [
        planned("t2") | stay | {"door_name": "Room 102"},
        planned("t0") | {"starts_at": "2026-12-02T15:00:00Z"},
        planned("t3") | stay | {"door_name": "Room 101"},
        planned("t1") | stay | {"door_name": None},
        planned("t4") | stay | {"door_name": "Room 101"},
    ]
    await ledger.register(run_id, codes)
    order = [row["idempotency_tag"] for row in await ledger.pin_rows()]
    assert order == ["t1", "t3", "t4", "t2", "t0"]


async def test_the_hand_off_keeps_guests_the_status_cursor_and_known_trouble(ledger):
    """Guest names (the last one given wins), the PIN rows of codes still wanted, the status
    cursor (one row, moved on), and trouble: what is new since the last note."""
    await made(ledger, ["t1", "t2", "t3"])
    await ledger.record_guests([("t1", "Ada"), ("t2", "Bo")])
    await ledger.record_guests([("t1", "Ada Lovelace")])
    pins = {row["idempotency_tag"]: row for row in await ledger.pin_rows()}
    assert set(pins) == {"t1", "t2", "t3"}
    assert (pins["t1"]["guest_name"], pins["t1"]["code"]) == ("Ada Lovelace", "123456")
    assert pins["t3"]["guest_name"] is None
    assert await ledger.status_known_until() is None
    for instant in ("2026-12-01T10:00:00+00:00", "2026-12-01T11:00:00+00:00"):
        await ledger.set_status_known_until(instant)
    assert await ledger.status_known_until() == "2026-12-01T11:00:00+00:00"
    first = await ledger.note_trouble([("attention", "t1"), ("orphaned", "t2")], ["attention"])
    again = await ledger.note_trouble([("attention", "t1"), ("attention", "t3")], ["attention"])
    assert first == {("attention", "t1")}
    assert again == {("attention", "t3")}


async def test_a_move_out_of_sending_names_its_attempt_and_never_puts_back_a_later_send(ledger):
    """A look or an answer about attempt 1 (say, another process's settling of a code it saw
    ``sending``) arrives after the code was put back and sent again as attempt 2: it leaves
    attempt 2 ``sending``, so no one sends the tag a third time; the move about attempt 2
    goes through. The same for putting back a prepared code."""
    run_id = await ledger.start_run("apply", [])
    await ledger.register(run_id, [planned("t1")])
    assert await ledger.mark_sending("t1", run_id) == 1
    ledger.mark_pending("t1", run_id, "not_found", "looked for, not there", attempt=1)
    assert await ledger.mark_sending("t1", run_id) == 2
    ledger.mark_pending("t1", run_id, "not_found", "a stale look", attempt=1)
    await ledger.unmark_sending(run_id, [("t1", 1)])
    select = "SELECT state, attempts FROM codes WHERE idempotency_tag = 't1'"
    assert [tuple(row) for row in rows(ledger, select)] == [("sending", 2)]
    assert await ledger.mark_sending("t1", run_id) is None  # nobody sends it again
    ledger.mark_failed("t1", run_id, "invalid_input", "refused", "req-9", attempt=2)
    await ledger.commit()
    assert [tuple(row) for row in rows(ledger, select)] == [("failed", 2)]


async def test_codes_are_orphaned_per_reservation_and_door(ledger):
    """With the run's stays (reservation, door) given: a code whose reservation is in the input
    but not on its door any more is orphaned, unless the reservation has a row on no known door
    or the code was made for [doors.also] (noted once instead); a stay back on its door is no
    longer orphaned."""
    run_id = await ledger.start_run("apply", [])
    codes = [
        {**planned("moved"), "reservation_id": "R1", "device_id": "room-1"},
        {**planned("kept"), "reservation_id": "R1", "device_id": "room-2"},
        {**planned("typo"), "reservation_id": "R2", "device_id": "room-1"},
        {**planned("lobby"), "reservation_id": "R1", "device_id": "lobby", "also_for": "room-1"},
    ]
    for code in codes:
        code["ends_at"] = "2027-01-03T11:00:00Z"
    await ledger.register(run_id, codes)
    for code in codes:
        await ledger.mark_sending(code["idempotency_tag"], run_id)
        ledger.mark_created(code["idempotency_tag"], run_id, access_code(), "req", how="created")
    await ledger.commit()
    summary = {"now": NOW, "stays": [("R1", "room-2")], "unsure": ["R2"]}
    first = await ledger.record_apply(run_id, [], [], ["R1", "R2"], **summary)
    second = await ledger.record_apply(run_id, [], [], ["R1", "R2"], **summary)
    assert (first.orphaned, first.no_longer_asked) == (1, {"Room 101": 1})
    assert (second.orphaned, second.no_longer_asked) == (0, {})
    orphaned = "SELECT idempotency_tag FROM codes WHERE orphaned_run_id IS NOT NULL"
    assert rows(ledger, orphaned) == [("moved",)]
    stays = [("R1", "room-1"), ("R1", "room-2"), ("R1", "lobby"), ("R2", "room-1")]
    back = {"now": NOW, "stays": stays}
    await ledger.record_apply(run_id, [], [], ["R1", "R2"], **back)
    assert rows(ledger, orphaned) == []
    assert rows(ledger, "SELECT COUNT(*) FROM codes WHERE also_dropped_run_id IS NOT NULL") == [
        (0,)
    ]


async def test_the_rows_without_a_code_are_the_latest_runs_and_the_codes_a_person_must_act_on(
    ledger,
):
    """Each run's rows without a code replace the last run's, in the input's order; the codes
    needing a person are the sending one, the one needing attention, the orphaned and the
    superseded ones, each with its guest, the superseded one naming the code that replaced it,
    on either database."""
    run_id = await made(ledger, ["t1", "t2", "t3", "t4", "t5"])
    row = {"outcome": "rejected", "reason": "unknown_device", "source_file": "x.csv"}
    await ledger.record_without_code(run_id, [row | {"reservation_id": "old", "source_line": 2}])
    later = [
        row | {"reservation_id": "B", "source_line": 3, "guest_name": "Bo"},
        row | {"reservation_id": "A", "source_line": 2, "check_in": "2027-03-01"},
    ]
    await ledger.record_without_code(run_id, later)
    without = await ledger.rows_without_code()
    assert [(r["reservation_id"], r["guest_name"], r["run_id"]) for r in without] == [
        ("A", None, run_id),
        ("B", "Bo", run_id),
    ]
    await ledger.mark_sending("t3", run_id)
    await ledger.mark_sending("t4", run_id)
    ledger.mark_created("t3", run_id, access_code("ac-3"), None, how="created")
    ledger.mark_created("t4", run_id, access_code("ac-4"), None, how="created")
    await ledger.commit()
    await ledger.record_guests([("t3", "Cy")])
    await ledger.record_replacements({"t4": "t3"})
    for tag, column in (("t1", "needs_attention"), ("t3", "superseded_run_id")):
        await ledger.write(
            lambda db, tag=tag, column=column: db.execute(
                f"UPDATE codes SET {column} = 'x' WHERE idempotency_tag = ?", (tag,)
            )
        )
    await ledger.write(
        lambda db: db.execute("UPDATE codes SET orphaned_run_id = 'r' WHERE idempotency_tag = 't4'")
    )
    found = {row["idempotency_tag"]: row for row in await ledger.codes_needing_a_person()}
    assert sorted(found) == ["t1", "t2", "t3", "t4"]  # t5 is pending: nothing to act on
    assert found["t2"]["state"] == "sending"
    assert (found["t3"]["guest_name"], found["t3"]["replaced_by"]) == ("Cy", "ac-4")
    assert found["t3"]["replaced_by_ends_at"] == "2026-12-03T11:00:00Z"
    assert found["t4"]["orphaned_run_id"] == "r"
