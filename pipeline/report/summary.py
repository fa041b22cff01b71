"""The report: what the runs did and what needs a person, from the ledger alone (no Seam call).

Sections (one table each; ``--format csv|parquet`` writes one file per section):
    needs_a_person  every reservation a person has to act on, with the guest, the window,
               the reason and the fix (``report.people``); the report exits 1 while there is
               one
    runs       the latest runs, newest first: command, times, exit code, and rows per outcome
               (``apply``) or codes checked and needing attention (``status``)
    outcomes   per run (those listed, and the doors' run) and door: input rows by outcome and
               reason
    doors      per door, for one apply run (the latest by default): its rows by outcome, the
               rejected and failed ones by reason, the door's budget (used before the run,
               after it, left, room for a next run, the share used and whether that is near
               full: ``budget.limits``' own), and the door's codes in the ledger now by
               status, with how many need attention or are orphaned
    attention  codes a person should look at, with ``status``'s reason
    orphaned   codes whose reservation was absent from an apply run's inputs (and hasn't come
               back since) and whose window hasn't ended: codes can't be deleted, so a person
               decides what to do (the guest or the door may need watching)
    duplicates tags on more than one code of their door (``duplicate_on_door``) whose window
               hasn't ended: the reservation, the door, the codes (never a PIN), and the fix

Apply runs leave their per-door summary in the ledger (``run_summary``, ``record_apply``) and
mark the orphans; the report reads what they left.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import polars as pl

from pipeline.apply.duplicates import duplicate_table
from pipeline.apply.run import OUTCOMES
from pipeline.budget.limits import BudgetCheck, budget_usage, is_near_full, iso_instant
from pipeline.common.errors import UsageError
from pipeline.common.reasons import EXCLUDED
from pipeline.ledger.runs import RUN_COLUMNS, ReportRows
from pipeline.ledger.store import STAY_COLUMNS, Ledger
from pipeline.report.people import NEEDS_A_PERSON_SCHEMA, needs_a_person

CODE_STATUSES = ("set", "setting", "unset")
SECTIONS = ("needs_a_person", "runs", "outcomes", "doors", "attention", "orphaned", "duplicates")
DEFAULT_RUNS = 20
RUN_COUNTS = (*OUTCOMES, "checked", "needs_attention")

RUN_SCHEMA = {
    "run_id": pl.String,
    "command": pl.String,
    "started_at": pl.String,
    "finished_at": pl.String,
    "exit_code": pl.Int64,
    "host": pl.String,
    "pid": pl.Int64,
    **dict.fromkeys(RUN_COUNTS, pl.Int64),
}
OUTCOME_SCHEMA = {
    "run_id": pl.String,
    "device_id": pl.String,
    "door_name": pl.String,
    "site_name": pl.String,
    "matched": pl.Boolean,
    "outcome": pl.String,
    "reason": pl.String,
    "rows": pl.Int64,
}
BUDGET_SCHEMA = {
    "device_id": pl.String,
    "mode": pl.String,
    "budget": pl.Int64,
    "budget_source": pl.String,
    "reserve": pl.Int64,
    "used": pl.Int64,
    "after": pl.Int64,
}
CODES_NOW_SCHEMA = {
    "device_id": pl.String,
    "door_name": pl.String,
    "site_name": pl.String,
    **dict.fromkeys(CODE_STATUSES, pl.Int64),
    "other_status": pl.Int64,
    "outcome_unknown": pl.Int64,
    "needs_attention": pl.Int64,
}
LISTED_CODE_COLUMNS = (
    *STAY_COLUMNS,
    "state",
    "access_code_id",
    "code_status",
    "idempotency_tag",
)
ATTENTION_SCHEMA = {
    **dict.fromkeys(LISTED_CODE_COLUMNS, pl.String),
    "needs_attention": pl.String,
    "status_checked_at": pl.String,
}
ORPHANED_SCHEMA = {**dict.fromkeys(LISTED_CODE_COLUMNS, pl.String), "orphaned_run_id": pl.String}


@dataclass(frozen=True)
class RunSummary:
    """What an apply run leaves for the report (see ``Ledger.record_apply``)."""

    doors: list[tuple[Any, ...]]
    budgets: list[tuple[Any, ...]]
    reservation_ids: list[str]
    # (reservation_id, device_id, idempotency_tag) of the run's rows that have a tag, excluded
    # ones aside: the codes each reservation is meant to have on each door now.
    current_tags: list[tuple[str, str, str]] = field(default_factory=list)
    # (reservation_id, device_id) of the run's rows on a door of the workspace, and the
    # reservations with an input row on no known door (it may be any of theirs).
    stays: list[tuple[str, str]] = field(default_factory=list)
    unsure: list[str] = field(default_factory=list)


def run_summary(results: pl.DataFrame, check: BudgetCheck, doors: pl.DataFrame) -> RunSummary:
    """Rows per door, outcome and reason; each budgeted door's budget before and after.

    ``doors`` is the workspace's doors (``device_id, door_name, site_name``): rows on one of
    them count under its own names, whatever the input called it; the other rows (no door
    found, an unknown device_id) count under the door and site the input gave, unmatched.

    In lifetime mode a door's codes after the run are the used ones plus the codes this run
    made that weren't on the door before (exact); in concurrent mode they are the check's
    count of the most codes valid at once with every planned row made (an upper bound when
    some weren't).
    """
    names = doors.select("device_id", "door_name", "site_name")
    counted = results.group_by("device_id", "door_name", "site_name", "outcome", "reason").len(
        "rows"
    )
    on_doors = (
        counted.join(names, on="device_id", how="semi")
        .group_by("device_id", "outcome", "reason")
        .agg(pl.col("rows").sum())
        .join(names, on="device_id", how="left")
        .with_columns(matched=pl.lit(True))
    )
    elsewhere = counted.join(names, on="device_id", how="anti").with_columns(matched=pl.lit(False))
    per_door = pl.concat([on_doors, elsewhere], how="diagonal").select(
        "device_id", "door_name", "site_name", "matched", "outcome", "reason", "rows"
    )
    made = (
        results.filter(
            (pl.col("outcome") == "created") & ~pl.col("idempotency_tag").is_in(list(check.on_door))
        )
        .group_by("device_id")
        .agg(made=pl.len().cast(pl.Int64))
    )
    if check.mode == "lifetime":
        after = pl.col("used") + pl.col("made").fill_null(0)
    else:
        after = pl.col("after")
    budgets = (
        check.doors.filter(pl.col("budget").is_not_null())
        .join(made, on="device_id", how="left")
        .select(
            "device_id",
            pl.lit(check.mode).alias("mode"),
            "budget",
            "budget_source",
            "reserve",
            "used",
            after.alias("after"),
        )
    )
    # An excluded row (a cancelled booking) is a reservation the property no longer has: its
    # code, if one was made, is orphaned like that of a row no longer exported.
    kept = results.filter(pl.col("reason").fill_null("") != EXCLUDED).drop_nulls("reservation_id")
    on_doors = kept.join(names.select("device_id"), on="device_id", how="semi")
    # Rows [doors.also] made are the config's, not the input's: one whose door matches
    # nothing leaves no doubt about the reservation's other doors.
    elsewhere = kept.filter(pl.col("also_for").is_null()).join(
        names.select("device_id"), on="device_id", how="anti"
    )
    return RunSummary(
        doors=per_door.sort("device_id", "door_name", "outcome", "reason", nulls_last=True).rows(),
        budgets=budgets.rows(),
        current_tags=kept.filter(pl.col("idempotency_tag").is_not_null())
        .select("reservation_id", "device_id", "idempotency_tag")
        .unique()
        .rows(),
        reservation_ids=kept["reservation_id"].unique().to_list(),
        stays=on_doors.select("reservation_id", "device_id").unique().rows(),
        unsure=elsewhere["reservation_id"].unique().to_list(),
    )


@dataclass(frozen=True)
class Report:
    """The report's sections (see the module docstring); ``run_id`` is the doors' apply run."""

    runs: pl.DataFrame
    outcomes: pl.DataFrame
    doors: pl.DataFrame
    attention: pl.DataFrame
    orphaned: pl.DataFrame
    run_id: str | None
    generated_at: dt.datetime
    duplicates: pl.DataFrame = field(default_factory=lambda: duplicate_table([]))
    needs_a_person: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema=NEEDS_A_PERSON_SCHEMA)
    )

    def sections(self) -> dict[str, pl.DataFrame]:
        return {name: getattr(self, name) for name in SECTIONS}

    @property
    def exit_code(self) -> int:
        """1 while a reservation needs a person (``needs_a_person``: rejected, failed, outcome
        unknown, needing attention, duplicated, orphaned, superseded but still valid), or a
        code needs attention, is orphaned or is on its door more than once; else 0."""
        work = self.attention.height or self.orphaned.height or self.duplicates.height
        return 1 if work or self.needs_a_person.height else 0

    def to_json(self) -> str:
        document: dict[str, Any] = {
            "generated_at": self.generated_at.isoformat(timespec="seconds"),
            "run_id": self.run_id,
        }
        document.update((name, frame.to_dicts()) for name, frame in self.sections().items())
        return json.dumps(document, indent=2, default=str)


async def make_report(
    ledger: Ledger, *, now: dt.datetime, run_id: str | None = None, runs: int = DEFAULT_RUNS
) -> Report:
    """The report on the ledger (``run_id``: the doors' apply run, the latest when None; the
    latest ``runs`` runs). Raises UsageError when ``run_id`` isn't an apply run with its
    per-door summary."""
    rows = await ledger.report_rows(run_id=run_id, runs=runs, code_statuses=CODE_STATUSES)
    duplicates = await ledger.duplicate_rows(now=now)
    people = (await ledger.rows_without_code(), await ledger.codes_needing_a_person())
    return await anyio.to_thread.run_sync(
        lambda: build_report(rows, now=now, run_id=run_id, duplicates=duplicates, people=people)
    )


def build_report(
    rows: ReportRows,
    *,
    now: dt.datetime,
    run_id: str | None = None,
    duplicates: list[dict[str, Any]] | None = None,
    people: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], []),
) -> Report:
    """Build the report's tables from the ledger's rows (``run_id``: the apply run asked for,
    checked; None for the latest; ``duplicates``: the ledger's ``duplicate_rows``; ``people``:
    its ``rows_without_code`` and ``codes_needing_a_person``)."""
    now = now.astimezone(dt.UTC)
    listed = pl.DataFrame(
        [
            (
                *(run[name] for name in RUN_COLUMNS),
                *(run["counts"].get(name) for name in RUN_COUNTS),
            )
            for run in rows.runs
        ],
        schema=RUN_SCHEMA,
        orient="row",
    )
    if run_id is not None:
        _check_apply_run(run_id, rows)
    run_id = rows.run_id
    outcomes = pl.DataFrame(rows.outcomes, schema=OUTCOME_SCHEMA).sort(
        "run_id", "device_id", "outcome", "reason", descending=[True, False, False, False]
    )
    budgets = pl.DataFrame(rows.budgets, schema=BUDGET_SCHEMA)
    attention = pl.DataFrame(rows.attention, schema=ATTENTION_SCHEMA).sort(
        iso_instant("starts_at"), "reservation_id"
    )
    orphaned = (
        pl.DataFrame(rows.orphaned, schema=ORPHANED_SCHEMA)
        .filter(iso_instant("ends_at") > now)
        .sort(iso_instant("starts_at"), "reservation_id")
    )
    codes_now = pl.DataFrame(rows.codes_per_door, schema=CODES_NOW_SCHEMA)
    of_run = outcomes.filter(pl.col("run_id") == run_id) if run_id else outcomes.clear()
    doors = _door_table(of_run, budgets, codes_now, orphaned)
    doubled = duplicate_table(duplicates or [])
    return Report(
        runs=listed,
        outcomes=outcomes,
        doors=doors,
        attention=attention,
        orphaned=orphaned,
        run_id=run_id,
        generated_at=now,
        duplicates=doubled,
        needs_a_person=needs_a_person(*people, doubled, now=now),
    )


def _check_apply_run(run_id: str, rows: ReportRows) -> None:
    """Raise UsageError unless ``run_id`` is an apply run with its per-door summary."""
    if rows.has_summary:
        return
    if rows.run is None or rows.run["command"] != "apply":
        raise UsageError(f"the ledger has no apply run {run_id}", hint="see the runs in the report")
    exit_code = rows.run["exit_code"]
    ended = "it did not finish" if exit_code is None else f"exit {exit_code}"
    raise UsageError(
        f"apply run {run_id} has no per-door summary: it stopped before its results ({ended})",
        hint="see the runs in the report",
    )


def _door_table(
    outcomes: pl.DataFrame,
    budgets: pl.DataFrame,
    codes_now: pl.DataFrame,
    orphaned: pl.DataFrame,
) -> pl.DataFrame:
    """One line per door of the workspace (its run rows, budget and codes now), and one per
    door name the input gave that matched no door (its run rows only)."""
    door = ("device_id", "door_name", "site_name")
    orphans = orphaned.group_by("device_id").agg(orphaned=pl.len().cast(pl.Int64))
    on_doors = (
        _rows_by_outcome(outcomes.filter("matched"), door)
        .join(codes_now, on="device_id", how="full", coalesce=True, suffix="_now")
        .with_columns(
            pl.coalesce("door_name", "door_name_now").alias("door_name"),
            pl.coalesce("site_name", "site_name_now").alias("site_name"),
            matched=pl.lit(True),
        )
        .drop("door_name_now", "site_name_now")
        .join(budgets, on="device_id", how="left")
        .join(orphans, on="device_id", how="left")
    )
    unmatched = _rows_by_outcome(outcomes.filter(~pl.col("matched")), door).with_columns(
        matched=pl.lit(False)
    )
    counts = (*OUTCOMES, *CODE_STATUSES, "other_status", "outcome_unknown", "needs_attention")
    return (
        pl.concat([on_doors, unmatched], how="diagonal_relaxed")
        .with_columns(
            pl.col(*counts, "orphaned").fill_null(0),
            left=pl.col("budget") - pl.col("after"),
            room=(pl.col("budget") - pl.col("reserve") - pl.col("after")).clip(lower_bound=0),
            usage=budget_usage(),
        )
        .with_columns(near_full=is_near_full())
        .select(
            *door,
            "matched",
            *OUTCOMES,
            "problems",
            "mode",
            "budget",
            "reserve",
            "used",
            "after",
            "left",
            "room",
            "usage",
            "near_full",
            *CODE_STATUSES,
            "other_status",
            "outcome_unknown",
            "needs_attention",
            "orphaned",
        )
        .sort(
            "matched",
            "site_name",
            "door_name",
            "device_id",
            descending=[True, False, False, False],
            nulls_last=True,
        )
    )


def _rows_by_outcome(outcomes: pl.DataFrame, door: tuple[str, ...]) -> pl.DataFrame:
    """Per door: rows per outcome, and the rejected and failed ones' reasons, most first."""
    return (
        outcomes.sort("rows", descending=True)
        .group_by(door)
        .agg(
            *(
                pl.col("rows").filter(pl.col("outcome") == name).sum().cast(pl.Int64).alias(name)
                for name in OUTCOMES
            ),
            problems=pl.format("{} {}", pl.col("reason"), pl.col("rows"))
            .filter(pl.col("outcome").is_in(["rejected", "failed"]))
            .str.join(", "),
        )
    )
