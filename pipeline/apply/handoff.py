"""What an apply run leaves in the ledger for the hand-off (``pins``) and the report: each
code's guest, and the rows that got no code, with their guest and booked window.

The plan keeps neither the guest's name nor the booking's own times (a rejected row may have
no window); both come from the rows as read, by their place in the input (``source_file``,
``source_line``), which every result row keeps, the rows ``[doors.also]`` adds included.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import polars as pl

from pipeline.ledger.store import Ledger

INPUT_PLACE = ("source_file", "source_line")
# Outcomes that leave a guest without a code (``rejected``, ``failed``).
WITHOUT_CODE = ("rejected", "failed")


def handoff_rows(
    results: pl.DataFrame, reservations: pl.DataFrame
) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """``(idempotency_tag, guest_name)`` of the result rows that have both, and the rows
    without a code, each with its guest and window (the code's when it was planned, else the
    booking's check-in and check-out as read), for ``Ledger.record_without_code``."""
    booked = reservations.select(
        *INPUT_PLACE,
        "guest_name",
        booked_in=pl.col("check_in"),
        booked_out=pl.col("check_out"),
    ).unique(INPUT_PLACE, keep="first")  # a file given twice holds each line twice
    joined = results.join(booked, on=list(INPUT_PLACE), how="left")
    guests = (
        joined.filter(pl.col("idempotency_tag").is_not_null() & pl.col("guest_name").is_not_null())
        .unique("idempotency_tag", keep="last", maintain_order=True)
        .select("idempotency_tag", "guest_name")
        .rows()
    )
    without = joined.filter(pl.col("outcome").is_in(WITHOUT_CODE)).select(
        "reservation_id",
        "device_id",
        "door_name",
        "site_name",
        "guest_name",
        check_in=pl.coalesce("starts_at", "booked_in"),
        check_out=pl.coalesce("ends_at", "booked_out"),
        outcome="outcome",
        reason="reason",
        message="message",
        idempotency_tag="idempotency_tag",
        also_for="also_for",
        source_file="source_file",
        source_line="source_line",
    )
    return guests, without.to_dicts()


async def record_handoff(
    ledger: Ledger, run_id: str, results: pl.DataFrame, reservations: pl.DataFrame
) -> None:
    """Record the run's guests (``Ledger.record_guests``) and its rows without a code
    (``Ledger.record_without_code``, replacing the previous run's)."""
    guests, without = await anyio.to_thread.run_sync(handoff_rows, results, reservations)
    await ledger.record_guests(guests)
    await ledger.record_without_code(run_id, without)
