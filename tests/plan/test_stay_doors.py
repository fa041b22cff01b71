"""Several doors per stay: one reservation on several doors (a group booking), and the doors
every stay at a door or site also needs (``[doors.also]``, e.g. a building's entrance)."""

from __future__ import annotations

from pipeline.common.settings import Config, DoorsConfig, UserLevelDefaults
from tests.plan.helpers import HV, STAY, plan

ROOM = {"reservation_id": "G1", **HV, **STAY, "user_level": "1"}
LOBBY_DEFAULT = UserLevelDefaults(
    sites={"Harbor View": "Guest 3:30pm-10:30am"},
    doors={"Harbor Lobby": "Lobby Guest 3pm-11am"},
)
ALSO = Config(doors=DoorsConfig(also={"Harbor View": ["Harbor Lobby"]}), user_levels=LOBBY_DEFAULT)


def test_a_group_booking_plans_one_code_per_door(sandbox_catalog):
    """One reservation_id on two rooms with the same dates: a code on each room."""
    first, second = plan(
        sandbox_catalog, {**ROOM, "door_name": "Room 101"}, {**ROOM, "door_name": "Room 102"}
    )
    assert (first["outcome"], second["outcome"]) == ("planned", "planned")
    assert first["idempotency_tag"] != second["idempotency_tag"]


def test_one_door_twice_is_still_a_duplicate_or_a_conflict(sandbox_catalog):
    """The same reservation on one door: an identical copy is skipped, a different one makes
    every copy of that door a conflict (the reservation's other door is planned)."""
    room = {**ROOM, "door_name": "Room 101"}
    copy, conflict = (
        plan(sandbox_catalog, room, room),
        plan(
            sandbox_catalog,
            room,
            {**room, "check_out": "2027-03-17"},
            {**room, "door_name": "Room 102"},
        ),
    )
    assert [row["reason"] for row in copy] == [None, "duplicate_reservation"]
    assert [row["reason"] for row in conflict] == [
        "duplicate_reservation_conflict",
        "duplicate_reservation_conflict",
        None,
    ]
    assert conflict[0]["message"] == (
        "reservation_id G1 appears 2 times on door Room 101 with different content; fix the source"
    )


def test_one_door_written_two_ways_is_found_once_the_door_is_known(sandbox_catalog):
    """By name and by device_id, the same window is one code (the copy skipped), another
    window a conflict."""
    by_id = sandbox_catalog.doors.filter(door_name="Room 101", site_name="Harbor View")
    device_id = by_id["device_id"][0]
    by_name = {**ROOM, "door_name": "Room 101"}
    same = plan(sandbox_catalog, by_name, {**ROOM, "site_name": None, "device_id": device_id})
    other = plan(
        sandbox_catalog,
        by_name,
        {**ROOM, "site_name": None, "device_id": device_id, "check_out": "2027-03-17"},
    )
    assert [(row["outcome"], row["reason"]) for row in same] == [
        ("planned", None),
        ("skipped", "duplicate_reservation"),
    ]
    assert same[1]["message"] == "the same code as test.csv line 2"
    assert [row["reason"] for row in other] == ["duplicate_reservation_conflict"] * 2
    assert other[0]["idempotency_tag"] is None


def test_a_stay_at_a_listed_site_also_gets_the_entrance(sandbox_catalog):
    """[doors.also] "Harbor View" = ["Harbor Lobby"]: a row on Room 101 is followed by one on
    the lobby, from the same line, planned on the lobby's own level nearest the stay (here a
    booking by dates: its room's window, 3:30pm → 10:30am, is 30 minutes off the lobby's 3pm →
    11am at each end)."""
    room, lobby = plan(sandbox_catalog, {**ROOM, "door_name": "Room 101"}, config=ALSO)
    assert (room["door_name"], room["also_for"], room["message"]) == ("Room 101", None, None)
    assert (lobby["door_name"], lobby["site_name"], lobby["user_level_name"]) == (
        "Harbor Lobby",
        "Harbor View",
        "Lobby Guest 3pm-11am",
    )
    assert (lobby["starts_at"], lobby["ends_at"]) == (
        "2027-03-12T15:00:00-08:00",
        "2027-03-16T11:00:00-07:00",
    )
    assert (lobby["outcome"], lobby["also_for"], lobby["message"]) == (
        "planned",
        "Room 101",
        "also for the stay on Room 101 ([doors.also]); rounded to user level Lobby Guest"
        " 3pm-11am: check-in 15:30 → 15:00 (30 min earlier), check-out 10:30 → 11:00 (30 min"
        " later)",
    )
    assert (lobby["reservation_id"], lobby["source_line"]) == ("G1", room["source_line"])
    assert lobby["idempotency_tag"] not in (None, room["idempotency_tag"])


