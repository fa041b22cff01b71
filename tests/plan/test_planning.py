"""Planning decisions per row: door, rules, duplicates, tags and names (user levels in
test_levels.py)."""

from __future__ import annotations

import pytest

from pipeline.common.settings import Config
from pipeline.plan.planner import plan_reservations
from tests.plan.helpers import HV, NOW, STAY, plan, reservations

# Each row: what the input says, then the reason it must get (None: planned).
REASON_CASES = [
    ({**HV, **STAY, "door_name": "Room 101", "user_level": "guest 3:30PM-10:30am"}, None),
    ({**HV, **STAY, "door_name": "room  101", "user_level": "1"}, None),
    ({**STAY, "door_name": "Room 101"}, "ambiguous_device"),
    ({**HV, **STAY, "door_name": "Room 999"}, "unknown_device"),
    ({**STAY, "device_id": "00000000-0000-0000-0000-000000000000"}, "unknown_device"),
    ({**STAY, "door_name": "Haupteingang"}, "offline_codes_not_supported"),
    ({**HV, **STAY, "door_name": "Room 101", "user_level": "Penthouse"}, "unknown_user_level"),
    (
        {**HV, **STAY, "door_name": "Room 101", "user_level": "Owner Master"},
        "master_user_level_unsupported",
    ),
    ({**HV, **STAY, "door_name": "Room 101", "user_level": "8"}, "one_time_use_unsupported"),
    ({**HV, **STAY, "door_name": "Room 101"}, "ambiguous_user_level"),
    (
        {
            **HV,
            "door_name": "Room 101",
            "check_in": "2027-03-12T09:00",
            "check_out": "2027-03-16T09:30",
        },
        "no_matching_user_level",
    ),
    (
        {
            **HV,
            "door_name": "Room 101",
            "check_in": "2027-03-12T07:00",
            "check_out": "2027-03-16T19:00",
        },
        None,
    ),
    (
        {
            **HV,
            "door_name": "Room 101",
            "check_in": "2027-03-12T07:00",
            "check_out": "2027-03-16T19:00",
            "user_level": "Guest 3:30pm-10:30am",
        },
        "user_level_times_mismatch",
    ),
    (
        {**HV, "door_name": "Room 101", "check_in": "2027-03-12T07:00", "check_out": "2027-03-16"},
        "invalid_row",
    ),
    (
        {**HV, "door_name": "Room 101", "check_in": "12/03/2027", "check_out": "2027-03-16"},
        "invalid_row",
    ),
    (
        {**HV, "door_name": "Room 101", "check_in": "2027-02-29", "check_out": "2027-03-16"},
        "invalid_row",
    ),
    ({**HV, "door_name": "Room 101", "check_out": "2027-03-16"}, "invalid_row"),
    ({**STAY}, "invalid_row"),
    (
        {
            **HV,
            "door_name": "Room 101",
            "check_in": "2027-03-01",
            "check_out": "2027-03-16",
            "user_level": "Two Week Stay",
        },
        "biweekly_needs_14_days",
    ),
    (
        {
            **HV,
            "door_name": "Room 101",
            "check_in": "2027-03-01",
            "check_out": "2027-03-15",
            "user_level": "Two Week Stay",
        },
        None,
    ),
]


@pytest.mark.parametrize(("row", "reason"), REASON_CASES)
def test_reason(sandbox_catalog, row, reason):
    """Each row gets exactly the reason the table gives, and a message when rejected."""
    (result,) = plan(sandbox_catalog, {"reservation_id": "R1", **row})
    assert result["reason"] == reason
    assert result["outcome"] == ("planned" if reason is None else "rejected")
    assert (result["message"] is None) == (reason is None)


@pytest.mark.parametrize("slice_rows", [1, 4, 7])
def test_rows_planned_in_slices_get_the_same_reasons(sandbox_catalog, slice_rows):
    """All the cases in one input, planned in two slices side by side: each row still gets its
    own reason, and the whole output equals planning the input in one piece."""
    rows = [{"reservation_id": f"R{n}", **row} for n, (row, _) in enumerate(REASON_CASES)]
    whole = plan_reservations(reservations(*rows), sandbox_catalog, Config(), now=NOW)
    sliced = plan_reservations(
        reservations(*rows), sandbox_catalog, Config(), now=NOW, slice_rows=slice_rows
    )
    assert sliced["reason"].to_list() == [reason for _, reason in REASON_CASES]
    assert sliced.equals(whole)
    assert sliced.schema == whole.schema


