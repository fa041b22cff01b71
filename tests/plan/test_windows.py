"""The lock-local window: a table of cases that can be checked by hand with a calendar."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.catalog.doors import DeviceCatalog
from tests.generate import make_door, make_level
from tests.plan.helpers import plan

LA, BERLIN, LEGACY = "door-la", "door-berlin", "door-legacy"
PAST_NOW = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def catalog() -> DeviceCatalog:
    la = "[America/Los_Angeles]"
    return DeviceCatalog.from_payload(
        [
            make_door(
                LA,
                "LA Room",
                "LA",
                "America/Los_Angeles",
                [
                    make_level("Guest", 1, f"15:00:00{la}", f"11:00:00{la}"),
                    make_level("RCI", 2, f"07:00:00{la}", f"19:00:00{la}"),
                    make_level("Day", 3, f"00:00:00{la}", f"23:59:00{la}", is_24_hour=True),
                    make_level("Early", 4, f"02:30:00{la}", f"11:00:00{la}"),
                    make_level("Night", 5, f"22:00:00{la}", f"01:30:00{la}"),
                ],
            ),
            make_door(
                BERLIN,
                "Zimmer",
                "Berlin",
                "Europe/Berlin",
                [
                    make_level("Gast", 1, "15:00:00[Europe/Berlin]", "11:00:00[Europe/Berlin]"),
                    make_level(
                        "Tag", 3, "14:00:00+01:00[Europe/Berlin]", "14:00:00+01:00", is_24_hour=True
                    ),
                ],
            ),
            make_door(
                LEGACY,
                "Legacy Room",
                "Legacy",
                None,
                [make_level("Guest 3:30pm-10:30am", 1, "15:30:00[PST8PDT]", "10:30:00[PST8PDT]")],
            ),
        ],
        source="test",
    )


# door, level, check_in, check_out, starts_at, ends_at, reason
CASES = [
    # The worked example: DST starts on 2027-03-14 in Los Angeles, mid-stay.
    (
        LA,
        "Guest",
        "2027-03-12",
        "2027-03-16",
        "2027-03-12T15:00:00-08:00",
        "2027-03-16T11:00:00-07:00",
        None,
    ),
    # DST ends on 2027-11-07 in Los Angeles.
    (
        LA,
        "Guest",
        "2027-11-05",
        "2027-11-09",
        "2027-11-05T15:00:00-07:00",
        "2027-11-09T11:00:00-08:00",
        None,
    ),
    # Berlin: summer time starts 2027-03-28, ends 2027-10-31.
    (
        BERLIN,
        "Gast",
        "2027-03-26",
        "2027-03-30",
        "2027-03-26T15:00:00+01:00",
        "2027-03-30T11:00:00+02:00",
        None,
    ),
    (
        BERLIN,
        "Gast",
        "2027-10-29",
        "2027-11-02",
        "2027-10-29T15:00:00+02:00",
        "2027-11-02T11:00:00+01:00",
        None,
    ),
    # A legacy zone name in the level's time strings (the older product page's PST8PDT).
    (
        LEGACY,
        "Guest 3:30pm-10:30am",
        "2027-03-12",
        "2027-03-16",
        "2027-03-12T15:30:00-08:00",
        "2027-03-16T10:30:00-07:00",
        None,
    ),
    # 31 days: 31 nights on a 15:00→11:00 level is 30 d 20 h (fits), 32 nights is not.
    (
        LA,
        "Guest",
        "2027-01-01",
        "2027-02-01",
        "2027-01-01T15:00:00-08:00",
        "2027-02-01T11:00:00-08:00",
        None,
    ),
    (
        LA,
        "Guest",
        "2027-01-01",
        "2027-02-02",
        "2027-01-01T15:00:00-08:00",
        "2027-02-02T11:00:00-08:00",
        "duration_exceeds_31_days",
    ),
    # 24-hour level 14:00→14:00: exactly 31 days fits, 32 days doesn't.
    (
        BERLIN,
        "Tag",
        "2027-01-01",
        "2027-02-01",
        "2027-01-01T14:00:00+01:00",
        "2027-02-01T14:00:00+01:00",
        None,
    ),
    (
        BERLIN,
        "Tag",
        "2027-01-01",
        "2027-02-02",
        "2027-01-01T14:00:00+01:00",
        "2027-02-02T14:00:00+01:00",
        "duration_exceeds_31_days",
    ),
    # 02:30 on 2027-03-14 does not exist in Los Angeles.
    (
        LA,
        "Early",
        "2027-03-14",
        "2027-03-16",
        None,
        "2027-03-16T11:00:00-07:00",
        "nonexistent_local_time",
    ),
    # 01:30 on 2027-11-07 happens twice in Los Angeles: the earlier (PDT) instant is used.
    (
        LA,
        "Night",
        "2027-11-05",
        "2027-11-07",
        "2027-11-05T22:00:00-07:00",
        "2027-11-07T01:30:00-07:00",
        None,
    ),
    # A check-out date before the check-in date.
    (
        LA,
        "Guest",
        "2027-03-16",
        "2027-03-12",
        "2027-03-16T15:00:00-07:00",
        "2027-03-12T11:00:00-08:00",
        "invalid_window",
    ),
]


@pytest.mark.parametrize(
    ("door", "level", "check_in", "check_out", "starts_at", "ends_at", "reason"), CASES
)
def test_window(catalog, door, level, check_in, check_out, starts_at, ends_at, reason):
    """The window is the stay's dates at the level's times, with each instant's own offset."""
    (row,) = plan(
        catalog,
        {
            "reservation_id": "R",
            "device_id": door,
            "check_in": check_in,
            "check_out": check_out,
            "user_level": level,
        },
    )
    assert (row["starts_at"], row["ends_at"], row["reason"]) == (starts_at, ends_at, reason)
    assert row["outcome"] == ("planned" if reason is None else "rejected")