def test_rooms_of_one_reservation_share_the_entrance_code(sandbox_catalog):
    """Two rooms, one reservation, the same dates: one lobby code serving both; other dates
    are another window, so another lobby code."""
    rows = plan(
        sandbox_catalog,
        {**ROOM, "door_name": "Room 101"},
        {**ROOM, "door_name": "Room 102"},
        {**ROOM, "door_name": "Room 103", "check_out": "2027-03-18"},
        config=ALSO,
    )
    assert [(row["door_name"], row["also_for"]) for row in rows] == [
        ("Room 101", None),
        ("Harbor Lobby", "Room 101, Room 102"),
        ("Room 102", None),
        ("Room 103", None),
        ("Harbor Lobby", "Room 103"),
    ]
    assert rows[1]["message"].startswith("also for the stay on Room 101, Room 102 ([doors.also]);")


def test_a_stay_by_dates_takes_its_rooms_window_to_the_other_doors(sandbox_catalog):
    """A day guest's room (7am → 7pm, named by dates) gives the lobby that window, which no
    lobby level is near: refused there, saying so; a 24-hour room gives the lobby's 24-hour
    level."""
    _, lobby, _, lobby_pass = plan(
        sandbox_catalog,
        {**ROOM, "door_name": "Room 103", "user_level": "Guest RCI D 7am-7pm"},
        {**ROOM, "reservation_id": "G2", "door_name": "Room 104", "user_level": "Day Pass 24h"},
        config=ALSO,
    )
    assert (lobby["reason"], lobby["also_for"]) == ("no_matching_user_level", "Room 103")
    assert lobby["message"].startswith(
        "for the stay on Room 103 ([doors.also]): no user level of door Harbor Lobby is within"
        " 60 min ([plan] slot_tolerance_minutes) of 07:00→19:00 at both ends;"
    )
    assert (lobby_pass["user_level_name"], lobby_pass["max_time_rounding"]) == (
        "Lobby Day 24h",
        "1d",
    )


def test_the_entrance_rounds_the_booking_to_its_own_levels(sandbox_catalog):
    """A 15:30→10:30 booking is exact on the room and 30 minutes off the lobby's 3pm→11am:
    the lobby's code is rounded, and says so after what it is for."""
    timed = {
        **ROOM,
        "door_name": "Room 102",
        "user_level": None,
        "check_in": "2027-03-12T15:30",
        "check_out": "2027-03-16T10:30",
    }
    room, lobby = plan(sandbox_catalog, timed, config=ALSO)
    assert (room["user_level_name"], room["message"]) == ("Guest 3:30pm-10:30am", None)
    assert lobby["message"] == (
        "also for the stay on Room 102 ([doors.also]); rounded to user level Lobby Guest"
        " 3pm-11am: check-in 15:30 → 15:00 (30 min earlier), check-out 10:30 → 11:00 (30 min"
        " later)"
    )


def test_no_entrance_row_for_a_rejected_stay_or_one_with_its_own(sandbox_catalog):
    """A stay rejected on its room gets no entrance row (it comes with the fix); a reservation
    with a row of its own on the lobby gets none besides it."""
    rows = plan(
        sandbox_catalog,
        {**ROOM, "door_name": "Room 101", "user_level": "Penthouse"},
        {**ROOM, "reservation_id": "G2", "door_name": "Room 101"},
        {**ROOM, "reservation_id": "G2", "door_name": "Harbor Lobby", "user_level": None},
        config=ALSO,
    )
    assert [(row["reservation_id"], row["door_name"], row["reason"]) for row in rows] == [
        ("G1", "Room 101", "unknown_user_level"),
        ("G2", "Room 101", None),
        ("G2", "Harbor Lobby", None),
    ]


def test_a_listed_door_that_matches_nothing_rejects_each_stays_entrance_row(sandbox_catalog):
    """A listed name that is no door: each stay's row there is unknown_device, saying which
    stay it is for and the closest names."""
    config = Config(
        doors=DoorsConfig(also={"Room 101": ["Harbour Lobby"]}), user_levels=LOBBY_DEFAULT
    )
    _, lobby = plan(sandbox_catalog, {**ROOM, "door_name": "Room 101"}, config=config)
    assert (lobby["outcome"], lobby["reason"], lobby["door_name"]) == (
        "rejected",
        "unknown_device",
        "Harbour Lobby",
    )
    assert lobby["message"].startswith(
        "for the stay on Room 101 ([doors.also]): no dormakaba Oracode door is named Harbour"
        ' Lobby; did you mean "Harbor Lobby"?'
    )


def test_keys_may_name_a_door_an_alias_or_a_device_id(sandbox_catalog):
    """The door a stay is on may be named by its name, an alias or its device_id; so may the
    listed door."""
    lobby_id = sandbox_catalog.doors.filter(door_name="Harbor Lobby")["device_id"][0]
    for key, listed in (("room 101", [lobby_id]), ("Unit 1", ["Lobby"])):
        config = Config(
            doors=DoorsConfig(
                also={key: listed}, aliases={"Unit 1": "Room 101", "Lobby": "Harbor Lobby"}
            ),
            user_levels=LOBBY_DEFAULT,
        )
        rows = plan(sandbox_catalog, {**ROOM, "door_name": "Room 101"}, config=config)
        assert [row["door_name"] for row in rows] == ["Room 101", "Harbor Lobby"], key