def test_empty_reservation_id_names_the_column(sandbox_catalog):
    """A bad value's message names the column it is in."""
    (result,) = plan(sandbox_catalog, {**HV, **STAY, "door_name": "Room 101"})
    assert result["reason"] == "invalid_row"
    assert "reservation_id" in result["message"]


def test_identical_duplicates_are_planned_once(sandbox_catalog):
    """The same reservation twice with the same content: the first is planned, the copy skipped."""
    row = {"reservation_id": "R1", **HV, **STAY, "door_name": "Room 101", "user_level": "1"}
    first, copy = plan(sandbox_catalog, row, row)
    assert (first["outcome"], copy["outcome"], copy["reason"]) == (
        "planned",
        "skipped",
        "duplicate_reservation",
    )
    assert "line 2" in copy["message"]


def test_conflicting_duplicates_are_all_rejected(sandbox_catalog):
    """The same reservation_id with different content: every copy is a conflict."""
    row = {"reservation_id": "R1", **HV, **STAY, "door_name": "Room 101", "user_level": "1"}
    rows = plan(sandbox_catalog, row, {**row, "check_out": "2027-03-17"}, row)
    assert {r["reason"] for r in rows} == {"duplicate_reservation_conflict"}


def test_a_slice_whose_rows_all_lack_dates_joins_the_others(sandbox_catalog):
    """Two slices, the second only rows without a readable date: no window is computed there,
    and still its rows are rejected for their dates, as when the input is planned whole."""
    good = {**HV, **STAY, "door_name": "Room 101", "user_level": "1"}
    bad = {**good, "check_in": "12/03/2027", "check_out": "16/03/2027"}
    rows = [{**row, "reservation_id": f"R{n}"} for n, row in enumerate([good, good, bad, bad])]
    sliced = plan_reservations(
        reservations(*rows), sandbox_catalog, Config(), now=NOW, slice_rows=2
    )
    assert sliced["reason"].to_list() == [None, None, "invalid_row", "invalid_row"]
    assert sliced.equals(plan_reservations(reservations(*rows), sandbox_catalog, Config(), now=NOW))


def test_ambiguous_door_message_lists_its_sites_in_order(sandbox_catalog):
    (result,) = plan(sandbox_catalog, {"reservation_id": "R1", "door_name": "ROOM 101", **STAY})
    assert result["message"] == (
        "2 doors are named ROOM 101 (sites: Harbor View, Lakeside Lodge);"
        " add site_name or use device_id"
    )


def test_device_id_lookup_fills_door_and_site(sandbox_catalog):
    """A row found by device_id reports the door's own name and site."""
    door = sandbox_catalog.doors.filter(door_name="Cabin 1").row(0, named=True)
    (result,) = plan(
        sandbox_catalog, {"reservation_id": "R1", "device_id": door["device_id"], **STAY}
    )
    assert (result["door_name"], result["site_name"], result["user_level_name"]) == (
        "Cabin 1",
        "Lakeside Lodge",
        None,
    )
    assert result["reason"] == "ambiguous_user_level"


def test_tags_are_deterministic_and_distinct(sandbox_catalog):
    """Same input → same tag; a different window or reservation → a different tag."""
    base = {"reservation_id": "R1", **HV, **STAY, "door_name": "Room 101", "user_level": "1"}
    rows = [
        base,
        {**base, "reservation_id": "R2"},
        {**base, "reservation_id": "R3", "check_out": "2027-03-17"},
    ]
    first = plan_reservations(reservations(*rows), sandbox_catalog, Config(), now=NOW)
    again = plan_reservations(reservations(*rows), sandbox_catalog, Config(), now=NOW)
    assert first["idempotency_tag"].to_list() == again["idempotency_tag"].to_list()
    assert first["idempotency_tag"].n_unique() == 3
    assert all(tag.startswith("opl-") and len(tag) == 24 for tag in first["idempotency_tag"])


def test_name_template_always_carries_the_tag(sandbox_catalog):
    """The code name follows the template, collapses blanks from empty fields, and holds the tag."""
    config = Config(name_template="{guest_name} · {reservation_id} · {tag}")
    (result,) = plan(
        sandbox_catalog,
        {"reservation_id": "R1", **HV, **STAY, "door_name": "Room 101", "user_level": "1"},
        config=config,
    )
    assert result["name"] == f"· R1 · {result['idempotency_tag']}"


