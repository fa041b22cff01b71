"""The guest → PIN hand-off: one row per reservation and door of the latest input, with the PIN
when it may be sent, and a row saying why for each guest the latest apply run gave no code.

Read from the ledger alone (what ``apply``, ``status`` and the webhook receiver recorded): a
code whose reservation left the export or was cancelled there (orphaned) is never listed, nor
one replaced by a reissued code (a moved stay lists its current code only), nor one whose
window has ended; a cancelled or excluded reservation never has a row. A cancelled guest must
never be sent a PIN, and a guest without a code must never drop out of sight.

A row is ``ready`` when its PIN is known, the code is set on the lock or due to be (``set``,
``setting``, ``unset``: Oracode codes are generated on create and set shortly before
check-in), and neither Seam nor ``status`` reports a problem with it; otherwise
``why_not_ready`` says why, the reason first (snake_case), and what to do
(``; fix: ...``, ``report.fixes``) where a person has to act:
    rejected           the latest apply run rejected the row (the plan's or apply's reason and
                       message follow): no code was made
    failed             its create failed (Seam's error type, ``not_attempted``, ...)
    outcome_unknown    the create's answer was lost; the next apply looks for it on the door
    needs_attention    ``status`` or a webhook flagged it (seam_error, not_set_in_time,
                       missing_on_seam, pin_changed, ...)
    seam_error         Seam reports an error on it
    no_pin_yet         Seam hasn't assigned the PIN yet (run status, or wait for the webhook)
    status_<status>    the code is in a status in which it doesn't open the door
A ``needs_attention: pin_changed`` row names both PINs: the one recorded, and the one a webhook
event gave since. ``warning`` says what a person should know of a PIN that may be sent:
``duplicate_on_door`` when more than one code on the door carries the reservation's tag, with
each code's PIN (every one opens the door until the window ends); ``other_door_not_ready`` when
another door of the same stay (a group's other room, the building's entrance) has no ready
code, naming it and why: send the PINs together, once every door of the stay is ready.

``check_in`` / ``check_out`` are the code's window on the lock's clock with its offset (for a
row without a code: its planned window, else the booking's times as the export gave them);
``check_in_local`` / ``check_out_local`` the same for a message (``[pins] time_format``,
``Fri 26 Mar 2027 15:00``; ``date_format`` for a booking given by its dates only).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any, BinaryIO

import polars as pl

from pipeline.apply.duplicates import describe
from pipeline.common.csvfiles import write_csv
from pipeline.common.errors import UsageError
from pipeline.common.instants import as_instant, parse_instant
from pipeline.common.job_settings import PinsConfig
from pipeline.common.outputs import (
    check_file_extension,
    check_output_folder,
    default_output_path,
    write_private,
)
from pipeline.common.reasons import DUPLICATE_ON_DOOR, IN_THE_PAST, OUTCOME_UNKNOWN
from pipeline.ledger.events import PIN_CHANGED
from pipeline.ledger.store import Ledger
from pipeline.report.fixes import fix_for

PIN_FORMATS = ("csv", "parquet", "json")
PIN_COLUMNS = {
    "reservation_id": pl.String,
    "guest_name": pl.String,
    "door_name": pl.String,
    "site_name": pl.String,
    "check_in": pl.String,  # the code's starts_at: the lock's local time with its offset
    "check_out": pl.String,  # the code's ends_at, likewise
    "check_in_local": pl.String,  # check_in for a message: ``[pins] time_format``
    "check_out_local": pl.String,
    "code": pl.String,
    "code_status": pl.String,
    "ready": pl.Boolean,
    "why_not_ready": pl.String,
    "access_code_id": pl.String,
    "changed_at": pl.String,  # when the PIN or status last changed (UTC)
    "warning": pl.String,  # duplicate_on_door, other_door_not_ready (see the docstring)
}
# Code statuses in which the code opens its door or is due to (Seam sets it before starts_at).
USABLE_STATUSES = frozenset({"set", "setting", "unset"})
# States of a code that may exist on its door; a ``pending`` or ``failed`` code of the latest
# input is listed from the latest run's rows without a code instead (``without_code``).
MAY_EXIST = ("created", "sending")
# The warning on a ready row whose stay has another door without a ready code.
OTHER_DOOR = "other_door_not_ready"
# The reason at the head of ``why_not_ready``: ``rejected: unknown_device``, ``no_pin_yet``.
# Reason codes are snake_case words that a colon, a semicolon or the end follows.
_REASON = re.compile(r"[a-z0-9_]+(?:: [a-z0-9_]+(?=[:;]|$))?")


async def hand_off(
    ledger: Ledger,
    *,
    now: dt.datetime,
    ready_only: bool = False,
    changed_since: dt.datetime | None = None,
    formats: PinsConfig | None = None,
) -> pl.DataFrame:
    """The hand-off table (``pin_table``) from what ``ledger`` holds now."""
    rows = await ledger.pin_rows()
    doubled = await ledger.duplicate_rows(now=now)
    without = await ledger.rows_without_code()
    return pin_table(
        rows,
        now=now,
        ready_only=ready_only,
        changed_since=changed_since,
        duplicates=doubled,
        without=without,
        formats=formats,
    )


def pin_table(
    rows: list[dict[str, Any]],
    *,
    now: dt.datetime,
    ready_only: bool = False,
    changed_since: dt.datetime | None = None,
    duplicates: list[dict[str, Any]] | None = None,
    without: list[dict[str, Any]] | None = None,
    formats: PinsConfig | None = None,
) -> pl.DataFrame:
    """The hand-off table (``PIN_COLUMNS``) from the ledger's ``pin_rows`` (the codes that
    exist or may exist) and ``without`` (its ``rows_without_code``: the latest run's rows that
    got none), ordered by check-in: codes and rows whose window has ended are left out; with
    ``ready_only`` only ready rows, with ``changed_since`` only rows whose PIN, status or
    reason changed at or after that instant. ``duplicates``: the ledger's ``duplicate_rows``,
    said in ``warning`` with every PIN."""
    formats = formats or PinsConfig()
    doubled = {
        row["idempotency_tag"]: f"{DUPLICATE_ON_DOOR}: {describe(row, with_pins=True)}"
        for row in duplicates or []
    }
    codes = [row for row in rows if row["state"] in MAY_EXIST]
    tags = {row["idempotency_tag"] for row in codes}
    listed = [_code_row(row, doubled, now) for row in codes]
    listed += [
        _row_without_code(row, now) for row in without or [] if row["idempotency_tag"] not in tags
    ]
    present = [row for row in listed if row is not None]
    warn_of_other_doors(present)
    table = []
    for row in present:
        changed_at = row["changed_at"]
        if changed_since is not None and (changed_at is None or changed_at < changed_since):
            continue
        if ready_only and not row["ready"]:
            continue
        table.append(
            row
            | {
                "check_in_local": local_time(row["check_in"], formats),
                "check_out_local": local_time(row["check_out"], formats),
                "changed_at": None if changed_at is None else changed_at.isoformat(),
            }
        )
    # By the check-in's date and time on the lock's clock (the offsets aside: a booking without
    # a code may have none), then reservation and door.
    table.sort(
        key=lambda row: (
            (row["check_in"] or "")[:16],
            row["reservation_id"] or "",
            row["door_name"] or "",
        )
    )
    return pl.DataFrame(table, schema=PIN_COLUMNS)


def warn_of_other_doors(rows: list[dict[str, Any]]) -> None:
    """Say on each ready row which other doors of its stay aren't ready (``OTHER_DOOR``): a
    guest sent a room's PIN alone would stand at the entrance without one, and a hand-off of
    ready rows only would never show the entrance's row."""
    not_ready: dict[str, list[tuple[str | None, str]]] = {}
    for row in rows:
        if not row["ready"] and row["reservation_id"] is not None:
            reason = _REASON.match(row["why_not_ready"] or "")
            said = f"{row['door_name'] or row['site_name'] or 'a door'} ({reason and reason[0]})"
            not_ready.setdefault(row["reservation_id"], []).append((row["door_name"], said))
    for row in rows:
        listed = not_ready.get(row["reservation_id"], []) if row["ready"] else []
        # Not its own door: a stay's older code there, replaced or not, is another matter.
        others = [said for door, said in listed if door != row["door_name"]]
        if others:
            warning = f"{OTHER_DOOR}: this stay has no ready code on {'; '.join(others)}"
            row["warning"] = "; ".join(filter(None, (row["warning"], warning)))


