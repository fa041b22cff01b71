"""The HTML report's data: the report (read in the same snapshot of the ledger), the coming stays'
codes and whether each is ready, each run's requests, and the tables the page shows, built from
them. Never a PIN: the codes lose theirs as they are read, and every text from outside (Seam's
messages, names, reasons) has the ledger's PINs scrubbed out before anything is built from it.

The tables (one function each, Polars, blocking: called in a worker thread):
    door_budgets      per budgeted door of the report's apply run, fullest first: its budget
                      in parts (used before the run, made by it, room for the next runs, the
                      reserve, over the budget), its share used and whether it is near full
                      (the report's ``doors`` section, which ``budget.limits`` decides)
    pin_readiness     per check-in date of the coming ``READINESS_DAYS`` and state: stays; a
                      stay needs a person when the report's ``needs_a_person`` lists it
    rejections        the apply run's rejected and failed rows per outcome and reason
    run_history       per finished apply run listed: codes made, requests per new code, time
The reservations that need a person are the report's own ``needs_a_person`` (``report.people``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import cast

import anyio.to_thread
import polars as pl

from pipeline.ledger.store import Ledger
from pipeline.report.page_text import scrub_pins
from pipeline.report.pins import MAY_EXIST, why_not_ready
from pipeline.report.summary import Report

READINESS_DAYS = 14
READY, WAITING, NEEDS_A_PERSON = "ready", "waiting for a PIN", "needs a person"
READINESS = (READY, WAITING, NEEDS_A_PERSON)
CODE_SCHEMA = {"check_in": pl.String, "idempotency_tag": pl.String, "ready": pl.Boolean}
# The text the report holds that came from outside (exports, Seam), per section the page shows.
OUTSIDE_TEXT = {
    "needs_a_person": (
        *("reservation_id", "guest_name", "site_name", "door_name"),
        *("reason", "message", "access_code_id", "source_file"),
    ),
    "doors": ("device_id", "site_name", "door_name"),
    "outcomes": ("device_id", "site_name", "door_name", "reason"),
}


@dataclass(frozen=True)
class PageData:
    """What the page is made from. ``report``: the report, its outside text scrubbed of PINs;
    ``codes``: the codes of stays checking in from yesterday to ``READINESS_DAYS`` ahead that
    exist or may exist (``CODE_SCHEMA``: ready or not, no PIN); ``requests``: run id → the
    requests it sent to Seam; ``made_at``: when the page was made, which differs from the
    report's instant (``report.generated_at``) when it was asked for as of another."""

    report: Report
    codes: pl.DataFrame
    requests: dict[str, int]
    made_at: dt.datetime

    @property
    def as_of(self) -> dt.datetime:
        return self.report.generated_at

    @property
    def today(self) -> dt.date:
        return self.as_of.date()


async def gather_page_data(ledger: Ledger, report: Report, *, made_at: dt.datetime) -> PageData:
    """Read from ``ledger`` what the page needs besides ``report`` (made from the same snapshot
    of it: ``Ledger.snapshot``)."""
    today = report.generated_at.date()
    # A day either side of UTC's date: the doors' own dates (``pin_readiness``) are within it.
    rows = await ledger.pin_rows(
        (str(today - dt.timedelta(days=1)), str(today + dt.timedelta(days=READINESS_DAYS)))
    )
    run_ids = await anyio.to_thread.run_sync(lambda: report.runs["run_id"].to_list())
    requests = await ledger.requests_per_run(run_ids)
    pins = await ledger.held_pins()

    def tables() -> tuple[Report, pl.DataFrame]:
        codes = pl.DataFrame(
            [
                (row["starts_at"], row["idempotency_tag"], why_not_ready(row) is None)
                for row in rows
                if row["state"] in MAY_EXIST
            ],
            schema=CODE_SCHEMA,
            orient="row",
        )

        def scrubbed(section: str) -> pl.DataFrame:
            return scrub_pins(getattr(report, section), pins, OUTSIDE_TEXT[section])

        clean = dataclasses.replace(
            report,
            needs_a_person=scrubbed("needs_a_person"),
            doors=scrubbed("doors"),
            outcomes=scrubbed("outcomes"),
        )
        return clean, codes

    clean, codes = await anyio.to_thread.run_sync(tables)
    return PageData(clean, codes, requests, made_at)


def reservations_needing_a_person(person: pl.DataFrame) -> int:
    """How many reservations the report's ``needs_a_person`` lists (one may have several
    lines: doors, problems); a row without a reservation id is one by its place in the input."""
    return int(
        person.select(
            pl.coalesce(
                "reservation_id",
                pl.format("{}:{}", "source_file", "source_line"),
                "idempotency_tag",
            ).n_unique()
        ).item()
    )


def rejections(report: Report) -> pl.DataFrame:
    """The report's apply run's rejected and failed rows: ``outcome, reason, rows``, most
    first."""
    return (
        report.outcomes.filter(
            (pl.col("run_id") == (report.run_id or ""))
            & pl.col("outcome").is_in(["rejected", "failed"])
        )
        .with_columns(pl.col("reason").fill_null("(no reason)"))
        .group_by("outcome", "reason")
        .agg(pl.col("rows").sum())
        .sort("rows", "outcome", "reason", descending=[True, False, False])
    )


