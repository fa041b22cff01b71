"""Rounding a booking's times to a user level within ``[plan] slot_tolerance_minutes``: the
vectorised rule against a brute-force reference, and its edges case by case."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.catalog.doors import DeviceCatalog
from pipeline.common.errors import ConfigError
from pipeline.common.settings import Config, PlanConfig, UserLevelDefaults, load_config
from pipeline.plan.planner import plan_reservations
from tests.generate import make_door, make_level
from tests.plan.helpers import NOW, plan, reservations
from tests.properties import property_settings
from tests.rowwise import plan_rowwise

# Doors in zones with DST (whole and half-hour offsets, a 30-minute change on Lord Howe) and
# without, each with several hourly levels (two near midnight, one biweekly) and a 24-hour one.
ZONES = {
    "Pacific": "America/Los_Angeles",
    "Berlin": "Europe/Berlin",
    "Adelaide": "Australia/Adelaide",
    "Kolkata": "Asia/Kolkata",
    "Lord Howe": "Australia/Lord_Howe",
}


def _levels(zone: str) -> list[dict[str, object]]:
    suffix = f"[{zone}]"
    times = [
        ("Guest 4pm-10am", 1, "16:00", "10:00"),
        ("Guest 3pm-11am", 2, "15:00", "11:00"),
        ("Late 6pm-12pm", 3, "18:00", "12:00"),
        ("Night 11:30pm-1:30am", 4, "23:30", "01:30"),
        ("Early 2am-3am", 5, "02:00", "03:00"),
    ]
    levels = [make_level(n, p, f"{i}:00{suffix}", f"{o}:00{suffix}") for n, p, i, o in times]
    levels.append(
        make_level("Fortnight", 6, f"15:00:00{suffix}", f"10:00:00{suffix}", is_biweekly_mode=True)
    )
    levels.append(
        make_level("Day 24h", 7, f"12:00:00{suffix}", f"12:00:00{suffix}", is_24_hour=True)
    )
    levels.append(make_level("Master", 9, f"00:00:00{suffix}", f"00:00:00{suffix}", is_master=True))
    return levels


CATALOG = DeviceCatalog.from_payload(
    {
        "devices": [
            make_door(f"door-{n}", f"Door {name}", f"Site {name}", zone, _levels(zone))
            for n, (name, zone) in enumerate(ZONES.items())
        ]
    },
    source="test",
)
DOORS = CATALOG.doors.to_dicts()
# Days a DST change happens in one of the zones (and a plain one), to start stays on or end them.
CHANGE_DAYS = [
    dt.date(2027, 3, 14),  # Pacific forward
    dt.date(2027, 11, 7),  # Pacific back
    dt.date(2027, 3, 28),  # Berlin forward
    dt.date(2027, 10, 31),  # Berlin back
    dt.date(2027, 4, 4),  # Adelaide and Lord Howe back
    dt.date(2027, 10, 3),  # Adelaide and Lord Howe forward
    dt.date(2027, 6, 15),
]
LEVEL_TIMES = [
    dt.time(h, m)
    for h, m in (
        (16, 0),
        (10, 0),
        (15, 0),
        (11, 0),
        (18, 0),
        (12, 0),
        (23, 30),
        (1, 30),
        (2, 0),
        (3, 0),
    )
]


PAIRS = [
    (lv["level_check_in"], lv["level_check_out"])
    for lv in CATALOG.levels.filter(device_id="door-0").to_dicts()
]


@st.composite
def stays(draw: st.DrawFn) -> dict[str, str | None]:
    door = draw(st.sampled_from(DOORS))
    day = draw(st.sampled_from(CHANGE_DAYS)) + dt.timedelta(days=draw(st.integers(-1, 1)))
    nights = draw(st.sampled_from([1, 2, 3, 13, 14, 15]))
    # Mostly a level's own pair of times, each end moved a little; sometimes any two times.
    times = (
        draw(st.sampled_from(PAIRS))
        if draw(st.integers(0, 4))
        else (
            draw(st.sampled_from(LEVEL_TIMES)),
            draw(st.sampled_from(LEVEL_TIMES)),
        )
    )

    def stamp(day: dt.date, clock: dt.time) -> str:
        off = draw(st.one_of(st.integers(-45, 45), st.sampled_from([-61, -60, -30, 0, 30, 60, 61])))
        moved = dt.datetime.combine(day, clock) + dt.timedelta(minutes=off)
        if draw(st.booleans()):
            return moved.strftime("%Y-%m-%dT%H:%M")
        # The same wall time given as an instant with an offset, or in UTC.
        aware = moved.replace(tzinfo=ZoneInfo(door["door_zone"]), fold=draw(st.integers(0, 1)))
        if draw(st.booleans()):
            return aware.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%MZ")
        return aware.isoformat(timespec="minutes")

    named = draw(st.sampled_from([None] * 6 + ["Guest 4pm-10am", "Fortnight", "Day 24h"]))
    return {
        "reservation_id": f"R{draw(st.integers(1, 30))}",
        "device_id": door["device_id"],
        "check_in": stamp(day, times[0]),
        "check_out": stamp(day + dt.timedelta(days=nights), times[1]),
        "guest_name": "Guest",
        "user_level": named,
    }


@property_settings(150)
@given(
    st.lists(stays(), min_size=1, max_size=10),
    st.one_of(st.just(60), st.integers(0, 60)),
    st.sampled_from([None, "Guest 4pm-10am", "Late 6pm-12pm"]),
)
def test_vectorised_rounding_matches_a_brute_force_reference(rows, tolerance, default):
    """Over random stays on every level of doors in five zones (DST days, half-hour offsets,
    times off the levels by up to 61 minutes, with and without offsets, any tolerance and
    default), the planner and the brute-force reference agree on every outcome and reason and
    on every planned value; and every planned window is its level's exact times, each end
    within the tolerance of the booking's instant."""
    config = Config(
        plan=PlanConfig(slot_tolerance_minutes=tolerance),
        user_levels=UserLevelDefaults(sites={"Site Pacific": default} if default else {}),
    )
    table = reservations(*rows)
    planned = plan_reservations(table, CATALOG, config, now=NOW)
    oracle = plan_rowwise(table.to_dicts(), CATALOG, config, NOW)
    levels = {(lv["device_id"], lv["level_name"]): lv for lv in CATALOG.levels.to_dicts()}
    for mine, theirs, row in zip(planned.to_dicts(), oracle, rows, strict=True):
        assert (mine["outcome"], mine["reason"]) == (theirs["outcome"], theirs["reason"]), row
        if mine["outcome"] != "planned":
            continue
        assert {k: mine[k] for k in theirs} == theirs, row
        level = levels[(mine["device_id"], mine["user_level_name"])]
        start = dt.datetime.fromisoformat(mine["starts_at"])
        end = dt.datetime.fromisoformat(mine["ends_at"])
        assert (start.time(), end.time()) == (level["level_check_in"], level["level_check_out"])
        if not level["is_24_hour"]:
            for given, made in ((row["check_in"], start), (row["check_out"], end)):
                assert abs(_instant(given, level["level_zone"]) - made) <= dt.timedelta(
                    minutes=tolerance
                ), row


