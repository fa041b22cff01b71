"""Budgets: each door's budget (config, site, door, Seam's limit), the codes already used on it,
and a run stopped when a door is over budget and ``abort`` was asked for.

Times in the tables are hours after BASE (tests/budget/helpers.py).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipeline.budget.limits import EXISTING_SCHEMA, door_budgets
from pipeline.budget.usage import existing_codes as existing_codes_of
from pipeline.catalog.doors import DOOR_SCHEMA
from pipeline.common.errors import ConfigError, UsageError
from pipeline.common.names import name_key
from pipeline.common.settings import BudgetConfig
from pipeline.seam.models import AccessCode
from tests.budget.helpers import (
    codes,
    door_row,
    past_codes,
    rejected,
    run,
    stamp,
    stays,
    tag,
)

# --- door_budgets --------------------------------------------------------------------------


def door(device_id: str, name: str, site: str | None, max_active: int | None) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "door_name": name,
        "site_name": site,
        "door_key": name_key(name),
        "site_key": name_key(site),
        "can_program_offline": True,
        "door_zone": "Europe/Berlin",
        "max_active_codes_supported": max_active,
    }


DOORS = pl.DataFrame(
    [
        door("d1", "Room 101", "Harbor View", None),
        door("d2", "Room 102", "Harbor View", 3),
        door("d3", "Cabin 1", "Lakeside Lodge", None),
        door("d4", "Cabin 2", "Lakeside Lodge", 10),
        door("d5", "Shed", None, None),
    ],
    schema=DOOR_SCHEMA,
)

# Each row: the [budgets] config, a door, and the budget and source it must get.
# d1 Room 101 @ Harbor View; d2 Room 102 @ Harbor View, max_active 3;
# d3 Cabin 1 @ Lakeside Lodge; d4 Cabin 2 @ Lakeside Lodge, max_active 10; d5 Shed, no site.
PRECEDENCE_CASES = [
    ({}, "d1", None, None),
    ({}, "d2", 3, "max_active_codes_supported"),
    ({"per_door": 5}, "d1", 5, "per_door"),
    ({"per_door": 5}, "d2", 3, "max_active_codes_supported"),
    ({"per_door": 2}, "d2", 2, "per_door"),
    ({"per_door": 3}, "d2", 3, "per_door"),
    ({"per_door": 5}, "d5", 5, "per_door"),
    ({"per_door": 0}, "d1", 0, "per_door"),
    ({"per_door": 5, "sites": {"harbor  VIEW": 4}}, "d1", 4, "site"),
    ({"per_door": 5, "sites": {"Harbor View": 4}}, "d3", 5, "per_door"),
    ({"sites": {"Harbor View": 4}}, "d3", None, None),
    ({"sites": {"Harbor View": 4}}, "d5", None, None),
    ({"sites": {"Lakeside Lodge": 12}}, "d4", 10, "max_active_codes_supported"),
    ({"sites": {"Lakeside Lodge": 7}}, "d4", 7, "site"),
    ({"per_door": 5, "sites": {"Harbor View": 4}, "doors": {"ROOM  101": 7}}, "d1", 7, "door"),
    (
        {"per_door": 5, "sites": {"Harbor View": 4}, "doors": {"Room 101": 7}},
        "d2",
        3,
        "max_active_codes_supported",
    ),
    (
        {"per_door": 1, "sites": {"Lakeside Lodge": 4}, "doors": {"Room 101": 7}},
        "d2",
        1,
        "per_door",
    ),
    ({"doors": {"Room 101": 7, "d1": 8}}, "d1", 8, "door"),
    ({"doors": {"d1": 8, "Room 101": 7}}, "d1", 8, "door"),
    ({"doors": {"Room 102": 9}}, "d2", 3, "max_active_codes_supported"),
    ({"doors": {"d2": 1}}, "d2", 1, "door"),
    ({"sites": {"Lakeside Lodge": 7}, "doors": {"cabin 2": 0}}, "d4", 0, "door"),
    ({"doors": {"shed": 2}}, "d5", 2, "door"),
]


@pytest.mark.parametrize(("config", "device_id", "budget", "source"), PRECEDENCE_CASES)
def test_door_budget_precedence(config, device_id, budget, source):
    """Door entry (id, then name) → site → per_door; max_active caps it or stands in for it."""
    table = door_budgets(DOORS, BudgetConfig.model_validate(config))
    assert table.schema["budget"] == pl.Int64
    assert sorted(table["device_id"]) == sorted(DOORS["device_id"])
    (row,) = table.filter(pl.col("device_id") == device_id).to_dicts()
    assert (row["budget"], row["budget_source"]) == (budget, source)


def test_door_name_at_several_sites_is_a_config_error():
    """A [budgets.doors] name that two sites share can't pick a door: ConfigError naming it."""
    doors = pl.concat(
        [DOORS, pl.DataFrame([door("d6", "Room 101", "Lakeside Lodge", None)], schema=DOOR_SCHEMA)]
    )
    with pytest.raises(ConfigError, match="'room 101'") as raised:
        door_budgets(doors, BudgetConfig(doors={"room 101": 3}))
    assert "Harbor View" in raised.value.message
    assert "Lakeside Lodge" in raised.value.message
    assert "device_id" in (raised.value.hint or "")
    # By device_id, or not named at all, the shared name is no problem.
    by_id = door_budgets(doors, BudgetConfig(doors={"d6": 3}, per_door=1))
    assert by_id.filter(pl.col("device_id") == "d6")["budget"].to_list() == [3]
    assert by_id.filter(pl.col("device_id") == "d1")["budget"].to_list() == [1]