def door_budgets(doors: pl.DataFrame) -> pl.DataFrame:
    """Per budgeted door of the report's ``doors`` section, fullest first: ``device_id,
    site_name, door_name, door`` (``door_label``), ``budget, reserve, used`` (before the run),
    ``made`` (after - used: the run's), ``after, room`` (what a next run may still make),
    ``over`` (past the budget), ``usage, near_full`` (the section's), and the bar's parts that
    add up to the budget, or to ``after`` past it: ``used_part, made_part`` (within the
    budget), ``room``, ``reserve_part`` (the reserve not yet used), ``over``."""
    budget, after, used = (pl.col(name).fill_null(0) for name in ("budget", "after", "used"))
    within = pl.min_horizontal(after, budget)
    used_part = pl.min_horizontal(used, budget)
    return (
        doors.filter(pl.col("matched") & pl.col("budget").is_not_null())
        .select(
            "device_id",
            "site_name",
            "door_name",
            door_label(),
            "budget",
            pl.col("reserve").fill_null(0),
            used.alias("used"),
            made=(after - used).clip(lower_bound=0),
            after=after,
            room=pl.col("room").fill_null(0),
            over=(after - budget).clip(lower_bound=0),
            usage="usage",
            near_full="near_full",
            used_part=used_part,
            made_part=(within - used_part).clip(lower_bound=0),
            reserve_part=pl.min_horizontal(
                pl.col("reserve").fill_null(0), (budget - after).clip(lower_bound=0)
            ),
        )
        .sort("usage", "site_name", "door_name", descending=[True, False, False], nulls_last=True)
    )


def door_label() -> pl.Expr:
    """``door``: ``site / door`` (the door alone without a site, its device id without a
    name, ``(no door)`` without either); names two doors share get the device id, so that no
    two doors are drawn as one."""
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
        .fill_null("(no door)")
        .alias("door")
    )


def pin_readiness(data: PageData) -> pl.DataFrame:
    """Per check-in date (the lock's) and readiness: ``date, readiness, stays``, for the stays
    checking in from today to ``READINESS_DAYS`` - 1 days ahead, today being the lock's own
    (a door eight hours behind UTC is still on yesterday's date at 03:00 UTC), every date and
    readiness listed (0 when none). A stay needs a person when it is a line of the report's
    ``needs_a_person`` (so the chart's count is the table's lines checking in those days); the
    other codes are ready, or waiting for a PIN (anything else that keeps a PIN from being
    sent, that no person has to act on yet)."""
    person = data.report.needs_a_person
    listed = person["idempotency_tag"].drop_nulls().unique()
    stays = pl.concat(
        [
            data.codes.filter(~pl.col("idempotency_tag").is_in(listed.implode())).select(
                "check_in",
                readiness=pl.when("ready").then(pl.lit(READY)).otherwise(pl.lit(WAITING)),
            ),
            person.select("check_in", readiness=pl.lit(NEEDS_A_PERSON)),
        ]
    )
    check_in = pl.col("check_in").str.replace(r"Z$", "+00:00")
    # The check-in's offset: its wall-clock time less the instant it names (none: a booking's
    # own times, on the lock's clock, dated as they are).
    offset = (
        check_in.str.slice(0, 19).str.to_datetime("%Y-%m-%dT%H:%M:%S", strict=False)
        - check_in.str.to_datetime(
            "%Y-%m-%dT%H:%M:%S%:z", time_zone="UTC", strict=False
        ).dt.replace_time_zone(None)
    ).fill_null(dt.timedelta(0))
    now = data.as_of.astimezone(dt.UTC).replace(tzinfo=None)
    dated = stays.select(
        date=check_in.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False),
        today=(pl.lit(now) + offset).dt.date(),
        readiness="readiness",
    ).filter(
        (pl.col("date") >= pl.col("today"))
        & (pl.col("date") < pl.col("today") + pl.duration(days=READINESS_DAYS))
    )
    # The doors' todays differ by a day at most (their zones): the dates span them all.
    first = cast(dt.date, dated["today"].min()) if dated.height else data.today
    last = cast(dt.date, dated["today"].max()) if dated.height else data.today
    dates = pl.date_range(first, last + dt.timedelta(days=READINESS_DAYS - 1), eager=True)
    grid = dates.alias("date").to_frame().join(pl.DataFrame({"readiness": READINESS}), how="cross")
    counted = dated.group_by("date", "readiness").agg(stays=pl.len().cast(pl.Int64))
    return (
        grid.join(counted, on=["date", "readiness"], how="left")
        .with_columns(pl.col("stays").fill_null(0))
        .sort("date", pl.col("readiness").replace_strict(READINESS, list(range(len(READINESS)))))
    )


def run_history(data: PageData) -> pl.DataFrame:
    """Per finished apply run listed, oldest first: ``run`` (its place, from 1: two runs that
    started in the same second are two), ``run_id, started_at, created, requests,
    per_new_code`` (requests per code made; null when it made none) and ``seconds`` (from start
    to finish)."""
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
        .with_row_index("run", offset=1)
    )