def test_a_control_character_in_any_field_never_reaches_the_code_name(sandbox_catalog):
    """A tab or a line break in a reservation id (the read stage already cleans guest names)
    becomes a space in the code name: ``R1 X Ana [tag]``."""
    (result,) = plan(
        sandbox_catalog,
        {"reservation_id": "R1\tX", **HV, **STAY, "door_name": "Room 101", "user_level": "1"}
        | {"guest_name": "Ana\n"},
    )
    assert result["name"] == f"R1 X Ana [{result['idempotency_tag']}]"


def test_name_template_without_tag_is_refused():
    """A template that would lose the tag can't be configured."""
    with pytest.raises(ValueError, match="tag"):
        Config(name_template="{reservation_id}")


@pytest.mark.parametrize(
    ("check_in", "check_out", "reason"),
    [
        ("2027-03-12t15:30", "2027-03-16t10:30", None),
        ("2027-03-12T23:30:00z", "2027-03-16T17:30:00Z", None),
        ("2027-03-12T23:30+16:00", "2027-03-16T17:30Z", "invalid_row"),
        ("2027-03-12T23:30+05:75", "2027-03-16T17:30Z", "invalid_row"),
        ("2100-03-12", "2100-03-16", "invalid_row"),
        ("1999-03-12", "1999-03-16", "invalid_row"),
    ],
)
def test_stay_value_edges(sandbox_catalog, check_in, check_out, reason):
    """Lowercase t/z are fine; impossible offsets and years outside 2000-2099 are refused."""
    (result,) = plan(
        sandbox_catalog,
        {
            "reservation_id": "R1",
            **HV,
            "door_name": "Room 101",
            "check_in": check_in,
            "check_out": check_out,
            "user_level": "1",
        },
    )
    assert result["reason"] == reason


def test_blank_rows_are_skipped(sandbox_catalog):
    """A row with no values at all (a trailing empty line) is skipped, not rejected."""
    rows = plan(
        sandbox_catalog,
        {"reservation_id": "R1", **HV, **STAY, "door_name": "Room 101", "user_level": "1"},
        {},
    )
    assert [(r["outcome"], r["reason"]) for r in rows] == [
        ("planned", None),
        ("skipped", "blank_row"),
    ]


def test_sharp_s_in_names_matches():
    """Door, site and level names match case-insensitively, ß included."""
    from pipeline.catalog.doors import DeviceCatalog
    from tests.generate import make_door, make_level

    catalog = DeviceCatalog.from_payload(
        [
            make_door(
                "d1",
                "Großes Zimmer",
                "Schloßhotel",
                "Europe/Berlin",
                [make_level("Groß 24h", 3, "12:00", "12:00", is_24_hour=True)],
            )
        ],
        source="test",
    )
    (result,) = plan(
        catalog,
        {
            "reservation_id": "R1",
            "door_name": "GROßES zimmer",
            "site_name": "schloßhotel",
            "check_in": "2027-03-12",
            "check_out": "2027-03-14",
            "user_level": "groß 24H",
        },
    )
    assert (result["outcome"], result["user_level_name"]) == ("planned", "Groß 24h")


def test_door_without_any_zone_is_unknown_time_zone():
    """A door with no iana_timezone whose levels carry only offsets: unknown_time_zone."""
    from pipeline.catalog.doors import DeviceCatalog
    from tests.generate import make_door, make_level

    catalog = DeviceCatalog.from_payload(
        [
            make_door(
                "d1", "Cabin", "S", None, [make_level("G", 1, "16:00:00-05:00", "11:00:00-05:00")]
            )
        ],
        source="test",
    )
    (result,) = plan(catalog, {"reservation_id": "R", "device_id": "d1", **STAY})
    assert result["reason"] == "unknown_time_zone"
    assert "no usable time zone" in result["message"]


def test_a_device_listed_twice_counts_once(sandbox_catalog):
    """Device data that lists a door twice (pages shifting) still gives one row per input row."""
    import json

    from pipeline.catalog.doors import DeviceCatalog
    from tests.paths import SANDBOX_DEVICES

    devices = json.loads(SANDBOX_DEVICES.read_text())["devices"]
    catalog = DeviceCatalog.from_payload(devices + devices[:3], source="test")
    rows = plan(
        catalog, {"reservation_id": "R1", **HV, **STAY, "door_name": "Room 101", "user_level": "1"}
    )
    assert catalog.doors.height == 13
    assert [r["outcome"] for r in rows] == ["planned"]
