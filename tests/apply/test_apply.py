"""apply against the in-process sandbox: exactly once under faults, reruns, stops, the ledger.

The loop's clock is virtual (tests/virtual_time.py): Seam's 10-per-minute door limit is kept
for real, but minutes of waiting take milliseconds.
"""

from __future__ import annotations

import io
import os
import sqlite3
import stat

import anyio
import polars as pl
import pytest
from rich.console import Console

from pipeline.apply.policy import CreatePolicy
from pipeline.apply.run import ApplySettings
from pipeline.cli.progress import ApplyProgress
from pipeline.common.errors import RunStopped
from pipeline.common.rates import Rate
from pipeline.sandbox import Faults
from tests.apply_helpers import API_KEY, start_sandbox
from tests.generate import make_devices, make_stays
from tests.paths import ROOT, SANDBOX_DEVICES

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]
SAMPLE = ROOT / "inputs" / "reservations-sample.csv"
SAMPLE_CONFIG = ROOT / "inputs" / "pipeline.toml"


def doors(count: int) -> dict:
    return make_devices(count, seed=count)


def load(payload: dict, *counts: int) -> list[tuple[str, int]]:
    return [(device["device_id"], n) for device, n in zip(payload["devices"], counts, strict=False)]


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def test_sample_creates_each_planned_code_with_its_planned_window(tmp_path, monkeypatch):
    """The sample: every planned row becomes a code with exactly the planned window; files 0600."""
    import json

    run = start_sandbox(json.loads(SANDBOX_DEVICES.read_text()), tmp_path, monkeypatch)
    applied = await run.apply(SAMPLE, config_path=SAMPLE_CONFIG)
    results = applied.result.results
    # A row per input row, and one per [doors.also] code the sample's Harbor View stays need.
    assert results.filter(pl.col("also_for").is_null()).height == pl.read_csv(SAMPLE).height
    assert (
        results.filter(pl.col("also_for").is_not_null())["door_name"].to_list()
        == ["Harbor Lobby"] * 5
    )
    assert set(results["outcome"]) == {"created", "rejected", "skipped"}
    assert applied.exit_code == 1  # the sample has rows meant to be rejected
    created = results.filter(pl.col("outcome") == "created")
    assert created["access_code_id"].null_count() == 0
    assert (created["attempts"] == 1).all()
    assert created["seam_request_id"].null_count() == 0
    for row in created.iter_rows(named=True):
        code = run.state.codes[row["access_code_id"]]
        assert row["idempotency_tag"] in code.name
        assert code.starts_at == pl.Series([row["starts_at"]]).str.to_datetime()[0]
        assert code.ends_at == pl.Series([row["ends_at"]]).str.to_datetime()[0]
    assert mode(applied.out) == 0o600
    assert mode(run.ledger) == 0o600
    assert all(mode(p) == 0o600 for p in tmp_path.glob("ledger.sqlite*"))


async def test_a_thousand_codes_under_faults_exist_exactly_once(tmp_path, monkeypatch):
    """1,000 codes, 40 doors, 10% 503s before acting, 15% answers lost after: each code once."""
    payload = doors(40)
    run = start_sandbox(
        payload, tmp_path, monkeypatch, faults=Faults(fail_before=0.1, drop_after=0.15), seed=3
    )
    stays = make_stays(load(payload, *[25] * 40))
    applied = await run.apply(stays)
    results = applied.result.results
    assert results.height == 1_000
    assert (results["outcome"] == "created").all()
    on_doors = run.tags_on_doors()
    assert sorted(on_doors) == sorted(results["idempotency_tag"])
    assert set(on_doors.values()) == {1}
    assert (results["reason"] == "adopted").sum() > 50  # lost answers were found, not resent
    assert run.state.requests[("/access_codes/create", 429)] == 0
    assert applied.exit_code == 0


async def test_rerun_creates_nothing(tmp_path, monkeypatch):
    """A second run of the same input sends no create and reports every row already_created."""
    payload = doors(5)
    run = start_sandbox(payload, tmp_path, monkeypatch, faults=Faults(drop_after=0.3))
    stays = make_stays(load(payload, 4, 4, 4, 4, 4))
    first = await run.apply(stays)
    creates = sum(n for (path, _), n in run.state.requests.items() if "create" in path)
    second = await run.apply(stays)
    assert sum(n for (path, _), n in run.state.requests.items() if "create" in path) == creates
    assert (second.result.results["outcome"] == "already_created").all()
    assert second.result.results["access_code_id"].to_list() == (
        first.result.results["access_code_id"].to_list()
    )
    assert second.exit_code == 0


async def test_codes_a_killed_run_left_sending_are_looked_for_before_anything_is_sent(
    tmp_path, monkeypatch
):
    """A `sending` code found on the door is adopted; one that never arrived is created once."""
    payload = doors(2)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    stays = make_stays(load(payload, 3, 3))
    first = (await run.apply(stays)).result.results
    arrived, lost = first["idempotency_tag"][0], first["idempotency_tag"][1]
    lost_code = run.state.codes.pop(first["access_code_id"][1])
    run.state.codes_by_device[lost_code.device_id].remove(lost_code)
    with sqlite3.connect(run.ledger) as db:
        db.execute(
            "UPDATE codes SET state = 'sending' WHERE idempotency_tag IN (?, ?)", (arrived, lost)
        )
    creates = run.creates()
    second = (await run.apply(stays)).result.results
    assert run.creates() == creates + 1
    by_tag = {row["idempotency_tag"]: row for row in second.iter_rows(named=True)}
    assert (by_tag[arrived]["outcome"], by_tag[arrived]["reason"]) == ("created", "adopted")
    assert by_tag[arrived]["access_code_id"] == first["access_code_id"][0]
    assert by_tag[lost]["outcome"] == "created"
    assert set(run.tags_on_doors().values()) == {1}


