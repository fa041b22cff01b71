"""Reason codes, every one the pipeline gives a row, and the one way a stage gives one.

A row keeps the first reason it is given; later stages only look at rows still open. The codes
are written to the results and the ledger, so their strings never change.
"""

from __future__ import annotations

import polars as pl

# The plan (``planner``, ``levels``, ``windows``): rejected unless noted.
BLANK_ROW = "blank_row"  # skipped: a row with no values at all
EXCLUDED = "excluded"  # skipped: an ``[input.skip]`` value (e.g. a cancelled booking)
INVALID_ROW = "invalid_row"  # a required value is empty or unparseable (the column is named)
DUPLICATE_RESERVATION = "duplicate_reservation"  # skipped: an identical copy of an earlier row
# The same reservation_id with different content (every copy is rejected).
DUPLICATE_RESERVATION_CONFLICT = "duplicate_reservation_conflict"
UNKNOWN_DEVICE = "unknown_device"  # no Oracode door has the row's device_id or door name
AMBIGUOUS_DEVICE = "ambiguous_device"  # several doors have the row's door name
OFFLINE_CODES_NOT_SUPPORTED = "offline_codes_not_supported"  # the door can't program offline
UNKNOWN_TIME_ZONE = "unknown_time_zone"  # neither the door nor its level names a zone we know
UNKNOWN_USER_LEVEL = "unknown_user_level"  # the named (or default) level isn't on the door
# The row's level is a master level, or one-time-use: Seam can't create those codes.
MASTER_USER_LEVEL_UNSUPPORTED = "master_user_level_unsupported"
ONE_TIME_USE_UNSUPPORTED = "one_time_use_unsupported"
# The row names a level and gives check-in/check-out times that differ from it.
USER_LEVEL_TIMES_MISMATCH = "user_level_times_mismatch"
# No guest level of the door fits the row's times (or, without times, its stay's length).
NO_MATCHING_USER_LEVEL = "no_matching_user_level"
# Several levels fit, and the row names none and no default is configured.
AMBIGUOUS_USER_LEVEL = "ambiguous_user_level"
NONEXISTENT_LOCAL_TIME = "nonexistent_local_time"  # the window's start or end is in a DST gap
INVALID_WINDOW = "invalid_window"  # ends_at is not after starts_at
DURATION_EXCEEDS_31_DAYS = "duration_exceeds_31_days"  # longer than a lock accepts
BIWEEKLY_NEEDS_14_DAYS = "biweekly_needs_14_days"  # a biweekly level with a stay of other length
# A 24-hour (daily-bound) level whose check-in and check-out times differ.
DAILY_BOUND_TIMES_DIFFER = "daily_bound_times_differ"
IN_THE_PAST = "in_the_past"  # ends_at is not in the future

# The budget (``budget``): rejected.
# Past the door's budget when planned or counted again, or Seam said the door is full.
BUDGET_EXHAUSTED = "budget_exhausted"

# Reruns (``apply.reruns``).
# Rejected: the reservation moved (door or window) since its code was made; codes can't be
# deleted, so none is made unless --reissue-changed.
CHANGED_AFTER_CREATION = "changed_after_creation"

# Apply (``apply``): in the results and the ledger.
FOUND_ON_DOOR = "found_on_door"  # already_created: the look found a code carrying the tag
ADOPTED = "adopted"  # created: found on the door after the create's answer was lost
# failed: the run stopped before the code was created (the next run creates it).
NOT_ATTEMPTED = "not_attempted"
# failed: the run stopped before the create's outcome was known (the next run looks first).
OUTCOME_UNKNOWN = "outcome_unknown"
# failed: the door couldn't be looked at, so none of its codes was sent.
DOOR_NOT_LOOKED_AT = "door_not_looked_at"
# created / already_created: more than one code on the door carries the row's tag (a create
# carried out later than its settle time, or two runs that didn't exclude each other): both
# PINs open the door until the window ends, and each code takes a place on it for good.
DUPLICATE_ON_DOOR = "duplicate_on_door"
# In the ledger only (a code is ``pending`` again; failed/rejected rows carry Seam's error type).
CREATED = "created"  # created: Seam's answer to this run's create described the code
RATE_LIMITED = "rate_limited"  # pending: Seam answered 429, the create is queued again
NOT_FOUND = "not_found"  # pending: a code left sending, settled, and not on its door
# pending: the create never left this machine (the Seam client's error type for it).
CONNECT_FAILED = "connect_failed"


def reject(frame: pl.DataFrame, condition: pl.Expr, reason: str, message: pl.Expr) -> pl.DataFrame:
    """Give ``reason`` to the rows that meet ``condition`` and have no reason yet.

    The message is only built for the rows hit (usually few), then scattered into place.
    """
    hit = frame.select(pl.col("reason").is_null() & condition.fill_null(False)).to_series()
    positions = hit.arg_true()
    if positions.len() == 0:
        return frame
    messages = frame.filter(hit).select(message.cast(pl.String)).to_series()
    return frame.with_columns(
        frame["reason"].scatter(positions, reason),
        frame["message"].scatter(positions, messages),
    )


def note(frame: pl.DataFrame, condition: pl.Expr, message: pl.Expr) -> pl.DataFrame:
    """Give ``message`` to the rows that meet ``condition`` and have no reason yet, leaving them
    open (a planned row's message says what the plan changed, e.g. a rounded window); a reason
    given later replaces it. Built only for the rows hit, as in ``reject``."""
    hit = frame.select(pl.col("reason").is_null() & condition.fill_null(False)).to_series()
    positions = hit.arg_true()
    if positions.len() == 0:
        return frame
    messages = frame.filter(hit).select(message.cast(pl.String)).to_series()
    return frame.with_columns(frame["message"].scatter(positions, messages))


def is_open() -> pl.Expr:
    """Rows no stage has given a reason yet."""
    return pl.col("reason").is_null()


def text(value: str) -> pl.Expr:
    """A string literal, typed, for messages and reason columns."""
    return pl.lit(value, pl.String)