# --- existing_codes ------------------------------------------------------------------------


def listed(code_id: str, device_id: str, name: str | None, start: str, end: str) -> AccessCode:
    return AccessCode(
        access_code_id=code_id,
        device_id=device_id,
        name=name,
        status="set",
        starts_at=start,
        ends_at=end,
    )


def ours(
    code_tag: str, device_id: str, code_id: str | None, start: str, end: str
) -> dict[str, Any]:
    """A ledger code as ``Ledger.codes_on_doors`` returns it."""
    return {
        "idempotency_tag": code_tag,
        "device_id": device_id,
        "access_code_id": code_id,
        "starts_at": start,
        "ends_at": end,
    }


START, END = "2027-01-01T15:00:00Z", "2027-01-03T11:00:00Z"


def test_existing_codes_counts_each_code_once():
    """A ledger code Seam lists (by tag on its door, or by id) isn't counted again; others are."""
    seam = [
        listed("ac-1", "d1", f"Guest · R1 · {tag(1)}", START, END),
        listed("ac-2", "d1", "renamed by hand", START, END),
        listed("ac-9", "d1", None, START, END),
    ]
    ledger = [
        ours(tag(1), "d1", None, START, END),  # sending, listed by its tag
        ours(tag(2), "d1", "ac-2", START, END),  # created, listed by its id
        ours(tag(3), "d1", "ac-3", START, END),  # created, not listed yet
        ours(tag(4), "d1", None, START, END),  # sending, not listed
        ours(tag(1), "d2", None, START, END),  # its tag is listed, but on another door
    ]
    table = existing_codes_of(seam, ledger)
    assert table.schema == pl.Schema(EXISTING_SCHEMA)
    assert sorted(table.select("device_id", "access_code_id", "tag").rows(), key=str) == sorted(
        [
            ("d1", "ac-1", tag(1)),
            ("d1", "ac-2", None),
            ("d1", "ac-9", None),
            ("d1", "ac-3", tag(3)),
            ("d1", None, tag(4)),
            ("d2", None, tag(1)),
        ],
        key=str,
    )


def test_existing_codes_finds_the_tag_only_when_whole():
    """The tag is ``opl-`` and 20 digits anywhere in the name; anything shorter is no tag."""
    seam = [
        listed("ac-1", "d1", f"x{tag(7)}y", START, END),
        listed("ac-2", "d1", "opl-1234", START, END),
    ]
    assert existing_codes_of(seam)["tag"].to_list() == [tag(7), None]


