"""The lines after the counts that say what the plan changed: rounded rows, added doors."""

from __future__ import annotations

import io

import polars as pl
from rich.console import Console

from pipeline.cli.changes import print_plan_changes


def printed(rows: list[dict[str, str | None]]) -> list[str]:
    stream = io.StringIO()
    table = pl.DataFrame(
        rows,
        schema=dict.fromkeys(
            ("reservation_id", "door_name", "outcome", "message", "also_for"), pl.String
        ),
    )
    print_plan_changes(table, Console(file=stream, width=300, highlight=False))
    return stream.getvalue().splitlines()


def test_rounded_rows_and_added_doors_are_said_after_the_counts():
    """Rounded rows that got (or will get) a code are counted and shown with their message;
    the rows [doors.also] added are counted per door and outcome; a rejected row is neither
    shown as rounded nor hidden from its door's count."""
    moved = (
        "rounded to user level Guest: check-in 15:45 → 16:00 (15 min later), check-out 11:00 as"
        " booked"
    )
    lines = printed(
        [
            {"reservation_id": "A", "door_name": "Cabin", "outcome": "created", "message": moved},
            {"reservation_id": "B", "door_name": "Cabin", "outcome": "rejected", "message": moved},
            {
                "reservation_id": "A",
                "door_name": "Lobby",
                "outcome": "created",
                "also_for": "Cabin",
            },
            {
                "reservation_id": "B",
                "door_name": "Lobby",
                "outcome": "rejected",
                "also_for": "Cabin",
            },
        ]
    )
    assert lines == [
        "1 row(s) rounded to a user level's times (Seam's one hour; the message says how each end"
        " moved):",
        f"  A on Cabin: {moved}",
        "2 row(s) on the doors [doors.also] adds to stays: Lobby: 1 created, 1 rejected",
    ]


def test_nothing_is_said_when_nothing_changed():
    """No rounded row and no added door: no line at all."""
    assert printed([{"reservation_id": "A", "door_name": "Cabin", "outcome": "planned"}]) == []
