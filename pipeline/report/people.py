"""Who needs a person: every reservation a person has to act on, one line per reservation, door
and problem, with the guest, the window, what is wrong and the fix (``report.fixes``).

Problems, in the order they are listed (a guest without a working code first):
    rejected          the latest apply run rejected the row: no code was made
    failed            its create failed (Seam refused it, or the run stopped first)
    outcome_unknown   a create's answer was lost: the code may exist; the next apply looks
    needs_attention   ``status`` or a webhook flagged the code (Seam's error, not set in time)
    duplicated        its tag is on more than one code of its door: both PINs open it
    orphaned          the code's booking left the export (cancelled, or moved to another door)
                      but the code opens the door until its end: codes can't be deleted
    superseded        the stay changed; its old code still opens the door until its end
A stay that has ended needs no one (a rejected row whose window has passed, a code whose
window has ended, are left out): the report lists what can still be done something about.

``needs_a_person`` is the one place this list is made: the report's ``needs_a_person``
section (every format), its exit code, and any page that shows the report read it there.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from pipeline.common.instants import parse_instant
from pipeline.common.reasons import OUTCOME_UNKNOWN
from pipeline.report.fixes import ORPHANED, SUPERSEDED, fix_for
from pipeline.report.pins import guest_from_name, stay_has_ended

# What the report says when the list is empty, in every form it takes.
NOBODY = "Nobody needs a person: every guest of the latest input has a working code"
REJECTED, FAILED = "rejected", "failed"
NEEDS_ATTENTION, DUPLICATED = "needs_attention", "duplicated"
PROBLEMS = (REJECTED, FAILED, OUTCOME_UNKNOWN, NEEDS_ATTENTION, DUPLICATED, ORPHANED, SUPERSEDED)
NEEDS_A_PERSON_SCHEMA = {
    "problem": pl.String,
    "reservation_id": pl.String,
    "guest_name": pl.String,
    "device_id": pl.String,
    "site_name": pl.String,
    "door_name": pl.String,
    "check_in": pl.String,  # the code's window (its lock's offset), else the booking's times
    "check_out": pl.String,
    "reason": pl.String,  # the reason code (snake_case)
    "message": pl.String,  # what is wrong, in words
    "fix": pl.String,
    "access_code_id": pl.String,  # the code concerned (a duplicate: every one, ours first)
    "idempotency_tag": pl.String,
    "source_file": pl.String,  # a row without a code: where it is in the input
    "source_line": pl.Int64,
}


def needs_a_person(
    without: list[dict[str, Any]],
    codes: list[dict[str, Any]],
    duplicates: pl.DataFrame,
    *,
    now: dt.datetime,
) -> pl.DataFrame:
    """The reservations a person has to act on (``NEEDS_A_PERSON_SCHEMA``), from the ledger's
    ``rows_without_code`` and ``codes_needing_a_person``, and the report's duplicates
    (``duplicate_table``, windows open); ``now`` decides which stays have ended. Ordered by
    problem (``PROBLEMS``), check-in and reservation."""
    lines: list[dict[str, Any]] = []
    unknown = {code["idempotency_tag"] for code in codes if code["state"] == "sending"}
    for row in without:
        # A lost answer is a code that may exist: said once, as outcome_unknown.
        if row["idempotency_tag"] in unknown or stay_has_ended(row, now):
            continue
        lines.append(_without_code(row))
    guests = {code["idempotency_tag"]: _guest(code) for code in codes}
    for code in codes:
        if parse_instant(code["ends_at"]) > now:
            lines.extend(_code_problems(code))
    for row in duplicates.iter_rows(named=True):
        tag = row["idempotency_tag"]
        row |= {"guest_name": guests.get(tag), "check_in": row["starts_at"]}
        row["check_out"] = row["ends_at"]
        lines.append(
            _line(
                DUPLICATED, row, row["reason"], row["problem"], row["fix"], row["access_code_ids"]
            )
        )
    rank = {problem: place for place, problem in enumerate(PROBLEMS)}
    lines.sort(
        key=lambda line: (
            rank[line["problem"]],
            (line["check_in"] or "")[:16],
            line["reservation_id"] or "",
            line["door_name"] or "",
            line["idempotency_tag"] or "",
        )
    )
    return pl.DataFrame(lines, schema=NEEDS_A_PERSON_SCHEMA)


def _without_code(row: dict[str, Any]) -> dict[str, Any]:
    """A row of the latest input that got no code."""
    outcome = row["outcome"]
    return _line(
        outcome,
        row,
        reason=row["reason"],
        message=row["message"],
        fix=fix_for(row["reason"], outcome=outcome),
        access_code_id=None,
        source_file=row["source_file"],
        source_line=row["source_line"],
    )


def _code_problems(code: dict[str, Any]) -> list[dict[str, Any]]:
    """What a person has to do about a code whose window is open: one line per problem."""
    row = code | {"check_in": code["starts_at"], "check_out": code["ends_at"]}
    row["guest_name"] = _guest(code)
    until = code["ends_at"]
    ours = code["access_code_id"]
    shown = ours or "(its create's answer was lost)"
    lines = []
    if code["orphaned_run_id"] is not None:
        message = (
            f"code {shown} is no longer any booking's on this door (since run"
            f" {code['orphaned_run_id']}); it opens the door until {until}"
        )
        lines.append(_line(ORPHANED, row, ORPHANED, message, fix_for(ORPHANED, until=until), ours))
    elif code["superseded_run_id"] is not None:
        new = code["replaced_by"]
        then = (
            f"; replaced by code {new} for {code['replaced_by_starts_at']} →"
            f" {code['replaced_by_ends_at']}"
            if new
            else "; no new code was made for the changed stay"
        )
        message = f"code {shown} still valid until {until}{then}"
        fix = fix_for(SUPERSEDED, until=until)
        lines.append(_line(SUPERSEDED, row, SUPERSEDED, message, fix, ours))
    elif code["state"] == "sending":
        message = (
            "the create's answer was lost: the code may be on the door; the next apply looks for"
            " it before sending again"
        )
        lines.append(
            _line(OUTCOME_UNKNOWN, row, OUTCOME_UNKNOWN, message, fix_for(OUTCOME_UNKNOWN), ours)
        )
    attention = code["needs_attention"]
    if code["state"] == "created" and attention is not None:
        reason = attention.split(":", 1)[0].strip()
        lines.append(_line(NEEDS_ATTENTION, row, reason, attention, fix_for(attention), ours))
    return lines


def _line(
    problem: str,
    row: dict[str, Any],
    reason: str | None,
    message: str | None,
    fix: str,
    access_code_id: str | None,
    source_file: str | None = None,
    source_line: int | None = None,
) -> dict[str, Any]:
    return {
        "problem": problem,
        **{name: row.get(name) for name in ("reservation_id", "guest_name", "device_id")},
        **{name: row.get(name) for name in ("site_name", "door_name", "check_in", "check_out")},
        "reason": reason,
        "message": message,
        "fix": fix,
        "access_code_id": access_code_id,
        "idempotency_tag": row.get("idempotency_tag"),
        "source_file": source_file,
        "source_line": source_line,
    }


def _guest(code: dict[str, Any]) -> str | None:
    return code.get("guest_name") or guest_from_name(code)