def _instant(text: str, zone: str) -> dt.datetime:
    """A stay's text as an instant: its own offset, else the lock's wall time (fold 0)."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(zone))


# One door in New York with one guest level 4pm→10am, a 24-hour level, and one in Adelaide
# (+10:30 in summer) and Kolkata (+05:30), each with a guest level 3pm→11am; one whose guest
# level starts at 00:15, to round across midnight.
NY = "America/New_York"


def _lake(name: str, *levels: tuple[str, str, str]) -> dict[str, object]:
    """A door in New York whose hourly levels are ``(name, check-in, check-out)``."""
    made = [make_level(level, n, f"{i}:00", f"{o}:00") for n, (level, i, o) in enumerate(levels, 1)]
    return make_door(name.lower(), name, "Lake", NY, made)


EDGES = DeviceCatalog.from_payload(
    [
        make_door(
            "cabin",
            "Cabin",
            "Lake",
            NY,
            [
                make_level("Guest 4pm-10am", 1, f"16:00:00[{NY}]", f"10:00:00[{NY}]"),
                make_level("Day 24h", 2, f"12:00:00[{NY}]", f"12:00:00[{NY}]", is_24_hour=True),
            ],
        ),
        _lake(
            "Suite",
            ("Guest 4pm-10am", "16:00", "10:00"),
            ("Guest 3pm-11am", "15:00", "11:00"),
            ("Late 6pm-12pm", "18:00", "12:00"),
        ),
        _lake(
            "Studio", ("Guest 4pm-10am", "16:00", "10:00"), ("Guest 3:30pm-10am", "15:30", "10:00")
        ),
        _lake("Owl", ("Owl", "00:15", "11:00")),
        *(
            make_door(name.lower(), name, "Far", zone, [make_level("Guest", 1, "15:00", "11:00")])
            for name, zone in (("Adelaide", "Australia/Adelaide"), ("Kolkata", "Asia/Kolkata"))
        ),
    ],
    source="test",
)


def _stay(door: str, check_in: str, check_out: str, **more: str) -> dict[str, str]:
    return {
        "reservation_id": "R1",
        "device_id": door,
        "check_in": check_in,
        "check_out": check_out,
        **more,
    }


@pytest.mark.parametrize(
    ("check_in", "check_out", "reason", "message"),
    [
        (
            "15:01",
            "10:00",
            None,
            "check-in 15:01 → 16:00 (59 min later), check-out 10:00 as booked",
        ),
        (
            "15:00",
            "10:00",
            None,
            "check-in 15:00 → 16:00 (60 min later), check-out 10:00 as booked",
        ),
        (
            "14:59",
            "10:00",
            "no_matching_user_level",
            "61 min later at check-in and exact at check-out",
        ),
        (
            "16:59",
            "10:00",
            None,
            "check-in 16:59 → 16:00 (59 min earlier), check-out 10:00 as booked",
        ),
        (
            "17:00",
            "10:00",
            None,
            "check-in 17:00 → 16:00 (60 min earlier), check-out 10:00 as booked",
        ),
        (
            "17:01",
            "10:00",
            "no_matching_user_level",
            "61 min earlier at check-in and exact at check-out",
        ),
        (
            "16:00",
            "09:01",
            None,
            "check-in 16:00 as booked, check-out 09:01 → 10:00 (59 min later)",
        ),
        (
            "16:00",
            "09:00",
            None,
            "check-in 16:00 as booked, check-out 09:00 → 10:00 (60 min later)",
        ),
        (
            "16:00",
            "08:59",
            "no_matching_user_level",
            "exact at check-in and 61 min later at check-out",
        ),
        (
            "16:00",
            "10:59",
            None,
            "check-in 16:00 as booked, check-out 10:59 → 10:00 (59 min earlier)",
        ),
        (
            "16:00",
            "11:00",
            None,
            "check-in 16:00 as booked, check-out 11:00 → 10:00 (60 min earlier)",
        ),
        (
            "16:00",
            "11:01",
            "no_matching_user_level",
            "exact at check-in and 61 min earlier at check-out",
        ),
    ],
)
def test_rounding_edges_at_each_end(check_in, check_out, reason, message):
    """59 and 60 minutes off at either end, earlier or later, round to the level (60 is within,
    as Seam's "exceeds one hour" reads); 61 is no_matching_user_level saying how far each end
    is. A rounded row's window is the level's exact times and its message says how it moved."""
    (row,) = plan(EDGES, _stay("cabin", f"2027-02-10T{check_in}", f"2027-02-14T{check_out}"))
    assert row["reason"] == reason
    if reason is None:
        assert (row["starts_at"], row["ends_at"]) == (
            "2027-02-10T16:00:00-05:00",
            "2027-02-14T10:00:00-05:00",
        )
        assert row["message"] == f"rounded to user level Guest 4pm-10am: {message}"
    else:
        assert row["message"] == (
            f"no user level of door Cabin is within 60 min ([plan] slot_tolerance_minutes) of"
            f" {check_in}→{check_out} at both ends; the nearest, Guest 4pm-10am (16:00→10:00),"
            f" is {message}; its levels: Guest 4pm-10am (prefix 1, 16:00→10:00); Day 24h"
            " (prefix 2, 12:00→12:00, 24-hour)"
        )


@pytest.mark.parametrize(
    ("door", "check_in", "check_out", "level"),
    [
        ("suite", "15:50", "10:10", "Guest 4pm-10am"),  # farther end 10 against 50
        ("suite", "15:20", "10:40", "Guest 3pm-11am"),  # 20 against 40
        ("suite", "16:40", "10:50", "Guest 4pm-10am"),  # 50; the others beyond the hour
        ("studio", "15:40", "09:10", "Guest 3:30pm-10am"),  # farther ends equal: sums 60 < 70
    ],
)
def test_the_nearest_level_wins(door, check_in, check_out, level):
    """Of the levels within the tolerance, the one whose farther end is nearest wins, then the
    one whose two ends together are nearest."""
    (row,) = plan(EDGES, _stay(door, f"2027-02-10T{check_in}", f"2027-02-14T{check_out}"))
    assert (row["outcome"], row["user_level_name"]) == ("planned", level)


def test_levels_equally_near_are_ambiguous_unless_the_default_is_one_of_them():
    """15:30→10:30 is 30 minutes from both 4pm→10am and 3pm→11am: ambiguous, listing both;
    a default level for the door (or its site) among them settles it, one that isn't doesn't."""
    stay = _stay("suite", "2027-02-10T15:30", "2027-02-14T10:30")
    (row,) = plan(EDGES, stay)
    assert (row["reason"], row["message"]) == (
        "ambiguous_user_level",
        "door Suite has 2 user levels equally near 15:30→10:30 (Guest 4pm-10am, Guest"
        " 3pm-11am); name one in user_level or set a default for the door or its site"
        " ([user_levels.*])",
    )
    by_door = Config(user_levels=UserLevelDefaults(doors={"Suite": "Guest 3pm-11am"}))
    by_site = Config(user_levels=UserLevelDefaults(sites={"Lake": "guest 4PM-10am"}))
    elsewhere = Config(user_levels=UserLevelDefaults(doors={"Suite": "Late 6pm-12pm"}))
    assert plan(EDGES, stay, config=by_door)[0]["user_level_name"] == "Guest 3pm-11am"
    assert plan(EDGES, stay, config=by_site)[0]["user_level_name"] == "Guest 4pm-10am"
    assert plan(EDGES, stay, config=elsewhere)[0]["reason"] == "ambiguous_user_level"


def test_a_named_level_is_rounded_to_within_the_tolerance():
    """A row naming a level takes it, rounded, whatever other level is as near; beyond the
    tolerance it is user_level_times_mismatch, saying how far each end is."""
    near = _stay("suite", "2027-02-10T15:30", "2027-02-14T10:30", user_level="Guest 4pm-10am")
    far = {**near, "check_in": "2027-02-10T14:00"}
    rounded, refused = plan(EDGES, near, {**far, "reservation_id": "R2"})
    assert (rounded["outcome"], rounded["starts_at"], rounded["message"]) == (
        "planned",
        "2027-02-10T16:00:00-05:00",
        "rounded to user level Guest 4pm-10am: check-in 15:30 → 16:00 (30 min later),"
        " check-out 10:30 → 10:00 (30 min earlier)",
    )
    assert (refused["reason"], refused["message"]) == (
        "user_level_times_mismatch",
        "user level Guest 4pm-10am runs 16:00→10:00 but the row says 14:00→10:30: the level is"
        " 120 min later at check-in and 30 min earlier at check-out, more than the 60 min"
        " ([plan] slot_tolerance_minutes) a booking may be rounded by",
    )


def test_a_time_given_in_utc_is_rounded_in_the_locks_zone():
    """20:45Z is 15:45 on a New York lock in February: rounded from there, and said so in the
    lock's time."""
    (row,) = plan(EDGES, _stay("cabin", "2027-02-10T20:45Z", "2027-02-14T15:15Z"))
    assert (row["starts_at"], row["ends_at"], row["message"]) == (
        "2027-02-10T16:00:00-05:00",
        "2027-02-14T10:00:00-05:00",
        "rounded to user level Guest 4pm-10am: check-in 15:45 → 16:00 (15 min later),"
        " check-out 10:15 → 10:00 (15 min earlier)",
    )


@pytest.mark.parametrize(
    ("door", "check_in", "starts_at", "moved"),
    [
        (
            "adelaide",
            "2027-01-10T04:00Z",
            "2027-01-10T15:00:00+10:30",
            "14:30 → 15:00 (30 min later)",
        ),
        (
            "kolkata",
            "2027-01-10T09:45Z",
            "2027-01-10T15:00:00+05:30",
            "15:15 → 15:00 (15 min earlier)",
        ),
    ],
)
def test_half_hour_zones(door, check_in, starts_at, moved):
    """Zones half an hour off UTC (Adelaide in summer, Kolkata): an instant in UTC becomes the
    lock's time, is rounded there, and the window keeps the zone's own offset."""
    (row,) = plan(EDGES, _stay(door, check_in, "2027-01-14T11:00"))
    assert (row["starts_at"], row["message"]) == (
        starts_at,
        f"rounded to user level Guest: check-in {moved}, check-out 11:00 as booked",
    )


def test_rounding_across_midnight_moves_the_date():
    """A 23:50 check-in is 25 minutes from a 00:15 level the next day: the window starts then."""
    (row,) = plan(EDGES, _stay("owl", "2027-02-09T23:50", "2027-02-14T11:00"))
    assert (row["starts_at"], row["message"]) == (
        "2027-02-10T00:15:00-05:00",
        "rounded to user level Owl: check-in 23:50 → 00:15 the next day (25 min later),"
        " check-out 11:00 as booked",
    )


def test_distances_on_dst_days_are_real_time():
    """On the night the clocks go forward, 01:45 → 03:00 is 15 minutes (wall clocks say 75):
    rounded, and said to cross the change. On the night they go back, 01:50 (the first time,
    as a local time means) → 01:30 is 20 minutes; 09:50Z, the second 01:50, is 80: refused."""
    forward, back, second = plan(
        CATALOG,
        _stay("door-0", "2027-03-13T02:10", "2027-03-14T01:45"),
        {**_stay("door-0", "2027-11-06T23:30", "2027-11-07T01:50"), "reservation_id": "R2"},
        {**_stay("door-0", "2027-11-06T23:30", "2027-11-07T09:50Z"), "reservation_id": "R3"},
    )
    assert (forward["ends_at"], forward["message"]) == (
        "2027-03-14T03:00:00-07:00",
        "rounded to user level Early 2am-3am: check-in 02:10 → 02:00 (10 min earlier),"
        " check-out 01:45 → 03:00 (15 min later, across the clock change)",
    )
    assert (back["ends_at"], back["message"]) == (
        "2027-11-07T01:30:00-07:00",
        "rounded to user level Night 11:30pm-1:30am: check-in 23:30 as booked, check-out"
        " 01:50 → 01:30 (20 min earlier)",
    )
    assert second["reason"] == "no_matching_user_level"
    assert "80 min earlier at check-out" in second["message"]


def test_tolerance_zero_means_exact_times_only():
    """slot_tolerance_minutes = 0: a level's exact times plan, 15 minutes off is refused with
    the nearest level named."""
    config = Config(plan=PlanConfig(slot_tolerance_minutes=0))
    exact, off = plan(
        EDGES,
        _stay("cabin", "2027-02-10T16:00", "2027-02-14T10:00"),
        {**_stay("cabin", "2027-02-10T15:45", "2027-02-14T10:00"), "reservation_id": "R2"},
        config=config,
    )
    assert (exact["outcome"], exact["message"]) == ("planned", None)
    assert off["message"].startswith(
        "no user level of door Cabin is within 0 min ([plan] slot_tolerance_minutes) of"
        " 15:45→10:00 at both ends; the nearest, Guest 4pm-10am (16:00→10:00), is 15 min later"
        " at check-in and exact at check-out;"
    )


def test_daily_bound_levels_keep_their_exact_rules():
    """A 24-hour level takes the rows with its times (1d rounding), and rounds no other."""
    exact, near = plan(
        EDGES,
        _stay("cabin", "2027-02-10T12:00", "2027-02-14T12:00"),
        {**_stay("cabin", "2027-02-10T12:30", "2027-02-14T12:30"), "reservation_id": "R2"},
    )
    assert (exact["user_level_name"], exact["max_time_rounding"]) == ("Day 24h", "1d")
    assert near["reason"] == "no_matching_user_level"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (
            "61",
            "61 is over 60: Seam rounds a booking to a user level by at most one hour and"
            " refuses creates that need more; give 0 to 60",
        ),
        ("-5", "-5 is negative: give 0 (exact times only) up to 60"),
        ("true", "Input should be a valid integer"),
    ],
)
def test_a_tolerance_seam_would_refuse_is_refused_at_start(tmp_path, value, problem):
    """Over 60 minutes (or negative, or not a number) is a config error, exit 2, one line."""
    path = tmp_path / "pipeline.toml"
    path.write_text(f"[plan]\nslot_tolerance_minutes = {value}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(raised.value) == f"config file {path}: plan.slot_tolerance_minutes: {problem}"
    assert raised.value.exit_code == 2


def test_the_readmes_worked_example(sandbox_catalog):
    """The guide's "Rounding to a user level": Cabin 1's bookings as its example tells them."""
    cabin = {"reservation_id": "R1", "site_name": "Lakeside Lodge", "door_name": "Cabin 1"}
    rounded, in_utc, tied, beyond = plan(
        sandbox_catalog,
        {**cabin, "check_in": "2027-02-10T15:45", "check_out": "2027-02-14T10:15"},
        {
            **cabin,
            "reservation_id": "R2",
            "check_in": "2027-02-10T20:45Z",
            "check_out": "2027-02-14T10:15",
        },
        {
            **cabin,
            "reservation_id": "R3",
            "check_in": "2027-02-10T17:00",
            "check_out": "2027-02-14T11:30",
        },
        {
            **cabin,
            "reservation_id": "R4",
            "check_in": "2027-02-10T14:59",
            "check_out": "2027-02-14T11:00",
        },
    )
    assert (rounded["starts_at"], rounded["ends_at"], rounded["message"]) == (
        "2027-02-10T16:00:00-05:00",
        "2027-02-14T11:00:00-05:00",
        "rounded to user level Guest 4pm-11am: check-in 15:45 → 16:00 (15 min later),"
        " check-out 10:15 → 11:00 (45 min later)",
    )
    assert (in_utc["starts_at"], in_utc["message"]) == (rounded["starts_at"], rounded["message"])
    assert tied["reason"] == "ambiguous_user_level"
    assert beyond["message"].startswith(
        "no user level of door Cabin 1 is within 60 min ([plan] slot_tolerance_minutes) of"
        " 14:59→11:00 at both ends; the nearest, Guest 4pm-11am (16:00→11:00), is 61 min later"
        " at check-in and exact at check-out; its levels: "
    )