async def test_a_revoked_key_stops_the_run_and_what_was_done_is_kept(tmp_path, monkeypatch):
    """A 401 mid-run: exit 3, results for every row, the ledger knows; a rerun finishes once."""
    payload = doors(3)
    faults = Faults()
    run = start_sandbox(payload, tmp_path, monkeypatch, faults=faults)
    stays = make_stays(load(payload, 30, 30, 30))

    async def revoke_after_some_creates() -> None:
        while run.creates() < 25:  # noqa: ASYNC110 (the sandbox counter has no event)
            await anyio.sleep(1)
        faults.revoked_keys.add(API_KEY)

    async with anyio.create_task_group() as group:
        group.start_soon(revoke_after_some_creates)
        stopped = await run.apply(stays)
    assert isinstance(stopped.result.stopped, RunStopped)
    assert stopped.exit_code == 3
    assert "SEAM_API_KEY" in stopped.result.stopped.one_line()
    results = stopped.result.results
    assert results.height == 90
    assert 25 <= (results["outcome"] == "created").sum() < 90
    assert set(results.filter(pl.col("outcome") != "created")["reason"]) == {"not_attempted"}
    with sqlite3.connect(run.ledger) as db:
        assert db.execute("SELECT exit_code FROM runs").fetchall() == [(3,)]
    faults.revoked_keys.clear()
    finished = await run.apply(stays)
    assert finished.exit_code == 0
    assert set(finished.result.results["outcome"]) == {"created", "already_created"}
    assert sorted(run.tags_on_doors().values()) == [1] * 90


async def test_skewed_load_small_doors_finish_long_before_the_big_one(tmp_path, monkeypatch):
    """One door with 60 codes and 200 with 1-3: the small ones never wait on it; no 429."""
    payload = doors(201)
    counts = [60] + [1 + n % 3 for n in range(200)]
    run = start_sandbox(payload, tmp_path, monkeypatch, global_rate=20)
    started = anyio.current_time()
    applied = await run.apply(
        make_stays(load(payload, *counts)), ApplySettings(door_rate=Rate(10, 60), global_rate=20)
    )
    assert (applied.result.results["outcome"] == "created").all()
    assert sum(n for (_, status), n in run.state.requests.items() if status == 429) == 0
    big = payload["devices"][0]["device_id"]
    finished = {}
    for code in run.state.codes.values():
        finished[code.device_id] = max(finished.get(code.device_id, 0.0), code.created_monotonic)
    big_done = finished.pop(big) - started
    small_done = max(finished.values()) - started
    assert big_done >= 5 * 60  # (60 - 10) / 10 per minute
    assert small_done < big_done / 5


async def test_unknown_door_limit_is_learnt_from_the_first_429s(tmp_path, monkeypatch):
    """With --door-rate off the client learns Seam's door limit: few 429s, each code once."""
    payload = doors(20)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    applied = await run.apply(make_stays(load(payload, *[30] * 20)), ApplySettings(door_rate=None))
    assert (applied.result.results["outcome"] == "created").all()
    assert set(run.tags_on_doors().values()) == {1}
    rate_limited = run.state.requests[("/access_codes/create", 429)]
    assert 1 <= rate_limited <= 20  # at most one per door before the limit is known
    assert applied.result.learnt_door_rate is not None
    assert applied.result.learnt_door_rate.count <= 10


async def test_seam_unreachable_for_longer_than_give_up_after_stops_the_run(tmp_path, monkeypatch):
    """Every request failing for over --give-up-after: exit 3, results and ledger still written."""
    payload = doors(2)
    faults = Faults()
    run = start_sandbox(payload, tmp_path, monkeypatch, faults=faults)
    stays = make_stays(load(payload, 20, 20))

    async def fail_everything_after_some_creates() -> None:
        while run.creates() < 5:  # noqa: ASYNC110 (the sandbox counter has no event)
            await anyio.sleep(1)
        faults.fail_before = 1.0

    settings = ApplySettings(policy=CreatePolicy(give_up_after=120))
    async with anyio.create_task_group() as group:
        group.start_soon(fail_everything_after_some_creates)
        started = anyio.current_time()
        stopped = await run.apply(stays, settings)
    assert isinstance(stopped.result.stopped, RunStopped)
    assert "no usable answer for" in stopped.result.stopped.message
    assert anyio.current_time() - started >= 120
    assert stopped.exit_code == 3
    results = stopped.result.results
    assert results.height == 40
    assert set(results["outcome"]) == {"created", "failed"}
    assert set(results.filter(pl.col("outcome") == "failed")["reason"]) <= {
        "not_attempted",
        "outcome_unknown",
    }
    faults.fail_before = 0.0
    finished = await run.apply(stays)
    assert finished.exit_code == 0
    assert sorted(run.tags_on_doors().values()) == [1] * 40


def test_progress_shows_codes_done_and_429s():
    """The progress line counts finished codes (created/failed) and 429s, not lookups."""
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    with ApplyProgress(console) as progress:
        progress.start(5)
        for event in ("created", "rate_limited", "unknown", "created", "failed"):
            progress.advance(event)
    shown = console.file.getvalue()
    assert "3/5" in shown
    assert "429s: 1" in shown