def _code_row(
    row: dict[str, Any], doubled: dict[str, str], now: dt.datetime
) -> dict[str, Any] | None:
    """A code that exists or may exist, as the hand-off lists it (None: its window has ended)."""
    if parse_instant(row["ends_at"]) <= now:
        return None
    why = why_not_ready(row)
    return {
        "reservation_id": row["reservation_id"],
        "guest_name": row["guest_name"] or guest_from_name(row),
        "door_name": row["door_name"],
        "site_name": row["site_name"],
        "check_in": row["starts_at"],
        "check_out": row["ends_at"],
        "code": row["code"] if row["state"] == "created" else None,
        "code_status": row["code_status"],
        "ready": why is None,
        "why_not_ready": why,
        "access_code_id": row["access_code_id"],
        "changed_at": max(
            (parse_instant(at) for at in (row["updated_at"], row["status_changed_at"]) if at),
            default=None,
        ),
        "warning": doubled.get(row["idempotency_tag"]),
    }


def _row_without_code(row: dict[str, Any], now: dt.datetime) -> dict[str, Any] | None:
    """A row of the latest input that got no code (``rows_without_code``), as the hand-off
    lists it: never ready, why first (``rejected: <reason>: <message>; fix: ...``). None for a
    stay that has ended, which needs no code (a full export holds past stays too)."""
    if stay_has_ended(row, now):
        return None
    reason = row["reason"]
    why = "; ".join(
        part
        for part in (
            ": ".join(str(part) for part in (row["outcome"], reason, row["message"]) if part),
            f"fix: {fix_for(reason, outcome=row['outcome'])}",
        )
    )
    return {
        "reservation_id": row["reservation_id"],
        "guest_name": row["guest_name"],
        "door_name": row["door_name"],
        "site_name": row["site_name"],
        "check_in": row["check_in"],
        "check_out": row["check_out"],
        "code": None,
        "code_status": None,
        "ready": False,
        "why_not_ready": why,
        "access_code_id": None,
        "changed_at": parse_instant(row["recorded_at"]),
        "warning": None,
    }


