"""Allocation: which planned rows a door's budget takes, in lifetime and concurrent mode, in
allocation order whatever the files' row order, checked against a brute-force reference.

Times in the tables are hours after BASE (tests/budget/helpers.py).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.budget.limits import BudgetCheck
from tests.budget.helpers import (
    PLAN_SCHEMA,
    codes,
    door_row,
    past_codes,
    rejected,
    run,
    stamp,
    stays,
    tag,
)
from tests.properties import property_settings

INF = float("inf")


# --- lifetime ------------------------------------------------------------------------------

FOUR_NIGHTS = stays(
    ("R1", "d1", 0, 24),
    ("R2", "d1", 24, 48),
    ("R3", "d1", 48, 72),
    ("R4", "d1", 72, 96),
)
ALL = ["R1", "R2", "R3", "R4"]

# Four stays on one door; budget, reserve and the codes already on it (used) → the rows
# rejected and the door's count after the run, what remains of its budget, and near_full.
LIFETIME_CASES = [
    # budget, reserve, used, rejected, after, remaining, near_full
    (5, 0, 0, [], 4, 1, False),
    (4, 0, 0, [], 4, 0, True),
    (3, 0, 0, ["R4"], 3, 0, True),
    (3, 1, 0, ["R3", "R4"], 2, 1, False),
    (4, 0, 2, ["R3", "R4"], 4, 0, True),
    (4, 1, 2, ["R2", "R3", "R4"], 3, 1, False),
    (4, 1, 3, ALL, 3, 1, False),
    (2, 0, 3, ALL, 3, -1, True),
    (0, 0, 0, ALL, 0, 0, True),
    (2, 3, 0, ALL, 0, 2, False),
    (10, 0, 5, [], 9, 1, True),
    (10, 0, 4, [], 8, 2, False),
    (10, 1, 5, [], 9, 1, True),
    (10, 2, 5, ["R4"], 8, 2, False),
]


@pytest.mark.parametrize(
    ("budget", "reserve", "used", "rejects", "after", "remaining", "near_full"), LIFETIME_CASES
)
def test_lifetime_table(budget, reserve, used, rejects, after, remaining, near_full):
    """A door takes its first budget - reserve - used rows; the door table adds up."""
    check = run(
        FOUR_NIGHTS, {"d1": budget}, reserve=reserve, existing=codes(*past_codes("d1", used))
    )
    assert rejected(check) == rejects
    row = door_row(check)
    assert row == {
        "device_id": "d1",
        "door_name": "Door d1",
        "site_name": "Hotel",
        "budget": budget,
        "budget_source": "per_door",
        "reserve": reserve,
        "used": used,
        "on_door": 0,
        "planned": 4 - len(rejects),
        "over": len(rejects),
        "after": after,
        "remaining": remaining,
        "usage": pytest.approx(after / budget if budget else 1.0),
        "near_full": near_full,
    }
    assert check.exceeded["device_id"].to_list() == (["d1"] if rejects else [])


def test_lifetime_message_gives_budget_used_and_room():
    """A rejected row is ``rejected/budget_exhausted`` with the budget, used, room and its place."""
    check = run(FOUR_NIGHTS, {"d1": 3}, reserve=1, existing=codes(*past_codes("d1", 1)))
    assert rejected(check) == ["R2", "R3", "R4"]
    r2, r4 = (
        check.plan.filter(pl.col("reservation_id") == name).row(0, named=True)
        for name in ("R2", "R4")
    )
    assert (r2["outcome"], r2["reason"]) == ("rejected", "budget_exhausted")
    assert (
        "door Door d1 has a budget of 3 codes (reserve 1): 1 used, room for 1 more"
        in (r2["message"])
    )
    assert "number 2 in the door's allocation order" in r2["message"]
    assert "number 4 in the door's allocation order" in r4["message"]
    r1 = check.plan.row(0, named=True)
    assert (r1["outcome"], r1["reason"], r1["message"]) == ("planned", None, None)


def test_lifetime_counts_codes_that_ended_long_ago():
    """In lifetime mode every existing code counts, whatever its window and whatever ``now``."""
    existing = codes(("d1", None, -100, -90), ("d1", None, None, None), ("d2", None, 0, 10))
    check = run(FOUR_NIGHTS, {"d1": 4}, existing=existing, now=1000)
    assert rejected(check) == ["R3", "R4"]
    assert door_row(check)["used"] == 2


# Rows listed out of allocation order → the ones a budget of 2 rejects.
ORDER_CASES = [
    ([("R1", "d1", 48, 72), ("R2", "d1", 24, 48), ("R3", "d1", 0, 24)], ["R1"]),
    ([("B", "d1", 0, 24), ("A", "d1", 0, 24), ("C", "d1", 0, 24)], ["C"]),
    ([("C", "d1", 0, 24), ("B", "d1", 0, 24), ("A", "d1", 1, 24)], ["A"]),
    ([("Z", "d1", 0, 24), ("Z", "d1", 0, 48), ("Y", "d1", 5, 6)], ["Y"]),
]


@pytest.mark.parametrize(("rows", "rejects"), ORDER_CASES)
def test_lifetime_takes_rows_in_allocation_order(rows, rejects):
    """Earliest start first, then reservation_id, then tag; the file's row order plays no part."""
    assert rejected(run(stays(*rows), {"d1": 2})) == rejects


