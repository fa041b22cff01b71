"""The nightly job's summary and exit code: quiet unless tonight brought new trouble.

A nightly run (``oracode-provision nightly``: apply, status, report) ends with
``nightly_summary``: a few lines (created tonight, still waiting for a PIN, needing attention,
orphaned, rejected, failed, duplicated, superseded but still valid), what is new with who and
what to do (the report's ``needs_a_person`` line for it), every old code of a changed stay
that still opens its door (each night until its end), and one exit code:
    0  nothing new tonight (known trouble, e.g. last night's orphan, stays quiet)
    1  new trouble: a row rejected or a create failed that wasn't last night (a stay that
       has ended, ``in_the_past``, is counted but never trouble), a code newly
       needing attention, a code newly orphaned (a cancelled guest's PIN still opens the
       door: Oracode codes can't be deleted), a code newly superseded by a changed stay
       (the old PIN still opens the door), a tag newly found on more than one code of its
       door (both PINs open it)
    2, 3  apply or status couldn't do its work (their own exit code, the worse of the two)
"New" is against what the previous summary saw (the ledger's ``known_trouble``): trouble that
went away and comes back is new again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.apply.duplicates import describe, duplicate_table
from pipeline.common.instants import parse_instant
from pipeline.common.reasons import IN_THE_PAST
from pipeline.ledger.store import Ledger
from pipeline.report.fixes import SUPERSEDED
from pipeline.report.people import needs_a_person

# Trouble read from tonight's apply results, and from the ledger.
RESULT_KINDS = ("rejected", "failed")
LEDGER_KINDS = ("attention", "orphaned", "duplicate", SUPERSEDED)
# The kinds in the order the summary lists what is new.
KINDS = ("rejected", "failed", "attention", "orphaned", SUPERSEDED, "duplicate")
# Lines listed before "and N more".
NAMED = 5


# A step's exit code when the job doesn't give it: the step went well.
STEP_EXIT = 0


@dataclass(frozen=True)
class NightlySummary:
    """Tonight's counts, what is new among the trouble, and the two commands' exit codes."""

    created: int | None  # None: no results file to count from
    waiting_for_pin: int
    attention: int
    orphaned: int
    rejected: int | None
    failed: int | None
    new: dict[str, list[str]] = field(default_factory=dict)  # kind → keys new tonight
    apply_exit: int = STEP_EXIT
    status_exit: int = STEP_EXIT
    duplicated: int = 0  # tags on more than one code of their door, window open
    # Old codes of stays that changed, still valid: each said every night until its end.
    superseded: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """The worse of apply's and status's codes from 2 up; else 1 for new trouble, else 0."""
        stopped = [code for code in (self.apply_exit, self.status_exit) if code >= 2]
        if stopped:
            return max(stopped)
        return 1 if any(self.new.values()) else 0

    def lines(self) -> list[str]:
        """The summary as a few lines for a person (or a cron mail)."""

        def count(kind: str, value: int | None, label: str) -> str:
            if value is None:
                return f"? {label} (no results file)"
            fresh = len(self.new.get(kind, []))
            return f"{value} {label}" + (f" ({fresh} new)" if fresh else "")

        created = "?" if self.created is None else str(self.created)
        counted = (
            count("attention", self.attention, "needing attention"),
            count("orphaned", self.orphaned, "orphaned"),
            count("rejected", self.rejected, "rejected"),
            count("failed", self.failed, "failed"),
            count("duplicate", self.duplicated, "duplicated on their door"),
            count(SUPERSEDED, len(self.superseded), "superseded but still valid"),
        )
        lines = [
            f"tonight: {created} created, {self.waiting_for_pin} still waiting for a PIN, "
            + ", ".join(counted)
        ]
        for kind, keys in self.new.items():
            for key in keys[:NAMED]:
                lines.append(f"  new {kind}: {key}")
            if len(keys) > NAMED:
                lines.append(f"  and {len(keys) - NAMED} more new {kind}")
        for text in self.superseded[:NAMED]:
            lines.append(f"  still valid, superseded: {text}")
        if len(self.superseded) > NAMED:
            lines.append(f"  and {len(self.superseded) - NAMED} more still valid, superseded")
        verdict = {0: "nothing new", 1: "new trouble tonight: see the report"}.get(
            self.exit_code, f"apply exit {self.apply_exit}, status exit {self.status_exit}"
        )
        lines.append(f"nightly exit {self.exit_code}: {verdict}")
        return lines


async def nightly_summary(
    ledger: Ledger,
    results: pl.DataFrame | None,
    *,
    now: dt.datetime,
    apply_exit: int = STEP_EXIT,
    status_exit: int = STEP_EXIT,
) -> NightlySummary:
    """Count tonight's outcome from apply's ``results`` (None: apply wrote none) and the
    ledger, and record tonight's trouble as known (``known_trouble``), so that the next
    summary reports only what is new."""
    now_codes = await ledger.trouble_now()

    def open_window(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [row for row in rows if parse_instant(row["ends_at"]) > now]

    attention = now_codes["attention"]
    orphaned = open_window(now_codes["orphaned"])
    waiting = open_window(now_codes["waiting"])
    trouble = [("attention", f"{row['idempotency_tag']}: {_reason(row)}") for row in attention]
    trouble += [
        ("orphaned", f"{row['reservation_id']} [{row['idempotency_tag']}]") for row in orphaned
    ]
    duplicates = await ledger.duplicate_rows(now=now)
    trouble += [("duplicate", describe(row)) for row in duplicates]
    people = needs_a_person(
        await ledger.rows_without_code(),
        await ledger.codes_needing_a_person(),
        duplicate_table(duplicates),
        now=now,
    ).to_dicts()
    superseded = [row for row in people if row["problem"] == SUPERSEDED]
    trouble += [(SUPERSEDED, _code_key(row)) for row in superseded]
    kinds: tuple[str, ...] = LEDGER_KINDS
    counts: dict[str, int | None] = dict.fromkeys(("created", *RESULT_KINDS))
    if results is not None:
        kinds += RESULT_KINDS
        for kind in ("created", *RESULT_KINDS):
            rows = results.filter(pl.col("outcome") == kind)
            counts[kind] = rows.height
            if kind in RESULT_KINDS:
                # A stay that has ended needs no one: a full export's past bookings (each one
                # new the night after its check-out) are counted, never trouble.
                live = rows.filter(pl.col("reason").fill_null("") != IN_THE_PAST)
                trouble += [(kind, _row_key(row)) for row in live.to_dicts()]
    new = await ledger.note_trouble(trouble, kinds)
    return NightlySummary(
        created=counts["created"],
        waiting_for_pin=len(waiting),
        attention=len(attention),
        orphaned=len(orphaned),
        rejected=counts["rejected"],
        failed=counts["failed"],
        new={
            kind: [_said(kind, key, people) for key in sorted(key for k, key in new if k == kind)]
            for kind in KINDS
            if any(k == kind for k, _ in new)
        },
        apply_exit=apply_exit,
        status_exit=status_exit,
        duplicated=len(duplicates),
        superseded=[_code_text(row) for row in superseded],
    )


def _code_key(row: dict[str, Any]) -> str:
    """An orphaned or superseded code, the same each night."""
    return f"{row['reservation_id']} [{row['idempotency_tag']}]"


def _said(kind: str, key: str, people: list[dict[str, Any]]) -> str:
    """What the summary says of new trouble: its key, then who and what to do (from the
    report's ``needs_a_person`` line for it, when there is one)."""
    problem = "needs_attention" if kind == "attention" else kind
    for row in people:
        if row["problem"] != problem:
            continue
        if kind in ("orphaned", SUPERSEDED) and key == _code_key(row):
            return _code_text(row)
        if kind == "attention" and key == f"{row['idempotency_tag']}: {row['reason']}":
            return f"{key}: {_who(row)}; {row['fix']}"
        if kind in RESULT_KINDS and key == _row_key(row):
            guest = f" ({row['guest_name']})" if row["guest_name"] else ""
            return f"{key}{guest}: {row['fix']}"
    return key


def _code_text(row: dict[str, Any]) -> str:
    """An orphaned or superseded code: who, where, its window and code, and what to do."""
    code = row["access_code_id"] or "(its create's answer was lost)"
    return f"{_who(row)}, {row['check_in']} → {row['check_out']}, code {code}: {row['fix']}"


def _who(row: dict[str, Any]) -> str:
    """``R1 (Ana Ruiz) on Room 101``: the reservation, its guest and its door."""
    guest = f" ({row['guest_name']})" if row["guest_name"] else ""
    door = row["door_name"] or row["device_id"] or "(no door)"
    return f"{row['reservation_id']}{guest} on {door}"


def read_results(path: Path | None) -> pl.DataFrame | None:
    """Apply's results file (CSV, Parquet or JSONL), or None when there is none (apply
    stopped before writing it)."""
    if path is None or not path.is_file():
        return None
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pl.read_parquet(path)
    if suffix == ".jsonl":
        return pl.read_ndjson(path)
    return pl.read_csv(path, infer_schema=False)


def _reason(row: dict[str, Any]) -> str:
    """The reason code of a ``needs_attention`` text (``seam_error: ...`` → ``seam_error``)."""
    return str(row["needs_attention"]).split(":", 1)[0]


def _row_key(row: dict[str, Any]) -> str:
    """A rejected or failed row, the same each night it fails the same way."""
    door = row.get("door_name") or row.get("device_id") or "(no door)"
    return f"{row.get('reservation_id')} on {door}: {row.get('reason')}"
