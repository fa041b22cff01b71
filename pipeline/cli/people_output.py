"""Printing who needs a person (``report.people``) on the terminal, as the report's first
table: what is wrong and what to do, reservation by reservation."""

from __future__ import annotations

import polars as pl
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipeline.report.people import NOBODY

# Lines shown before "and N more".
SHOWN = 50


def print_needs_a_person(people: pl.DataFrame, console: Console) -> None:
    """The ``needs_a_person`` section: one row per reservation, door and problem, with the
    guest, the window, why and the fix; or one line saying nobody does."""
    if people.is_empty():
        console.print(NOBODY)
        return
    table = Table(title=f"Who needs a person ({people.height}): what is wrong, and what to do")
    for column in ("problem", "reservation", "guest", "door", "window", "why", "fix"):
        table.add_column(column)
    for row in people.head(SHOWN).iter_rows(named=True):
        door = row["door_name"] or row["device_id"] or "(no door given)"
        window = " → ".join(part for part in (row["check_in"], row["check_out"]) if part)
        why = ": ".join(part for part in (row["reason"], row["message"]) if part)
        table.add_row(
            row["problem"],
            escape(row["reservation_id"] or f"line {row['source_line']}"),
            escape(row["guest_name"] or ""),
            escape(f"{row['site_name']} / {door}" if row["site_name"] else door),
            window,
            escape(why),
            escape(row["fix"]),
        )
    if people.height > SHOWN:
        table.caption = f"and {people.height - SHOWN} more: use --format csv or json"
    console.print(table)