def test_tie_on_start_and_reservation_goes_to_the_lower_tag():
    """Two rows alike in start and reservation_id: the lower tag is taken, wherever it is."""
    plan = stays(("R1", "d1", 0, 48), ("R1", "d1", 0, 24), first_tag=5).reverse()
    for mode in ("lifetime", "concurrent"):
        check = run(plan, {"d1": 1}, mode=mode)
        taken = check.plan.filter(pl.col("outcome") == "planned")["idempotency_tag"]
        assert taken.to_list() == [tag(5)], mode


def test_lifetime_row_already_on_door_takes_no_new_budget():
    """A planned row whose tag the door already holds is ``on_door``: its code is counted once."""
    plan = stays(("R1", "d1", 0, 24), ("R2", "d1", 24, 48), ("R3", "d1", 48, 72))
    check = run(plan, {"d1": 2}, existing=codes(("d1", tag(0), 0, 24)))
    assert rejected(check) == ["R3"]
    assert check.on_door == frozenset({tag(0)})
    row = door_row(check)
    assert (row["used"], row["on_door"], row["planned"], row["over"], row["after"]) == (
        1,
        1,
        1,
        1,
        2,
    )


def test_rows_not_planned_are_left_alone():
    """Rejected and skipped rows take no budget and keep their own reason and message."""
    plan = pl.concat(
        [
            stays(("R0", "d1", 0, 24), ("R9", "d1", 0, 24), first_tag=10).with_columns(
                outcome=pl.Series(["rejected", "skipped"]),
                reason=pl.Series(["unknown_user_level", "duplicate_reservation"]),
                message=pl.Series(["no such level", "same as line 2"]),
            ),
            stays(("R1", "d1", 0, 24)),
        ]
    )
    for mode in ("lifetime", "concurrent"):
        check = run(plan, {"d1": 1}, mode=mode)
        assert check.plan.select("reservation_id", "outcome", "reason", "message").rows() == [
            ("R0", "rejected", "unknown_user_level", "no such level"),
            ("R9", "skipped", "duplicate_reservation", "same as line 2"),
            ("R1", "planned", None, None),
        ], mode
        assert check.plan.columns == plan.columns


def test_unbudgeted_doors_are_never_limited():
    """A door without a budget (or missing from the table) takes every row and is listed."""
    plan = stays(("R1", "d1", 0, 24), ("R2", "d1", 0, 24), ("R3", "d2", 0, 24), ("R4", "d3", 0, 24))
    for mode in ("lifetime", "concurrent"):
        check = run(plan, {"d1": 1, "d2": None}, mode=mode, existing=codes(*past_codes("d2", 5)))
        assert rejected(check) == ["R2"], mode
        assert sorted(check.unbudgeted["device_id"]) == ["d2", "d3"]
        row = door_row(check, "d2")
        assert (row["budget"], row["used"], row["reserve"], row["after"], row["near_full"]) == (
            None,
            None,
            None,
            None,
            False,
        )


def test_counted_existing_says_whether_codes_were_counted():
    """Without a code table the used codes are unknown: counted as none, and the check says so."""
    unknown = run(FOUR_NIGHTS, {"d1": 2})
    assert unknown.counted_existing is False
    assert door_row(unknown)["used"] == 0
    assert rejected(unknown) == ["R3", "R4"]
    assert run(FOUR_NIGHTS, {"d1": 2}, existing=codes()).counted_existing is True


# --- concurrent ----------------------------------------------------------------------------