# Text as Seam or the ledger gives it → the UTC instant it must be.
INSTANT_CASES = [
    ("2027-01-01T15:00:00Z", dt.datetime(2027, 1, 1, 15, tzinfo=dt.UTC)),
    ("2027-01-01T15:00:00.000Z", dt.datetime(2027, 1, 1, 15, tzinfo=dt.UTC)),
    ("2027-01-01T16:00:00+01:00", dt.datetime(2027, 1, 1, 15, tzinfo=dt.UTC)),
    ("2027-01-01T10:00:00-05:00", dt.datetime(2027, 1, 1, 15, tzinfo=dt.UTC)),
    ("2027-01-02T00:30:00+09:30", dt.datetime(2027, 1, 1, 15, tzinfo=dt.UTC)),
    ("2027-01-01T00:30:00-00:30", dt.datetime(2027, 1, 1, 1, tzinfo=dt.UTC)),
    ("2027-03-28T03:00:00+02:00", dt.datetime(2027, 3, 28, 1, tzinfo=dt.UTC)),
]


@pytest.mark.parametrize(("text", "instant"), INSTANT_CASES)
def test_existing_code_times_are_utc_instants(text, instant):
    """``Z``, fractions and offsets all give the right UTC instant, from Seam and the ledger."""
    table = existing_codes_of(
        [listed("ac-1", "d1", None, text, text)], [ours(tag(1), "d1", None, text, text)]
    )
    assert table["starts_at_utc"].to_list() == [instant, instant]
    assert table["ends_at_utc"].to_list() == [instant, instant]


def test_existing_codes_feed_the_check():
    """The listed and ledger codes count on their doors: one listed, one still sending."""
    seam = [listed("ac-1", "d1", None, stamp(0), stamp(48))]
    ledger = [ours(tag(99), "d1", None, stamp(0), stamp(48))]
    plan = stays(("R1", "d1", 0, 24), ("R2", "d1", 12, 36))
    check = run(plan, {"d1": 3}, mode="concurrent", existing=existing_codes_of(seam, ledger))
    assert rejected(check) == ["R2"]
    assert door_row(check)["used"] == 2


# --- abort ---------------------------------------------------------------------------------

OVERFULL = stays(("R1", "d1", 0, 48), ("R2", "d1", 0, 48), ("R3", "d2", 0, 48))


@pytest.mark.parametrize("on_exceeded", ["reject-rows", "skip-door"])
def test_no_abort_error_unless_asked(on_exceeded):
    """Only ``abort`` stops a run; the other choices reject rows instead."""
    check = run(OVERFULL, {"d1": 1, "d2": 1}, on_exceeded=on_exceeded)
    assert not check.exceeded.is_empty()
    assert check.abort_error(Path("plan.csv")) is None


def test_abort_error_names_the_door():
    """abort with a door over budget: a UsageError (exit 2) naming the door and its numbers."""
    check = run(
        OVERFULL, {"d1": 2, "d2": 1}, on_exceeded="abort", existing=codes(*past_codes("d1", 1))
    )
    error = check.abort_error(Path("out/plan.csv"))
    assert isinstance(error, UsageError)
    assert error.exit_code == 2
    assert error.message == (
        "1 door(s) over budget, nothing was sent: door Door d1 (d1) needs 2 new codes and has"
        " room for 1 (budget 2, reserve 0, used 1); the plan is in out/plan.csv"
    )
    assert "--on-budget-exceeded reject-rows" in (error.hint or "")
    assert check.abort_error() is not None
    assert "the plan is in" not in check.abort_error().message


def test_abort_error_none_when_every_door_fits():
    """abort with every door within budget: nothing to stop on."""
    check = run(OVERFULL, {"d1": 2, "d2": 1}, on_exceeded="abort")
    assert check.exceeded.is_empty()
    assert check.abort_error(Path("plan.csv")) is None