def test_product_page_hourly_example(catalog):
    """The newer product page's hourly example comes out exactly as printed there."""
    (row,) = plan(
        catalog,
        {
            "reservation_id": "R",
            "device_id": LA,
            "check_in": "2024-09-10",
            "check_out": "2024-09-15",
            "user_level": "RCI",
        },
        now=PAST_NOW,
    )
    assert (row["starts_at"], row["ends_at"]) == (
        "2024-09-10T07:00:00-07:00",
        "2024-09-15T19:00:00-07:00",
    )
    assert (row["starts_at_utc"], row["ends_at_utc"]) == (
        "2024-09-10T14:00:00Z",
        "2024-09-16T02:00:00Z",
    )
    assert row["max_time_rounding"] == "1h"


def test_product_page_daily_example(catalog):
    """The newer product page's daily-bound example: 00:00 → 23:59, rounding 1d."""
    (row,) = plan(
        catalog,
        {
            "reservation_id": "R",
            "device_id": LA,
            "check_in": "2024-09-16",
            "check_out": "2024-09-18",
            "user_level": "Day",
        },
        now=PAST_NOW,
    )
    assert (row["starts_at"], row["ends_at"]) == (
        "2024-09-16T00:00:00-07:00",
        "2024-09-18T23:59:00-07:00",
    )
    assert (row["starts_at_utc"], row["ends_at_utc"]) == (
        "2024-09-16T07:00:00Z",
        "2024-09-19T06:59:00Z",
    )
    assert row["max_time_rounding"] == "1d"


def test_values_with_offsets_are_converted_to_the_lock_zone(catalog):
    """23:00Z is 15:00 PST and 18:00Z on 03-16 is 11:00 PDT, so the Guest level matches."""
    (row,) = plan(
        catalog,
        {
            "reservation_id": "R",
            "device_id": LA,
            "check_in": "2027-03-12T23:00:00Z",
            "check_out": "2027-03-16T18:00:00+00:00",
        },
    )
    assert (row["user_level_name"], row["starts_at"], row["ends_at"]) == (
        "Guest",
        "2027-03-12T15:00:00-08:00",
        "2027-03-16T11:00:00-07:00",
    )


def test_past_window_is_rejected(catalog):
    """A window that has ended can't be created."""
    (row,) = plan(
        catalog,
        {
            "reservation_id": "R",
            "device_id": LA,
            "check_in": "2026-11-01",
            "check_out": "2026-11-03",
            "user_level": "Guest",
        },
    )
    assert row["reason"] == "in_the_past"
