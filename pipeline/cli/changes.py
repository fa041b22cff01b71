"""What the plan changed that a person should see, after the counts: stays whose window was
rounded to a user level, and the codes ``[doors.also]`` added on other doors."""

from __future__ import annotations

import polars as pl
from rich.console import Console
from rich.markup import escape

from pipeline.plan.rounding import ROUNDED_NOTE

# Rounded rows shown by name; the rest are counted.
SHOWN = 5
_ALSO = escape("[doors.also]")


def print_plan_changes(rows: pl.DataFrame, console: Console) -> None:
    """A few lines on the plan's or apply's rows: how many were rounded (the first few with
    their message), and the rows on doors ``[doors.also]`` adds, per door and outcome."""
    kept = ~pl.col("outcome").is_in(["rejected", "failed", "skipped"])
    rounded = rows.filter(kept & pl.col("message").str.contains(ROUNDED_NOTE, literal=True))
    if rounded.height:
        console.print(
            f"{rounded.height} row(s) rounded to a user level's times (Seam's one hour; the"
            " message says how each end moved):",
            soft_wrap=True,
        )
        for reservation, door, message in (
            rounded.head(SHOWN).select("reservation_id", "door_name", "message").iter_rows()
        ):
            console.print(
                f"  {escape(reservation)} on {escape(door)}: {escape(message)}", soft_wrap=True
            )
        if rounded.height > SHOWN:
            console.print(f"  and {rounded.height - SHOWN} more", soft_wrap=True)
    if "also_for" not in rows.columns:
        return
    added = rows.filter(pl.col("also_for").is_not_null())
    if added.height:
        per_door = (
            added.group_by(pl.col("door_name").fill_null("(unknown door)"), "outcome")
            .len()
            .sort("door_name", "outcome")
        )
        doors: dict[str, list[str]] = {}
        for door, outcome, count in per_door.iter_rows():
            doors.setdefault(door, []).append(f"{count} {outcome}")
        listed = "; ".join(f"{escape(door)}: {', '.join(parts)}" for door, parts in doors.items())
        console.print(
            f"{added.height} row(s) on the doors {_ALSO} adds to stays: {listed}",
            soft_wrap=True,
        )
