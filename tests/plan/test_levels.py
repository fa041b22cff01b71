"""Choosing each reservation's user level: by its times, a configured default, and the message
when nothing matches."""

from __future__ import annotations

from pipeline.common.settings import Config, UserLevelDefaults
from tests.plan.helpers import HV, STAY, plan


def test_no_matching_level_lists_the_doors_levels(sandbox_catalog):
    """The message for an unmatched time pair lists what the door offers."""
    (result,) = plan(
        sandbox_catalog,
        {
            "reservation_id": "R1",
            **HV,
            "door_name": "Room 101",
            "check_in": "2027-03-12T09:00",
            "check_out": "2027-03-16T09:30",
        },
    )
    assert "Guest 3:30pm-10:30am (prefix 1, 15:30→10:30)" in result["message"]
    assert "Day Pass 24h (prefix 3, 00:00→23:59, 24-hour)" in result["message"]


def test_equal_times_pick_the_24_hour_level(sandbox_catalog):
    """A row whose check-in and check-out times are equal asks for a daily-bound level."""
    (result,) = plan(
        sandbox_catalog,
        {
            "reservation_id": "R1",
            "door_name": "Zimmer 2",
            "check_in": "2027-03-20T12:00",
            "check_out": "2027-03-22T12:00",
        },
    )
    assert (result["user_level_name"], result["max_time_rounding"]) == ("Tagesgast 24h", "1d")
    assert (result["starts_at"], result["ends_at"]) == (
        "2027-03-20T12:00:00+01:00",
        "2027-03-22T12:00:00+01:00",
    )


def test_config_defaults_pick_the_level_for_dates_only_rows(sandbox_catalog):
    """A door default wins over a site default; both only apply to dates-only rows."""
    config = Config(
        user_levels=UserLevelDefaults(
            sites={"harbor view": "Guest RCI D 7am-7pm"}, doors={"ROOM 102": "Guest 3:30pm-10:30am"}
        )
    )
    rows = plan(
        sandbox_catalog,
        {"reservation_id": "A", **HV, **STAY, "door_name": "Room 101"},
        {"reservation_id": "B", **HV, **STAY, "door_name": "Room 102"},
        config=config,
    )
    assert [r["user_level_name"] for r in rows] == ["Guest RCI D 7am-7pm", "Guest 3:30pm-10:30am"]


def test_configured_default_missing_on_door_is_rejected(sandbox_catalog):
    """A default that names a level the door lacks is a clear rejection, not a guess."""
    config = Config(user_levels=UserLevelDefaults(sites={"Harbor View": "Nope"}))
    (result,) = plan(
        sandbox_catalog,
        {"reservation_id": "A", **HV, **STAY, "door_name": "Room 101"},
        config=config,
    )
    assert result["reason"] == "unknown_user_level"
    assert "configured default" in result["message"]
