"""Reruns with changed input: a moved stay makes no new code unless asked, and is linked."""

from __future__ import annotations

import sqlite3

import polars as pl
import pytest

from pipeline.cli.parser import build_parser
from pipeline.common.settings import BudgetOptions
from tests.apply_helpers import one_door_sandbox, orphaned_reservations

pytestmark = pytest.mark.virtual_time


def stays(door: str, moved: bool = False) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "reservation_id": ["KEEP", "MOVE"],
            "device_id": [door, door],
            "check_in": ["2027-03-01", "2027-03-10" if moved else "2027-03-05"],
            "check_out": ["2027-03-04", "2027-03-12" if moved else "2027-03-07"],
        }
    )


@pytest.mark.anyio
async def test_a_moved_stay_is_changed_after_creation_and_makes_no_code(tmp_path, monkeypatch):
    """Same reservation, new window: rejected changed_after_creation naming the old code;
    the unchanged one is already_created; nothing is sent."""
    run, door = one_door_sandbox(tmp_path, monkeypatch, seed=51)
    first = (await run.apply(stays(door))).result.results
    old_code = first.filter(pl.col("reservation_id") == "MOVE")["access_code_id"][0]
    creates = run.creates()
    again = await run.apply(stays(door, moved=True))
    outcomes = {row["reservation_id"]: row for row in again.result.results.iter_rows(named=True)}
    assert outcomes["KEEP"]["outcome"] == "already_created"
    assert (outcomes["MOVE"]["outcome"], outcomes["MOVE"]["reason"]) == (
        "rejected",
        "changed_after_creation",
    )
    assert old_code in outcomes["MOVE"]["message"]
    assert outcomes["MOVE"]["message"].endswith("codes can't be deleted, so no new code was made")
    assert run.creates() == creates
    assert again.exit_code == 1


@pytest.mark.anyio
async def test_reissue_changed_makes_the_new_code_and_links_it(tmp_path, monkeypatch):
    """--reissue-changed: one new code for the moved stay, linked to the old one; a rerun of
    the same input then sends nothing."""
    run, door = one_door_sandbox(tmp_path, monkeypatch, seed=52)
    first = (await run.apply(stays(door))).result.results
    old_tag = first.filter(pl.col("reservation_id") == "MOVE")["idempotency_tag"][0]
    creates = run.creates()
    moved = await run.apply(stays(door, moved=True), reissue_changed=True)
    row = moved.result.results.filter(pl.col("reservation_id") == "MOVE").row(0, named=True)
    assert row["outcome"] == "created"
    assert run.creates() == creates + 1
    with sqlite3.connect(run.ledger) as db:
        linked = db.execute(
            "SELECT replaces_tag FROM codes WHERE idempotency_tag = ?", (row["idempotency_tag"],)
        ).fetchone()
    assert linked == (old_tag,)
    again = await run.apply(stays(door, moved=True))
    assert set(again.result.results["outcome"]) == {"already_created"}
    assert run.creates() == creates + 1


@pytest.mark.anyio
async def test_the_config_reissues_changed_stays_and_the_command_line_says_no_for_one_run(
    tmp_path, monkeypatch
):
    """[changes] reissue_changed = true does what --reissue-changed does; reissue_changed=False
    (--no-reissue-changed) keeps one run from it."""
    run, door = one_door_sandbox(tmp_path, monkeypatch, seed=53)
    config = tmp_path / "pipeline.toml"
    config.write_text("[changes]\nreissue_changed = true\n")
    await run.apply(stays(door), config_path=config)
    creates = run.creates()
    held = await run.apply(stays(door, moved=True), config_path=config, reissue_changed=False)
    row = held.result.results.filter(pl.col("reservation_id") == "MOVE").row(0, named=True)
    assert (row["outcome"], row["reason"], run.creates()) == (
        "rejected",
        "changed_after_creation",
        creates,
    )
    moved = await run.apply(stays(door, moved=True), config_path=config)
    row = moved.result.results.filter(pl.col("reservation_id") == "MOVE").row(0, named=True)
    assert (row["outcome"], run.creates()) == ("created", creates + 1)


@pytest.mark.parametrize(
    ("words", "given"),
    [([], None), (["--reissue-changed"], True), (["--no-reissue-changed"], False)],
)
def test_the_command_line_gives_yes_no_or_the_config_s_word(words, given):
    """apply's --reissue-changed / --no-reissue-changed; neither leaves it to the config."""
    assert build_parser().parse_args(["apply", "x.csv", *words]).reissue_changed is given


@pytest.mark.anyio
async def test_rows_rejected_last_night_are_planned_again_from_scratch(tmp_path, monkeypatch):
    """A row rejected for the door's budget one night is created the next night once the
    budget has been raised; the row created the first night is not sent again."""
    run, door = one_door_sandbox(tmp_path, monkeypatch, seed=53)
    first = await run.apply(stays(door), budget=BudgetOptions(per_door=1))
    outcomes = dict(first.result.results.select("reservation_id", "reason").rows())
    assert outcomes == {"KEEP": None, "MOVE": "budget_exhausted"}
    assert run.creates() == 1
    second = await run.apply(stays(door), budget=BudgetOptions(per_door=2))
    outcomes = dict(second.result.results.select("reservation_id", "outcome").rows())
    assert outcomes == {"KEEP": "already_created", "MOVE": "created"}
    assert run.creates() == 2
    assert set(run.tags_on_doors().values()) == {1}


@pytest.mark.anyio
async def test_a_cancelled_stay_with_a_code_is_orphaned_the_same_night(tmp_path, monkeypatch):
    """The export still lists a booking, now cancelled ([input.skip]): its row is skipped as
    excluded, nothing is sent, and its code (made the night before) is orphaned at once."""
    run, door = one_door_sandbox(tmp_path, monkeypatch, seed=52)
    config = tmp_path / "pipeline.toml"
    config.write_text('[input.skip]\nStatus = ["Cancelled", "No-show"]\n')
    booked = stays(door).with_columns(Status=pl.lit("Confirmed"))
    await run.apply(booked, config_path=config)
    creates = run.creates()
    cancelled = booked.with_columns(
        Status=pl.when(pl.col("reservation_id") == "MOVE")
        .then(pl.lit("cancelled"))
        .otherwise(pl.col("Status"))
    )
    again = await run.apply(cancelled, config_path=config)
    outcomes = {row["reservation_id"]: row for row in again.result.results.iter_rows(named=True)}
    assert (outcomes["MOVE"]["outcome"], outcomes["MOVE"]["reason"]) == ("skipped", "excluded")
    assert outcomes["KEEP"]["outcome"] == "already_created"
    assert run.creates() == creates
    assert again.newly_orphaned == 1
    assert orphaned_reservations(run.ledger) == ["MOVE"]