def stay_has_ended(row: dict[str, Any], now: dt.datetime) -> bool:
    """Whether a row without a code (``rows_without_code``) is of a stay that has ended: it is
    ``in_the_past``, or its check-out is an instant before ``now`` (a booking on no known door
    may have only its local time, which can't tell)."""
    ends = as_instant(row["check_out"])
    return row["reason"] == IN_THE_PAST or (ends is not None and ends <= now)


def local_time(value: str | None, formats: PinsConfig) -> str | None:
    """``value`` (ISO text: a window end with its offset, a local time, or a date) on its own
    clock, as ``formats`` writes it for a message; None when it isn't ISO text."""
    if not value:
        return None
    try:
        instant = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    is_date = "T" not in value and " " not in value.strip()
    return instant.strftime(formats.date_format if is_date else formats.time_format)


def why_not_ready(row: dict[str, Any]) -> str | None:
    """Why a guest can't be sent this code's PIN yet (None: it can); see the module's list."""
    state = row["state"]
    if state in ("pending", "failed"):
        detail = ": ".join(part for part in (row["reason"], row["message"]) if part)
        return "not_created" + (f": {detail}" if detail else ": not sent yet")
    if state == "sending":
        return (
            f"{OUTCOME_UNKNOWN}: the create's answer was lost; the next apply looks for it;"
            f" fix: {fix_for(OUTCOME_UNKNOWN)}"
        )
    if row["needs_attention"]:
        both = ""
        if row["needs_attention"].startswith(PIN_CHANGED) and row.get("reported_code"):
            both = f" (recorded PIN {row['code']}, the event's PIN {row['reported_code']})"
        fix = fix_for(row["needs_attention"])
        return f"needs_attention: {row['needs_attention']}{both}; fix: {fix}"
    errors = json.loads(row["code_errors"] or "[]")
    if errors:
        return (
            "seam_error: "
            + "; ".join(f"{error.get('error_code')}: {error.get('message')}" for error in errors)
            + f"; fix: {fix_for('seam_error')}"
        )
    if row["code"] is None:
        return "no_pin_yet: Seam hasn't assigned the PIN yet"
    if row["code_status"] not in USABLE_STATUSES:
        return f"status_{row['code_status'] or 'unknown'}"
    return None


def guest_from_name(row: dict[str, Any]) -> str | None:
    """For codes apply recorded no guest name for (earlier releases): the guest's name out of
    a code name made by the default template ``{reservation_id} {guest_name} [{tag}]``; None
    when the name doesn't have that shape."""
    name, head, tail = (
        row["name"] or "",
        f"{row['reservation_id']} ",
        f" [{row['idempotency_tag']}]",
    )
    if not (name.startswith(head) and name.endswith(tail)) or len(name) <= len(head) + len(tail):
        return None
    return name[len(head) : -len(tail)].strip() or None


def check_pins_out(out: Path | None, fmt: str | None) -> tuple[Path | None, str]:
    """The format to write (``--format``, else ``--out``'s extension, else csv), after
    refusing (UsageError, exit 2) a format we don't write, an ``--out`` whose extension says
    another, or one that can't be written; before the ledger is read."""
    suffix = out.suffix.lower().lstrip(".") if out is not None else ""
    chosen = fmt or (suffix if suffix in PIN_FORMATS else "csv")
    if chosen not in PIN_FORMATS:
        raise UsageError(f"--format {chosen} is not one of {', '.join(PIN_FORMATS)}")
    if out is not None:
        if suffix in PIN_FORMATS and suffix != chosen:
            raise UsageError(
                f"--out {out} says {suffix} but --format is {chosen}",
                hint="give the file the format's extension",
            )
        if out.is_dir():
            raise UsageError(f"--out {out} is a folder", hint="give the path of a file")
        check_file_extension(out, chosen)
        check_output_folder(out.parent)
    return out, chosen


def write_pins(table: pl.DataFrame, fmt: str, out: Path | None, *, now: dt.datetime) -> Path:
    """Write the hand-off table atomically, mode 0600 (it holds PINs); ``out`` defaults to
    ``outputs/pins-<UTC time>.<fmt>``. Raises UsageError (exit 2) when it can't be written."""
    out = out or default_output_path("pins", now=now).with_suffix(f".{fmt}")

    def write(stream: BinaryIO) -> None:
        if fmt == "csv":
            write_csv(table, stream)
        elif fmt == "parquet":
            table.write_parquet(stream)
        else:
            stream.write(json.dumps(table.to_dicts(), indent=1).encode())

    try:
        return write_private(out, write)
    except OSError as exc:
        raise UsageError(f"the pins can't be written to {out}: {exc.strerror or exc}") from exc
