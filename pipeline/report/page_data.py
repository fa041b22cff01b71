"""The HTML report's data: the report's sections, the coming stays' PIN readiness, each run's
requests, and the tables the page shows, built from them. Never a PIN: the hand-off rows lose
their ``code`` as they are read.

The tables (one function each, Polars, blocking: called in a worker thread):
    needs_a_person    the reservations a person has to act on, with the fix
    door_budgets      per budgeted door of the report's apply run: used before it, made by
                      it, left after it, fullest first
    pin_readiness     per check-in date of the coming ``READINESS_DAYS`` and state (ready,
                      waiting for a PIN, needs a person): codes
    rejections        the apply run's rejected and failed rows per outcome and reason
    run_history       per finished apply run listed: codes made, requests per new code, time
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast

import anyio.to_thread
import polars as pl

from pipeline.budget.limits import NEAR_FULL, iso_instant
from pipeline.ledger.store import Ledger
from pipeline.report.fixes import fix_for
from pipeline.report.pins import guest_from_name, pin_table
from pipeline.report.summary import Report

READINESS_DAYS = 14
READY, WAITING, NEEDS_A_PERSON = "ready", "waiting for a PIN", "needs a person"
READINESS = (READY, WAITING, NEEDS_A_PERSON)
# The problems of ``needs_a_person``, in the order the page lists them.
PROBLEMS = ("needs attention", "orphaned", "failed", "rejected")
NEEDS_A_PERSON_SCHEMA = {
    "problem": pl.String,
    "device_id": pl.String,
    "site_name": pl.String,
    "door_name": pl.String,
    "reservation_id": pl.String,
    "guest_name": pl.String,
    "check_in": pl.String,
    "check_out": pl.String,
    "reason": pl.String,
    "fix": pl.String,
    "rows": pl.Int64,  # the reservations the line stands for (one, or a count of rows)
}


@dataclass(frozen=True)
class PageData:
    """What the page is made from. ``pins``: the hand-off rows (``pin_table``, without
    ``code``) of stays checking in from yesterday to ``READINESS_DAYS`` ahead; ``requests``:
    run id → requests it sent to Seam; ``guests``: tag → guest name of the report's attention
    and orphaned codes; ``ledger``: where the ledger is (shown masked)."""

    report: Report
    pins: pl.DataFrame
    requests: dict[str, int]
    guests: dict[str, str]
    ledger: str

    @property
    def today(self) -> dt.date:
        return self.report.generated_at.date()


async def gather_page_data(ledger: Ledger, report: Report) -> PageData:
    """Read from ``ledger`` what the page needs besides ``report`` (made from the same ledger)."""
    today = report.generated_at.date()
    # A day either side of UTC's date: the doors' own dates (``pin_readiness``) are within it.
    rows = await ledger.pin_rows(
        (str(today - dt.timedelta(days=1)), str(today + dt.timedelta(days=READINESS_DAYS)))
    )
    run_ids, tags = await anyio.to_thread.run_sync(
        lambda: (
            report.runs["run_id"].to_list(),
            [*report.attention["idempotency_tag"], *report.orphaned["idempotency_tag"]],
        )
    )
    requests = await ledger.requests_per_run(run_ids)
    named = await ledger.guest_rows(tags)

    def tables() -> tuple[pl.DataFrame, dict[str, str]]:
        pins = pin_table(rows, now=report.generated_at).drop("code")
        guests = {
            row["idempotency_tag"]: name
            for row in named
            if (name := row["guest_name"] or guest_from_name(row))
        }
        return pins, guests

    pins, guests = await anyio.to_thread.run_sync(tables)
    return PageData(report, pins, requests, guests, str(ledger.path))


def needs_a_person(data: PageData) -> pl.DataFrame:
    """The reservations a person has to act on (``NEEDS_A_PERSON_SCHEMA``), with the fix:
    codes needing attention and orphaned codes (one line each), and the report's apply run's
    rejected and failed rows (one line per door and reason, ``rows`` of them)."""
    report = data.report
    lines: list[dict[str, Any]] = []
    for problem, codes, why in (
        ("needs attention", report.attention, "needs_attention"),
        ("orphaned", report.orphaned, "orphaned_run_id"),
    ):
        for code in codes.iter_rows(named=True):
            reason = (
                code[why] if problem != "orphaned" else f"gone from the input since {code[why]}"
            )
            lines.append(
                {
                    **{name: code[name] for name in ("device_id", "site_name", "door_name")},
                    "reservation_id": code["reservation_id"],
                    "problem": problem,
                    "guest_name": data.guests.get(code["idempotency_tag"]),
                    "check_in": code["starts_at"],
                    "check_out": code["ends_at"],
                    "reason": reason,
                    "fix": fix_for("orphaned" if problem == "orphaned" else reason),
                    "rows": 1,
                }
            )
    door_problems = (
        _run_problems(report)
        .group_by("outcome", "reason", "device_id", "site_name", "door_name")
        .agg(pl.col("rows").sum())
    )
    for row in door_problems.iter_rows(named=True):
        lines.append(
            {
                **row,
                "problem": row["outcome"],
                "fix": fix_for(row["reason"], outcome=row["outcome"]),
            }
        )
    order = {problem: rank for rank, problem in enumerate(PROBLEMS)}
    return (
        pl.DataFrame(lines, schema=NEEDS_A_PERSON_SCHEMA)
        .with_columns(rank=pl.col("problem").replace_strict(order, return_dtype=pl.Int64))
        .sort(
            "rank",
            iso_instant("check_in"),
            "site_name",
            "door_name",
            "device_id",
            "reason",
            "reservation_id",
            nulls_last=True,
        )
        .drop("rank")
    )


def _run_problems(report: Report) -> pl.DataFrame:
    """The ``outcomes`` rows of the report's apply run that were rejected or failed (none
    without an apply run), a missing reason said."""
    return report.outcomes.filter(
        (pl.col("run_id") == (report.run_id or ""))
        & pl.col("outcome").is_in(["rejected", "failed"])
    ).with_columns(pl.col("reason").fill_null("(no reason)"))


def rejections(report: Report) -> pl.DataFrame:
    """The report's apply run's rejected and failed rows: ``outcome, reason, rows``, most
    first."""
    return (
        _run_problems(report)
        .group_by("outcome", "reason")
        .agg(pl.col("rows").sum())
        .sort("rows", "outcome", "reason", descending=[True, False, False])
    )


def door_budgets(report: Report) -> pl.DataFrame:
    """Per budgeted door of the report's apply run, fullest first: ``device_id, site_name,
    door_name, door`` (``door_label``), ``budget, reserve, used`` (before the run), ``made``
    (after - used: the run's), ``after``, ``left`` (budget - after, never below 0), ``share``
    (after / budget) and ``near_full``."""
    return (
        report.doors.filter(pl.col("matched") & pl.col("budget").is_not_null())
        .select(
            "device_id",
            "site_name",
            "door_name",
            door_label(),
            "budget",
            "reserve",
            "used",
            made=(pl.col("after") - pl.col("used")).clip(lower_bound=0),
            after="after",
            left=(pl.col("budget") - pl.col("after")).clip(lower_bound=0),
            share=pl.col("after") / pl.col("budget"),
        )
        .with_columns(near_full=pl.col("share") >= NEAR_FULL)
        .sort("share", "site_name", "door_name", descending=[True, False, False], nulls_last=True)
    )


def door_label() -> pl.Expr:
    """``door``: ``site / door`` (the door alone without a site, its device id without a
    name); names two doors share get the device id, so that no two doors are drawn as one."""
    name = pl.col("door_name").fill_null(pl.col("device_id"))
    label = (
        pl.when(pl.col("site_name").is_not_null())
        .then(pl.format("{} / {}", "site_name", name))
        .otherwise(name)
    )
    return (
        pl.when(pl.col("device_id").n_unique().over(label) > 1)
        .then(pl.format("{} ({})", label, "device_id"))
        .otherwise(label)
        .alias("door")
    )


def pin_readiness(data: PageData) -> pl.DataFrame:
    """Per check-in date (the lock's) and readiness: ``date, readiness, codes``, for the stays
    checking in from today to ``READINESS_DAYS`` - 1 days ahead, today being the lock's own
    (a door eight hours behind UTC is still on yesterday's date at 03:00 UTC), every date and
    readiness listed (0 when none). Waiting for a PIN: Seam hasn't assigned it yet; needs a
    person: every other reason a PIN can't be sent."""
    check_in = pl.col("check_in").str.replace(r"Z$", "+00:00")
    # The check-in's offset: its wall-clock time less the instant it names.
    offset = check_in.str.slice(0, 19).str.to_datetime(
        "%Y-%m-%dT%H:%M:%S"
    ) - check_in.str.to_datetime("%Y-%m-%dT%H:%M:%S%:z", time_zone="UTC").dt.replace_time_zone(None)
    now = data.report.generated_at.astimezone(dt.UTC).replace(tzinfo=None)
    stays = data.pins.select(
        date=check_in.str.slice(0, 10).str.to_date(),
        today=(pl.lit(now) + offset).dt.date(),
        readiness=pl.when("ready")
        .then(pl.lit(READY))
        .when(pl.col("why_not_ready").str.starts_with("no_pin_yet"))
        .then(pl.lit(WAITING))
        .otherwise(pl.lit(NEEDS_A_PERSON)),
    ).filter(
        (pl.col("date") >= pl.col("today"))
        & (pl.col("date") < pl.col("today") + pl.duration(days=READINESS_DAYS))
    )
    # The doors' todays differ by a day at most (their zones): the dates span them all.
    first = cast(dt.date, stays["today"].min()) if stays.height else data.today
    last = cast(dt.date, stays["today"].max()) if stays.height else data.today
    dates = pl.date_range(first, last + dt.timedelta(days=READINESS_DAYS - 1), eager=True)
    grid = dates.alias("date").to_frame().join(pl.DataFrame({"readiness": READINESS}), how="cross")
    counted = stays.group_by("date", "readiness").agg(codes=pl.len().cast(pl.Int64))
    return (
        grid.join(counted, on=["date", "readiness"], how="left")
        .with_columns(pl.col("codes").fill_null(0))
        .sort("date", pl.col("readiness").replace_strict(READINESS, list(range(len(READINESS)))))
    )


def run_history(data: PageData) -> pl.DataFrame:
    """Per finished apply run listed, oldest first: ``run_id, started_at, created,
    requests, per_new_code`` (requests per code made; null when it made none) and
    ``seconds`` (from start to finish)."""
    runs = data.report.runs.filter(
        (pl.col("command") == "apply") & pl.col("finished_at").is_not_null()
    )
    requests = pl.DataFrame(
        list(data.requests.items()),
        schema={"run_id": pl.String, "requests": pl.Int64},
        orient="row",
    )
    started = pl.col("started_at").str.to_datetime(time_zone="UTC")
    return (
        runs.join(requests, on="run_id", how="left")
        .select(
            "run_id",
            started.alias("started_at"),
            pl.col("created").fill_null(0),
            pl.col("requests").fill_null(0),
            per_new_code=pl.when(pl.col("created") > 0).then(
                pl.col("requests").fill_null(0) / pl.col("created")
            ),
            seconds=(
                pl.col("finished_at").str.to_datetime(time_zone="UTC") - started
            ).dt.total_milliseconds()
            / 1000,
        )
        .sort("started_at", "run_id")
    )