# Stays on door d1 and codes already on doors ``(device_id, tag, start, end)``, a budget, a
# reserve and ``now`` → the rows rejected.
CONCURRENT_CASES = [
    pytest.param(
        [("R1", "d1", 0, 24), ("R2", "d1", 24, 48), ("R3", "d1", 48, 72)], [], 1, 0, 0, [],
        id="back-to-back stays touch but do not overlap",
    ),
    pytest.param(
        [("R3", "d1", 48, 72), ("R1", "d1", 0, 24), ("R2", "d1", 24, 48)], [], 1, 0, 0, [],
        id="back-to-back stays in any file order",
    ),
    pytest.param(
        [("R1", "d1", 0, 25), ("R2", "d1", 24, 48)], [], 1, 0, 0, ["R2"],
        id="one hour in common is an overlap",
    ),
    pytest.param(
        [("R1", "d1", 0, 48), ("R2", "d1", 12, 48), ("R3", "d1", 24, 72)], [], 2, 0, 0, ["R3"],
        id="third overlapping stay is rejected",
    ),
    pytest.param(
        [("C", "d1", 0, 48), ("A", "d1", 12, 48), ("B", "d1", 0, 48)], [], 2, 0, 0, ["A"],
        id="third by allocation order, not by file order",
    ),
    pytest.param(
        [("R1", "d1", 0, 24), ("R2", "d1", 12, 48), ("R3", "d1", 24, 48)], [], 2, 0, 0, [],
        id="a stay starting as another ends takes its slot",
    ),
    pytest.param(
        [("R1", "d1", 0, 24), ("R2", "d1", 12, 36), ("R3", "d1", 24, 48)], [], 1, 0, 0, ["R2"],
        id="a rejected stay holds no slot",
    ),
    pytest.param(
        [("R1", "d1", 0, 10), ("R2", "d1", 20, 30), ("R3", "d1", 5, 25)], [], 1, 0, 0, ["R3"],
        id="a long stay between two short ones",
    ),
    pytest.param(
        [("R1", "d1", 0, 24), ("R2", "d1", 12, 36)], [("d1", None, -10, 100)], 2, 0, 0, ["R2"],
        id="an existing code holds a slot",
    ),
    pytest.param(
        [("R1", "d1", 0, 24), ("R2", "d1", 100, 124)], [("d1", None, None, None)], 1, 0, 0,
        ["R1", "R2"],
        id="an existing code without start or end holds a slot for ever",
    ),
    pytest.param(
        [("R1", "d1", 0, 24), ("R2", "d1", 100, 124)], [("d1", None, 50, None)], 1, 0, 0,
        ["R2"],
        id="an existing code without an end holds a slot from its start",
    ),
    pytest.param(
        [("R1", "d1", 0, 48)], [("d1", None, 0, 12)], 1, 0, 24, [],
        id="an existing code that ended before now is not counted",
    ),
    pytest.param(
        [("R1", "d1", 0, 48)], [("d1", None, 0, 30)], 1, 0, 24, ["R1"],
        id="an existing code still valid at now is counted",
    ),
    pytest.param(
        [("R1", "d1", 0, 48)], [("d1", None, 0, 24)], 1, 0, 24, [],
        id="an existing code ending exactly at now is not counted",
    ),
    pytest.param(
        [("R1", "d1", 24, 48)], [("d1", None, 0, 24)], 1, 0, 0, [],
        id="an existing code ending as a stay starts does not overlap it",
    ),
    pytest.param(
        [("R1", "d1", 0, 24)], [("d1", None, 24, 30)], 1, 0, 0, [],
        id="an existing code starting as a stay ends does not overlap it",
    ),
    pytest.param(
        [("R1", "d1", 0, 24)], [("d2", None, 0, 100)], 1, 0, 0, [],
        id="an existing code on another door is not counted",
    ),
    pytest.param(
        [("R1", "d1", 0, 48), ("R2", "d1", 0, 48), ("R3", "d1", 0, 48)], [], 3, 1, 0, ["R3"],
        id="the reserve is kept free",
    ),
    pytest.param(
        [("R1", "d1", 0, 24), ("R2", "d1", 24, 48)], [], 2, 2, 0, ["R1", "R2"],
        id="a reserve as large as the budget leaves nothing",
    ),
    pytest.param(
        [("R1", "d1", 0, 24)], [], 0, 0, 0, ["R1"],
        id="a budget of 0 takes nothing",
    ),
    pytest.param(
        [("R1", "d1", 0, 24), ("R2", "d1", 30, 40)], [("d1", None, 0, 35), ("d1", None, 10, 20)],
        1, 0, 0, ["R1", "R2"],
        id="existing codes over the budget leave no room where they overlap",
    ),
    pytest.param(
        [("R1", "d1", 36, 40)], [("d1", None, 0, 35), ("d1", None, 10, 20)], 1, 0, 0, [],
        id="existing codes over the budget elsewhere leave room",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rows", "existing", "budget", "reserve", "now", "rejects"), CONCURRENT_CASES
)
def test_concurrent_table(rows, existing, budget, reserve, now, rejects):
    """At no instant more codes valid than budget - reserve, deciding in allocation order."""
    check = run(
        stays(*rows),
        {"d1": budget},
        mode="concurrent",
        reserve=reserve,
        existing=codes(*existing),
        now=now,
    )
    assert rejected(check) == rejects


def test_concurrent_used_is_the_peak_of_existing_codes():
    """used is the most existing codes valid at once; codes that only touch are one at a time."""
    existing = codes(("d1", None, 0, 24), ("d1", None, 24, 48), ("d1", None, 48, 72))
    check = run(stays(("R1", "d1", 100, 124)), {"d1": 2}, mode="concurrent", existing=existing)
    assert (door_row(check)["used"], door_row(check)["after"]) == (1, 1)
    existing = codes(("d1", None, 0, 25), ("d1", None, 24, 48), ("d1", None, None, 10))
    check = run(stays(("R1", "d1", 100, 124)), {"d1": 2}, mode="concurrent", existing=existing)
    assert (door_row(check)["used"], door_row(check)["after"]) == (2, 2)


def test_concurrent_door_table_and_message():
    """The door table gives the peak before and after; the message the budget and the peak."""
    plan = stays(("R1", "d1", 0, 48), ("R2", "d1", 12, 48), ("R3", "d1", 24, 72))
    check = run(plan, {"d1": 3}, mode="concurrent", existing=codes(("d1", None, 30, 40)))
    assert rejected(check) == ["R3"]
    assert {k: v for k, v in door_row(check).items() if k != "usage"} == {
        "device_id": "d1",
        "door_name": "Door d1",
        "site_name": "Hotel",
        "budget": 3,
        "budget_source": "per_door",
        "reserve": 0,
        "used": 1,
        "on_door": 0,
        "planned": 2,
        "over": 1,
        "after": 3,
        "remaining": 0,
        "near_full": True,
    }
    (message,) = check.plan.filter(pl.col("reservation_id") == "R3")["message"]
    assert message.startswith(
        "door Door d1 allows 3 codes valid at once (reserve 0): 3 would already be valid at"
        " 2027-01-02T06:00:00Z"
    )


def test_concurrent_row_already_on_door_is_not_counted_twice():
    """A row whose code the door holds takes no slot of its own; its code takes one, once."""
    plan = stays(("R1", "d1", 0, 24), ("R2", "d1", 12, 36), ("R3", "d1", 24, 48))
    check = run(plan, {"d1": 1}, mode="concurrent", existing=codes(("d1", tag(0), 0, 24)))
    assert rejected(check) == ["R2"]
    assert check.on_door == frozenset({tag(0)})
    row = door_row(check)
    assert (row["used"], row["on_door"], row["planned"], row["over"], row["after"]) == (
        1,
        1,
        1,
        1,
        1,
    )
    # The same tag on another door is another code: R1 needs its own slot on d1.
    elsewhere = run(plan, {"d1": 1}, mode="concurrent", existing=codes(("d2", tag(0), 0, 24)))
    assert rejected(elsewhere) == ["R2"]
    assert elsewhere.on_door == frozenset()
    assert door_row(elsewhere)["planned"] == 2


@pytest.mark.parametrize("mode", ["lifetime", "concurrent"])
@pytest.mark.parametrize("budget", [2, 1])
@pytest.mark.parametrize("other_door", [False, True])
def test_rerun_with_every_code_already_on_door(mode, budget, other_door):
    """A rerun once a door's codes exist: its rows are on_door, none rejected, nothing new."""
    rows = [("R1", "d1", 0, 24), ("R2", "d1", 12, 36)]
    plan = stays(*rows, ("R3", "d2", 0, 24)) if other_door else stays(*rows)
    existing = codes(("d1", tag(0), 0, 24), ("d1", tag(1), 12, 36))
    check = run(plan, {"d1": budget, "d2": 1}, mode=mode, existing=existing)
    assert rejected(check) == []
    assert check.on_door == frozenset({tag(0), tag(1)})
    row = door_row(check)
    assert (row["used"], row["on_door"], row["planned"], row["over"], row["after"]) == (
        2,
        2,
        0,
        0,
        2,
    )
    if other_door:
        assert (door_row(check, "d2")["planned"], door_row(check, "d2")["after"]) == (1, 1)
    assert check.abort_error() is None


@pytest.mark.parametrize("mode", ["lifetime", "concurrent"])
def test_skip_door_takes_none_of_a_door_that_cannot_take_all(mode):
    """skip-door: a door short of room for every row takes none; other doors are untouched."""
    plan = stays(
        ("R1", "d1", 0, 48),
        ("R2", "d1", 0, 48),
        ("R3", "d1", 0, 48),
        ("R4", "d2", 0, 48),
        ("R5", "d2", 0, 48),
    )
    check = run(plan, {"d1": 2, "d2": 2}, mode=mode, on_exceeded="skip-door")
    assert rejected(check) == ["R1", "R2", "R3"]
    for message in check.plan.filter(pl.col("device_id") == "d1")["message"]:
        assert message == (
            "door Door d1 skipped (--on-budget-exceeded skip-door): it needs 3 new codes"
            " and only 2 of them fit in its budget of 2"
        )
    d1, d2 = door_row(check, "d1"), door_row(check, "d2")
    assert (d1["planned"], d1["over"], d1["after"], d1["remaining"]) == (0, 3, 0, 2)
    assert (d2["planned"], d2["over"], d2["after"], d2["remaining"]) == (2, 0, 2, 0)


# --- determinism ---------------------------------------------------------------------------

CONTESTED = [
    ("R07", "d1", 0, 48),
    ("R03", "d1", 12, 36),
    ("R05", "d1", 24, 72),
    ("R01", "d1", 24, 30),
    ("R02", "d1", 48, 96),
    ("R04", "d1", 72, 96),
    ("R06", "d2", 0, 24),
    ("R08", "d2", 0, 24),
    ("R09", "d2", 24, 48),
    ("R10", "d3", 0, 100),
    ("R11", "d3", 50, 60),
    ("R12", "d3", 50, 60),
    ("R12", "d3", 50, 70),
    ("R12", "d3", 50, 80),
]
CONTESTED_CODES = [("d1", None, 20, 26), ("d3", None, 0, 55), ("d2", None, -50, -40)]


@pytest.mark.parametrize("mode", ["lifetime", "concurrent"])
def test_row_order_and_file_order_change_nothing(mode):
    """Shuffled rows, or two files read in either order: same rejections, same door table."""
    plan = stays(*CONTESTED)
    budgets = {"d1": 3, "d2": 2, "d3": 4}

    def outcome(frame: pl.DataFrame) -> tuple[list[str], pl.DataFrame]:
        check = run(frame, budgets, mode=mode, existing=codes(*CONTESTED_CODES))
        assert check.plan["idempotency_tag"].to_list() == frame["idempotency_tag"].to_list()
        return sorted(rejected_tags(check)), check.doors

    want_rejected, want_doors = outcome(plan)
    assert want_rejected  # the budgets do bite
    first, second = plan[:5], plan[5:]
    frames = [pl.concat([first, second]), pl.concat([second, first])]
    shuffler = random.Random(20270101)
    for _ in range(5):
        order = list(range(plan.height))
        shuffler.shuffle(order)
        frames.append(plan[order])
    for frame in frames:
        got_rejected, got_doors = outcome(frame)
        assert got_rejected == want_rejected
        assert got_doors.equals(want_doors)


# --- properties against a brute-force reference ---------------------------------------------


@dataclass(frozen=True)
class Row:
    reservation_id: str
    device_id: str
    start: int
    end: int
    tag: str
    outcome: str


@dataclass(frozen=True)
class Code:
    device_id: str
    tag: str | None
    start: int | None
    end: int | None

    def span(self) -> tuple[float, float]:
        return (-INF if self.start is None else self.start, INF if self.end is None else self.end)


@dataclass(frozen=True)
class Scenario:
    budgets: dict[str, int | None]
    reserve: int
    now: int
    on_exceeded: str
    rows: list[Row]
    existing: list[Code]
    order: list[int]

    def plan(self) -> pl.DataFrame:
        return pl.DataFrame(
            [
                {
                    "reservation_id": row.reservation_id,
                    "device_id": row.device_id,
                    "door_name": f"Door {row.device_id}",
                    "site_name": "Hotel",
                    "idempotency_tag": row.tag,
                    "starts_at_utc": stamp(row.start),
                    "ends_at_utc": stamp(row.end),
                    "outcome": row.outcome,
                    "reason": None if row.outcome == "planned" else "unknown_device",
                    "message": None if row.outcome == "planned" else "not budgeted here",
                }
                for row in self.rows
            ],
            schema=PLAN_SCHEMA,
        )

    def codes(self) -> pl.DataFrame:
        return codes(*((c.device_id, c.tag, c.start, c.end) for c in self.existing))

    def check(self, mode: str, plan: pl.DataFrame | None = None) -> BudgetCheck:
        return run(
            self.plan() if plan is None else plan,
            self.budgets,
            mode=mode,
            reserve=self.reserve,
            on_exceeded=self.on_exceeded,
            existing=self.codes(),
            now=self.now,
        )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    devices = [f"d{i}" for i in range(1, draw(st.integers(1, 3)) + 1)]
    now = draw(st.integers(0, 6))
    rows: list[Row] = []
    existing: list[Code] = []
    for device_id in devices:
        for start, length, reservation_id, outcome in draw(
            st.lists(
                st.tuples(
                    st.integers(0, 24),
                    st.integers(1, 10),
                    st.sampled_from(["R1", "R2", "R3", "R4", "R5"]),
                    st.sampled_from(["planned"] * 5 + ["rejected"]),
                ),
                max_size=12,
            )
        ):
            rows.append(
                Row(reservation_id, device_id, start, start + length, tag(len(rows)), outcome)
            )
        for start, length in draw(
            st.lists(
                st.tuples(
                    st.integers(-12, 30).map(lambda hour: None if hour < -10 else hour),
                    st.integers(0, 12).map(lambda hours: hours or None),
                ),
                max_size=3,
            )
        ):
            end = None if length is None else (start if start is not None else 0) + length
            existing.append(Code(device_id, None, start, end))
    # Some planned rows' codes are already on their door (with the row's own window).
    live = [row for row in rows if row.outcome == "planned" and row.end > now]
    if live:
        for row in draw(st.lists(st.sampled_from(live), max_size=3, unique=True)):
            existing.append(Code(row.device_id, row.tag, row.start, row.end))
    return Scenario(
        budgets={d: draw(st.sampled_from([None, 0, 1, 2, 3, 4])) for d in devices},
        reserve=draw(st.integers(0, 2)),
        now=now,
        on_exceeded=draw(st.sampled_from(["reject-rows"] * 3 + ["skip-door"])),
        rows=rows,
        existing=existing,
        order=draw(st.permutations(range(len(rows)))),
    )


def load(instant: float, windows: Iterable[tuple[float, float]]) -> int:
    """How many of the half-open windows ``[start, end)`` hold ``instant``."""
    return sum(1 for start, end in windows if start <= instant < end)


def peak(windows: Sequence[tuple[float, float]]) -> int:
    """The most windows valid at one instant (the load only rises at a start)."""
    return max((load(start, windows) for start, _ in windows), default=0)


@dataclass(frozen=True)
class Expected:
    rejected: set[str]
    doors: dict[str, dict[str, int]]


def reference(scenario: Scenario, mode: str) -> Expected:
    """Decide every row one by one in allocation order, the slow and obvious way."""
    counted = [
        code
        for code in scenario.existing
        if mode == "lifetime" or code.end is None or code.end > scenario.now
    ]
    rejects: set[str] = set()
    doors: dict[str, dict[str, int]] = {}
    for device_id, budget in scenario.budgets.items():
        mine = [code for code in counted if code.device_id == device_id]
        held = {code.tag for code in mine if code.tag}
        rows = [r for r in scenario.rows if r.device_id == device_id and r.outcome == "planned"]
        if budget is None or not rows:
            continue
        cap = max(budget - scenario.reserve, 0)
        candidates = sorted(
            (row for row in rows if row.tag not in held),
            key=lambda row: (row.start, row.reservation_id, row.tag),
        )
        windows = [code.span() for code in mine]
        used = len(mine) if mode == "lifetime" else peak(windows)
        taken: list[Row] = []
        for row in candidates:
            if mode == "lifetime":
                fits = used + len(taken) + 1 <= cap
            else:
                instants = {row.start} | {
                    edge for window in windows for edge in window if row.start < edge < row.end
                }
                fits = all(load(instant, windows) + 1 <= cap for instant in instants)
            if fits:
                taken.append(row)
                windows.append((row.start, row.end))
        if scenario.on_exceeded == "skip-door" and len(taken) < len(candidates):
            taken = []
        rejects |= {row.tag for row in candidates if row not in taken}
        if not taken:
            after = used
        elif mode == "lifetime":
            after = used + len(taken)
        else:
            after = peak([code.span() for code in mine] + [(r.start, r.end) for r in taken])
        doors[device_id] = {
            "used": used,
            "on_door": len(rows) - len(candidates),
            "planned": len(taken),
            "over": len(candidates) - len(taken),
            "after": after,
        }
    return Expected(rejects, doors)


def rejected_tags(check: BudgetCheck) -> set[str]:
    return set(check.plan.filter(pl.col("reason") == "budget_exhausted")["idempotency_tag"])


def assert_matches_reference(scenario: Scenario, mode: str) -> BudgetCheck:
    check = scenario.check(mode)
    want = reference(scenario, mode)
    assert rejected_tags(check) == want.rejected
    budgeted = check.doors.filter(pl.col("budget").is_not_null())
    got = {
        row["device_id"]: {key: row[key] for key in ("used", "on_door", "planned", "over", "after")}
        for row in budgeted.to_dicts()
    }
    assert got == want.doors
    # Rows not planned keep their own reason; the plan keeps its rows and their order.
    assert check.plan["idempotency_tag"].to_list() == [row.tag for row in scenario.rows]
    assert check.plan.filter(pl.col("outcome") != "planned")["reason"].to_list() == [
        "unknown_device" if row.outcome != "planned" else "budget_exhausted"
        for row in scenario.rows
        if row.outcome != "planned" or row.tag in want.rejected
    ]
    # The same rows in another order get the same answer.
    shuffled = scenario.check(mode, scenario.plan()[scenario.order])
    assert rejected_tags(shuffled) == want.rejected
    assert shuffled.doors.equals(check.doors)
    return check


PROPERTY_SETTINGS = property_settings(120)


@PROPERTY_SETTINGS
@given(scenarios())
def test_concurrent_matches_brute_force_reference(scenario):
    """Concurrent mode rejects exactly the rows a one-by-one sweep rejects; the cap holds."""
    check = assert_matches_reference(scenario, "concurrent")
    accepted = check.plan.filter(pl.col("outcome") == "planned")["idempotency_tag"].to_list()
    live = [c for c in scenario.existing if c.end is None or c.end > scenario.now]
    for device_id, budget in scenario.budgets.items():
        if budget is None:
            continue
        cap = max(budget - scenario.reserve, 0)
        held = {c.tag for c in live if c.device_id == device_id}
        new = [
            (row.start, row.end)
            for row in scenario.rows
            if row.device_id == device_id and row.tag in accepted and row.tag not in held
        ]
        windows = [c.span() for c in live if c.device_id == device_id] + new
        for start, end in new:
            for instant in {start} | {e for w in windows for e in w if start < e < end}:
                assert load(instant, windows) <= cap, (device_id, instant)


@PROPERTY_SETTINGS
@given(scenarios())
def test_lifetime_matches_reference(scenario):
    """Lifetime mode takes the first max(budget - reserve - used, 0) candidates in order."""
    check = assert_matches_reference(scenario, "lifetime")
    if scenario.on_exceeded != "reject-rows":
        return
    accepted = set(check.plan.filter(pl.col("outcome") == "planned")["idempotency_tag"])
    for device_id, budget in scenario.budgets.items():
        if budget is None:
            continue
        held = {c.tag for c in scenario.existing if c.device_id == device_id and c.tag}
        used = sum(1 for c in scenario.existing if c.device_id == device_id)
        candidates = sorted(
            (
                row
                for row in scenario.rows
                if row.device_id == device_id and row.outcome == "planned" and row.tag not in held
            ),
            key=lambda row: (row.start, row.reservation_id, row.tag),
        )
        room = max(budget - scenario.reserve - used, 0)
        count = min(len(candidates), room)
        assert [row.tag in accepted for row in candidates] == [True] * count + [False] * (
            len(candidates) - count
        )
