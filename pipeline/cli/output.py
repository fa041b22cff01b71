"""Printing on the terminal: run summaries of plan, apply, status and report and the doors
list (rich tables). apply's progress bar is ``progress``, the log lines ``logs``; writing the
files is ``pipeline.report.files``."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipeline.budget.limits import BudgetCheck
from pipeline.catalog.listing import doors_csv, doors_json
from pipeline.cli.changes import print_plan_changes
from pipeline.cli.people_output import print_needs_a_person
from pipeline.cli.sending import sending_line
from pipeline.common.errors import Interrupted
from pipeline.common.reasons import NOT_ATTEMPTED, OUTCOME_UNKNOWN
from pipeline.ledger.location import LedgerLocation
from pipeline.report.summary import RUN_COUNTS, Report
from pipeline.status.refresh import StatusResult

if TYPE_CHECKING:
    from pipeline.apply.run import ApplyResult


def print_outcomes(frame: pl.DataFrame, title: str, console: Console) -> None:
    """Rows per outcome and reason, most frequent first within each outcome."""
    print_reason_counts(frame.group_by("outcome", "reason").agg(rows=pl.len()), title, console)


def print_reason_counts(counts: pl.DataFrame, title: str, console: Console) -> None:
    """``outcome, reason, rows`` as a table, most frequent first within each outcome."""
    table = Table(title=title)
    for column in ("outcome", "reason", "rows"):
        table.add_column(column, justify="right" if column == "rows" else "left")
    ordered = counts.sort("outcome", "rows", descending=[False, True])
    for outcome, reason, count in ordered.select("outcome", "reason", "rows").iter_rows():
        table.add_row(outcome, reason or "", str(count))
    console.print(table)


def print_plan_summary(plan: pl.DataFrame, budgets: BudgetCheck, console: Console) -> None:
    """Counts per outcome and reason, then per door with its budget, then budget warnings."""
    print_outcomes(plan, "Plan by outcome and reason", console)
    per_door = (
        plan.group_by("device_id", "site_name", "door_name")
        .agg(
            planned=(pl.col("outcome") == "planned").sum(),
            rejected=(pl.col("outcome") == "rejected").sum(),
        )
        .join(
            budgets.doors.drop("site_name", "door_name").with_columns(_checked=True),
            on="device_id",
            how="left",
        )
        # Rows left out (cancelled, [input.skip]) are never matched to a door: a name of theirs
        # that is no door's would show as a door of its own.
        .filter(pl.col("device_id").is_not_null() | (pl.col("planned") + pl.col("rejected") > 0))
        .with_columns(pl.col("door_name").fill_null("(unknown door)"))
    )
    print_door_table(per_door, budgets.mode, console)
    print_plan_changes(plan, console)
    print_budget_warnings(budgets, console)


# More doors than this: the table shows the fullest ones and counts the rest.
DOOR_TABLE_ROWS = 50


def print_door_table(per_door: pl.DataFrame, mode: str, console: Console) -> None:
    """One line per door: the plan's counts and the door's budget after the run."""
    hidden = 0
    if per_door.height > DOOR_TABLE_ROWS:
        hidden = per_door.height - DOOR_TABLE_ROWS
        per_door = per_door.sort("usage", "rejected", descending=True, nulls_last=True).head(
            DOOR_TABLE_ROWS
        )
    else:
        per_door = per_door.sort("site_name", "door_name", nulls_last=True)
    counted = "codes valid at once" if mode == "concurrent" else "codes ever made"
    table = Table(title=f"Plan per door (budget: {counted}; left and usage after this run)")
    numbers = ("planned", "rejected", "budget", "used", "left", "usage")
    for column in ("site", "door", *numbers):
        table.add_column(column, justify="right" if column in numbers else "left")
    for row in per_door.iter_rows(named=True):
        budget, usage = row["budget"], row["usage"]
        # A door with no planned rows has nothing to count against a budget.
        budget_text = ("none" if budget is None else str(budget)) if row["_checked"] else ""
        table.add_row(
            row["site_name"] or "",
            row["door_name"],
            str(row["planned"]),
            str(row["rejected"]),
            budget_text,
            *("" if budget is None else str(row[c]) for c in ("used", "remaining")),
            "" if usage is None else f"{usage:.0%}{' ⚠' if row['near_full'] else ''}",
        )
    if hidden:
        table.caption = f"and {hidden} more doors, less full"
    console.print(table)


def print_budget_warnings(budgets: BudgetCheck, console: Console) -> None:
    """What an operator must know about budgets: doors unbudgeted, near full, over, uncounted."""
    doors = budgets.doors
    if budgets.unmatched:
        console.print(
            f"warning: {', '.join(budgets.unmatched)} match(es) no door or site of the"
            " workspace, so the default budget applies there: check the names",
            markup=False,
            soft_wrap=True,  # one line, however many names and suggestions it carries
        )
    unbudgeted = budgets.unbudgeted
    if not unbudgeted.is_empty():
        console.print(
            f"warning: {unbudgeted.height} door(s) have no budget (none configured and Seam"
            f" reports no max_active_codes_supported), so their codes are not limited:"
            f" {_door_names(unbudgeted)}"
        )
    near_full = doors.filter(pl.col("near_full"))
    if not near_full.is_empty():
        console.print(
            f"warning: {near_full.height} door(s) will be at 90 % or more of their budget"
            f" after this run: {_door_names(near_full)}"
        )
    exceeded = budgets.exceeded
    if not exceeded.is_empty():
        console.print(
            f"{exceeded['over'].sum()} code(s) on {exceeded.height} door(s) are past their"
            f" budget (budget_exhausted, --on-budget-exceeded {budgets.on_exceeded}):"
            f" {_door_names(exceeded)}"
        )
    if not budgets.counted_existing and doors["budget"].is_not_null().any():
        console.print(
            "warning: the doors' existing codes were not counted (offline plan); pass --codes"
            " with their /access_codes/list answers, or plan against Seam"
        )


def _door_names(doors: pl.DataFrame, limit: int = 10) -> str:
    names = doors["door_name"].fill_null(doors["device_id"]).to_list()
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(str(name) for name in names[:limit]) + more


def print_apply_summary(
    result: ApplyResult,
    budgets: BudgetCheck,
    *,
    out: Path,
    ledger: LedgerLocation,
    newly_orphaned: int,
    console: Console,
) -> None:
    """Results by outcome and reason, budget warnings, the run's numbers and files; why it
    stopped, if it did, as one ``error:`` line on standard error."""
    print_outcomes(result.results, "Results by outcome and reason", console)
    print_plan_changes(result.results, console)
    print_budget_warnings(budgets, console)
    console.print(sending_line(result))
    console.print(f"results: {out}", soft_wrap=True)
    console.print(f"ledger:  {ledger} (run {result.run_id})", soft_wrap=True)
    if newly_orphaned:
        console.print(
            f"{newly_orphaned} code(s) whose reservation is no longer in the input on their"
            f" door are orphaned (each still opens its door until its window ends): see"
            f" `oracode-provision report --ledger {ledger}`",
            soft_wrap=True,
        )
    if isinstance(result.stopped, Interrupted):
        outcomes = result.results.filter(pl.col("outcome") != "skipped")
        created = int((outcomes["outcome"] == "created").sum())
        waiting = int(outcomes["reason"].is_in([NOT_ATTEMPTED, OUTCOME_UNKNOWN]).sum())
        print(
            f"error: stopped by {signal.Signals(result.stopped.exit_code - 128).name}:"
            f" {created} created, {waiting} not attempted or not yet known; rerun to finish",
            file=sys.stderr,
        )
    elif result.stopped is not None:
        print(f"error: {result.stopped.one_line()}", file=sys.stderr)


def print_status_summary(result: StatusResult, console: Console) -> None:
    """Codes by status, then the ones that need a person, with why."""
    codes = result.codes
    table = Table(title=f"{codes.height} codes refreshed, {result.changed} changed")
    table.caption = f"{result.requests} requests to Seam" + (
        f" ({result.from_events} codes settled from Seam's events)" if result.from_events else ""
    )
    for column in ("status", "codes"):
        table.add_column(column, justify="right" if column == "codes" else "left")
    for status, count in codes.group_by("code_status").len().sort("code_status").iter_rows():
        table.add_row(status or "(none)", str(count))
    console.print(table)
    print_duplicates(result.duplicates, console)
    attention = result.needing_attention
    if attention.is_empty():
        return
    listing = Table(title=f"{attention.height} codes need attention")
    for column in ("reservation", "door", "starts_at", "why"):
        listing.add_column(column)
    for row in attention.head(DOOR_TABLE_ROWS).iter_rows(named=True):
        listing.add_row(
            row["reservation_id"],
            row["door_name"] or row["device_id"],
            row["starts_at"],
            row["needs_attention"],
        )
    if attention.height > DOOR_TABLE_ROWS:
        listing.caption = f"and {attention.height - DOOR_TABLE_ROWS} more: see the results file"
    console.print(listing)


def print_report(report: Report, console: Console) -> None:
    """Who needs a person, the runs, the doors' run by outcome and reason and per door, then
    the codes that need a person."""
    print_needs_a_person(report.needs_a_person, console)
    runs = Table(title=f"Latest {report.runs.height} runs, newest first")
    for column in ("run", "command", "exit", "rows / codes"):
        runs.add_column(column, justify="right" if column == "exit" else "left")
    for row in report.runs.iter_rows(named=True):
        counted = ", ".join(f"{c} {row[c]}" for c in RUN_COUNTS if row[c])
        exit_code = "unfinished" if row["finished_at"] is None else str(row["exit_code"])
        runs.add_row(row["run_id"], row["command"], exit_code, counted)
    console.print(runs)
    if report.run_id is not None:
        print_reason_counts(
            report.outcomes.filter(pl.col("run_id") == report.run_id)
            .group_by("outcome", "reason")
            .agg(pl.col("rows").sum()),
            f"Run {report.run_id} by outcome and reason",
            console,
        )
    _print_report_doors(report, console)
    _print_codes(
        report.attention,
        f"{report.attention.height} codes need attention",
        "needs_attention",
        console,
    )
    _print_codes(
        report.orphaned,
        f"{report.orphaned.height} orphaned codes (reservation gone from the input, window not"
        " ended; they can't be deleted)",
        "orphaned_run_id",
        console,
    )
    print_duplicates(report.duplicates, console)


def print_duplicates(duplicates: pl.DataFrame, console: Console) -> None:
    """The tags on more than one code of their door, with what is wrong and the fix."""
    if not duplicates.is_empty():
        fix = duplicates["fix"][0]
        title = f"{duplicates.height} tags on more than one code of their door ({fix})"
        _print_codes(duplicates, title, "problem", console)


def _print_report_doors(report: Report, console: Console) -> None:
    # Doors with nothing to show (only skipped duplicate rows) stay in the files only.
    counts = ("created", "rejected", "failed", "set", "setting", "unset", "other_status")
    doors = report.doors.filter(pl.sum_horizontal(*counts, "outcome_unknown") > 0)
    hidden = max(doors.height - DOOR_TABLE_ROWS, 0)
    if hidden:
        # The doors with most for a person to look at, then the fullest.
        doors = doors.sort(
            pl.col("rejected") + pl.col("failed") + pl.col("needs_attention") + pl.col("orphaned"),
            pl.col("after") / pl.col("budget"),
            descending=True,
            nulls_last=True,
        ).head(DOOR_TABLE_ROWS)
    of_run = f"run {report.run_id}'s rows" if report.run_id else "no apply run's rows"
    table = Table(title=f"Per door: {of_run}, the budget after it, the codes now")
    numbers = ("made", "not made", "budget", "set", "not set", "attention", "orphaned")
    for column in ("door", *numbers, "why not made"):
        table.add_column(column, justify="right" if column in numbers else "left")
    for row in doors.iter_rows(named=True):
        budget = row["budget"]
        table.add_row(
            _door_label(row),
            str(row["created"]),
            str(row["rejected"] + row["failed"]),
            "" if budget is None else f"{row['after']}/{budget}",
            str(row["set"]),
            str(row["setting"] + row["unset"] + row["other_status"] + row["outcome_unknown"]),
            str(row["needs_attention"]),
            str(row["orphaned"]),
            row["problems"] or "",
        )
    if hidden:
        table.caption = f"and {hidden} more doors with less to look at"
    console.print(table)


def _door_label(row: dict[str, Any]) -> str:
    """``site / door`` (as text, not markup); rows no door was matched for say so."""
    name = row["door_name"] or row["device_id"] or "(no door given)"
    label = f"{row['site_name']} / {name}" if row["site_name"] else name
    return escape(label if row.get("matched", True) else f"{label} (unmatched)")


def _print_codes(codes: pl.DataFrame, title: str, why: str, console: Console) -> None:
    if codes.is_empty():
        return
    table = Table(title=title)
    for column in ("reservation", "door", "starts_at", "ends_at", "state", "status", why):
        table.add_column(column)
    for row in codes.head(DOOR_TABLE_ROWS).iter_rows(named=True):
        table.add_row(
            escape(row["reservation_id"] or ""),
            _door_label(row),
            row["starts_at"],
            row["ends_at"],
            row["state"] or "",
            row["code_status"] or "",
            escape(row[why] or ""),
        )
    if codes.height > DOOR_TABLE_ROWS:
        table.caption = f"and {codes.height - DOOR_TABLE_ROWS} more: use --format csv or json"
    console.print(table)


# Columns of the doors table when standard output isn't a terminal.
DOORS_WIDTH = 150


def print_doors(listing: pl.DataFrame, fmt: str, console: Console) -> None:
    """The doors list (``list_door_levels``'s table): ``csv`` and ``json`` as text on standard
    output, ``table`` as one row per door with its user levels a line each
    (``prefix name check-in→check-out flags``)."""
    if fmt != "table":
        print(doors_csv(listing) if fmt == "csv" else doors_json(listing), end="")
        return
    doors = listing.group_by("device_id", maintain_order=True).agg(
        pl.col("site_name", "door_name", "zone", "can_program_offline").first(),
        levels=pl.format(
            "{} {} {}→{}{}",
            "prefix",
            "user_level",
            "check_in",
            "check_out",
            pl.format(" ({})", "flags").fill_null(""),
        ).drop_nulls(),
    )
    table = Table(title=f"{doors.height} dormakaba Oracode doors")
    for column in ("site", "door", "device_id", "zone", "offline"):
        table.add_column(column, no_wrap=column == "device_id")
    table.add_column("user levels")
    for row in doors.iter_rows(named=True):
        table.add_row(
            escape(row["site_name"] or ""),
            escape(row["door_name"] or ""),
            row["device_id"],
            row["zone"] or "",
            "yes" if row["can_program_offline"] else "no",
            escape("\n".join(row["levels"])),
        )
    if not console.is_terminal:
        # Piped into a file or a pager, the table isn't squeezed into 80 columns.
        console = Console(file=console.file, width=max(console.width, DOORS_WIDTH), highlight=False)
    console.print(table)
