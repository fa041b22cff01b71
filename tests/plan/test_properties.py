"""Properties of planning over generated reservations, checked against an independent oracle."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from pipeline.catalog.doors import read_device_file
from pipeline.common.settings import Config, UserLevelDefaults
from pipeline.plan.planner import PLAN_COLUMNS, plan_reservations
from tests.paths import SANDBOX_DEVICES
from tests.plan.helpers import NOW, reservations
from tests.properties import property_settings
from tests.rowwise import plan_rowwise

CATALOG = read_device_file(SANDBOX_DEVICES)
DOORS = CATALOG.doors.to_dicts()
LEVELS = CATALOG.levels.to_dicts()
CONFIG = Config(
    user_levels=UserLevelDefaults(sites={"Lakeside Lodge": "Guest 4pm-11am"}),
    # Blank fields at either end and in the middle, so the name's folding and trimming count.
    name_template="{guest_name} {reservation_id} [{tag}] {guest_name}",
)
# Every value of a planned row the oracle must agree on (the rest are the input's own, or the
# outcome and reason, compared on every row).
INPUT_OR_OUTCOME = {"reservation_id", "outcome", "reason", "message", "source_file", "source_line"}
PLANNED_VALUES = [column for column in PLAN_COLUMNS if column not in INPUT_OR_OUTCOME]
TIMES = sorted({lv["level_check_in"] for lv in LEVELS} | {lv["level_check_out"] for lv in LEVELS})


@st.composite
def reservation_rows(draw: st.DrawFn) -> dict[str, str | None]:
    door = draw(st.sampled_from(DOORS))
    by = draw(st.sampled_from(["device_id", "name", "name+site", "unknown"]))
    first = draw(st.dates(dt.date(2026, 10, 1), dt.date(2028, 1, 31)))
    nights = draw(st.integers(-1, 40))
    timed = draw(st.booleans())
    sep = draw(st.sampled_from(["T", " "]))

    def stamp(day: dt.date) -> str:
        if not timed:
            return day.isoformat()
        clock = draw(st.sampled_from([*TIMES, dt.time(2, 30), dt.time(9, 0)]))
        return f"{day.isoformat()}{sep}{clock.strftime('%H:%M')}"

    level_names = [lv["level_name"] for lv in LEVELS if lv["device_id"] == door["device_id"]]
    return {
        "reservation_id": draw(st.sampled_from(["R1", "R2", "R3", "R4", "R5", "R6", None])),
        "device_id": door["device_id"] if by == "device_id" else None,
        "door_name": None
        if by == "device_id"
        else ("Nowhere" if by == "unknown" else door["door_name"]),
        "site_name": door["site_name"] if by == "name+site" else None,
        "check_in": stamp(first),
        "check_out": stamp(first + dt.timedelta(days=nights)),
        "guest_name": draw(st.sampled_from(["Guest", None, "", " Ana  Lee ", "Zoë\tPark"])),
        "user_level": draw(st.one_of(st.none(), st.sampled_from([*level_names, "3", "bogus"]))),
    }


@property_settings(150)
@given(st.lists(reservation_rows(), min_size=1, max_size=12))
def test_vectorised_plan_matches_row_by_row_oracle(rows):
    """The Polars planner and the plain-Python oracle agree on every outcome and reason, and on
    every value of a planned row: door, level, window (local and UTC), rounding, tag, name."""
    table = reservations(*rows)
    planned = plan_reservations(table, CATALOG, CONFIG, now=NOW)
    oracle = plan_rowwise(table.to_dicts(), CATALOG, CONFIG, NOW)
    for mine, theirs, row in zip(planned.to_dicts(), oracle, rows, strict=True):
        assert (mine["outcome"], mine["reason"]) == (theirs["outcome"], theirs["reason"]), row
        if mine["outcome"] == "planned":
            assert {k: mine[k] for k in theirs} == theirs, row
            assert set(theirs) >= set(PLANNED_VALUES), row


@property_settings(100)
@given(st.lists(reservation_rows(), min_size=1, max_size=12), st.integers(1, 6))
def test_planning_in_slices_changes_nothing(rows, slice_rows):
    """Slices planned side by side give exactly the output of the input planned whole,
    duplicates across slices included (they are settled before the input is sliced)."""
    whole = plan_reservations(reservations(*rows), CATALOG, CONFIG, now=NOW)
    sliced = plan_reservations(reservations(*rows), CATALOG, CONFIG, now=NOW, slice_rows=slice_rows)
    assert sliced.schema == whole.schema
    assert sliced.equals(whole)


@property_settings(150)
@given(st.lists(reservation_rows(), min_size=1, max_size=12))
def test_planned_windows_are_lock_local_exact_and_at_most_31_days(rows):
    """Every planned window: right offset for its zone, the level's exact times, ≤ 31 days."""
    planned = plan_reservations(reservations(*rows), CATALOG, CONFIG, now=NOW).filter(
        pl.col("outcome") == "planned"
    )
    levels = {(lv["device_id"], lv["level_name"]): lv for lv in LEVELS}
    for row in planned.iter_rows(named=True):
        level = levels[(row["device_id"], row["user_level_name"])]
        zone = ZoneInfo(level["level_zone"])
        start = dt.datetime.fromisoformat(row["starts_at"])
        end = dt.datetime.fromisoformat(row["ends_at"])
        for instant in (start, end):
            assert instant.utcoffset() == instant.astimezone(zone).utcoffset()
        assert start.time() == level["level_check_in"]
        assert end.time() == level["level_check_out"]
        assert end.replace(tzinfo=None) - start.replace(tzinfo=None) <= dt.timedelta(days=31)
        assert start.astimezone(dt.UTC) < end.astimezone(dt.UTC)
        assert row["max_time_rounding"] == ("1d" if level["is_24_hour"] else "1h")
        assert row["idempotency_tag"] in row["name"]
