"""``[doors.aliases]`` in door matching, and the closest names suggested for a door or user
level that matches nothing."""

from __future__ import annotations

from pipeline.common.settings import Config, DoorsConfig, UserLevelDefaults
from tests.plan.helpers import HV, STAY, plan

CABIN_1 = "9717fa16-ebda-512b-b038-4e4079b39b52"  # Lakeside Lodge's Cabin 1 in the sample
ALIASES = Config(
    doors=DoorsConfig(aliases={"Unit 101": "Room 101", "Lodge Cabin": CABIN_1}),
    user_levels=UserLevelDefaults(
        sites={"Harbor View": "Guest 3:30pm-10:30am", "Lakeside Lodge": "Guest 4pm-11am"}
    ),
)


def test_an_alias_names_the_door_and_so_its_window(sandbox_catalog):
    """An alias (any case and spacing) gives the door, its site's default level and window."""
    (row,) = plan(
        sandbox_catalog,
        {"reservation_id": "R1", **HV, **STAY, "door_name": "unit  101"},
        config=ALIASES,
    )
    assert (row["outcome"], row["door_name"], row["site_name"]) == (
        "planned",
        "Room 101",
        "Harbor View",
    )
    assert (row["user_level_name"], row["starts_at"], row["ends_at"]) == (
        "Guest 3:30pm-10:30am",
        "2027-03-12T15:30:00-08:00",
        "2027-03-16T10:30:00-07:00",
    )


def test_site_name_still_tells_aliased_doors_apart(sandbox_catalog):
    """An alias's site picks among doors of the target's name; without one it's ambiguous."""
    lodge, anywhere = plan(
        sandbox_catalog,
        {"reservation_id": "R1", "site_name": "Lakeside Lodge", **STAY, "door_name": "Unit 101"},
        {"reservation_id": "R2", **STAY, "door_name": "Unit 101"},
        config=ALIASES,
    )
    assert (lodge["device_id"], lodge["starts_at"]) == (
        "9c276189-cef4-5ad0-8507-1f18214bd00f",
        "2027-03-12T16:00:00-05:00",
    )
    assert anywhere["reason"] == "ambiguous_device"


def test_an_alias_to_a_device_id_names_that_door(sandbox_catalog):
    """An alias to a device_id matches that door, unless the row names another site."""
    cabin, elsewhere = plan(
        sandbox_catalog,
        {"reservation_id": "R1", **STAY, "door_name": "Lodge Cabin"},
        {"reservation_id": "R2", **HV, **STAY, "door_name": "Lodge Cabin"},
        config=ALIASES,
    )
    assert (cabin["door_name"], cabin["device_id"], cabin["starts_at"]) == (
        "Cabin 1",
        CABIN_1,
        "2027-03-12T16:00:00-05:00",
    )
    assert elsewhere["message"] == (
        f"no dormakaba Oracode door is named Lodge Cabin ([doors.aliases]: {CABIN_1}) at site"
        " Harbor View (see oracode-provision doors, or map the name in [doors.aliases])"
    )


def test_unknown_door_messages_suggest_the_closest_names(sandbox_catalog):
    """A misspelt door or site suggests the closest; every unknown door names the doors list."""
    door, site, device = plan(
        sandbox_catalog,
        {"reservation_id": "R1", **HV, **STAY, "door_name": "Room 1O1"},
        {"reservation_id": "R2", "site_name": "Harbour View", **STAY, "door_name": "Room 101"},
        {"reservation_id": "R3", **STAY, "device_id": "no-such-door"},
    )
    assert door["message"] == (
        'no dormakaba Oracode door is named Room 1O1 at site Harbor View; did you mean "Room'
        ' 101"? (see oracode-provision doors, or map the name in [doors.aliases])'
    )
    assert site["message"] == (
        "no dormakaba Oracode door is named Room 101 at site Harbour View; did you mean site"
        ' "Harbor View"? (see oracode-provision doors, or map the name in [doors.aliases])'
    )
    assert device["message"] == (
        "no dormakaba Oracode door has device_id no-such-door (see oracode-provision doors)"
    )


def test_unknown_level_messages_suggest_the_doors_closest_level(sandbox_catalog):
    """A misspelt level, named or a configured default, suggests the door's closest one."""
    config = Config(user_levels=UserLevelDefaults(doors={"Zimmer 3": "Gast 15-11"}))
    named, default = plan(
        sandbox_catalog,
        {"reservation_id": "R1", **HV, **STAY, "door_name": "Room 102", "user_level": "day pas"},
        {"reservation_id": "R2", **STAY, "door_name": "Zimmer 3"},
        config=config,
    )
    assert named["message"] == (
        'door Room 102 has no user level day pas (did you mean "Day Pass 24h"?); its levels:'
        " Guest 3:30pm-10:30am (prefix 1, 15:30→10:30); Guest RCI D 7am-7pm (prefix 2,"
        " 07:00→19:00); Day Pass 24h (prefix 3, 00:00→23:59, 24-hour); Two Week Stay (prefix"
        " 4, 15:30→10:30, biweekly); Housekeeping One-Shot (prefix 8, 08:00→17:00, one-shot);"
        " Owner Master (prefix 9, 00:00→00:00, master) (see oracode-provision doors)"
    )
    assert default["message"] == (
        "the configured default user level Gast 15-11 is not on door Zimmer 3 (did you mean"
        ' "Gast 15-11 Uhr"?); its levels: Gast 15-11 Uhr (prefix 1, 15:00→11:00); Tagesgast'
        " 24h (prefix 3, 12:00→12:00, 24-hour); Zwei Wochen (prefix 4, 15:00→11:00,"
        " biweekly); Reinigung einmalig (prefix 8, 09:00→12:00, one-shot) (see"
        " oracode-provision doors)"
    )
