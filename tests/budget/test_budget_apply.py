"""Budgets end to end: apply against the sandbox's per-door code limits, and plan's summary.

The sandbox refuses a create on a door that holds its limit of codes with
``no_space_for_access_code_on_device`` (as Seam does); its clock is virtual here
(tests/virtual_time.py), so the 10-per-minute door limit costs no real time.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import polars as pl
import pytest

from pipeline.apply.run import ApplySettings
from pipeline.cli import main
from pipeline.common.errors import UsageError
from pipeline.common.rates import Rate
from pipeline.common.settings import BudgetOptions
from tests.apply_helpers import SandboxRun, start_sandbox
from tests.generate import make_devices, make_stays
from tests.paths import ROOT, SANDBOX_DEVICES

pytestmark = pytest.mark.virtual_time

SAMPLE = ROOT / "inputs" / "reservations-sample.csv"
SAMPLE_CONFIG = ROOT / "inputs" / "pipeline.toml"
NO_SPACE = "no_space_for_access_code_on_device"


def doors_with_limits(*limits: int | None) -> tuple[dict, list[str]]:
    """A device payload with one door per limit (None: no limit) in the sandbox section."""
    payload = make_devices(len(limits), seed=len(limits) + 40)
    ids = [device["device_id"] for device in payload["devices"]]
    payload["sandbox"] = {
        "code_limits": {ids[n]: limit for n, limit in enumerate(limits) if limit is not None}
    }
    return payload, ids


def write_config(run: SandboxRun, text: str):
    path = run.folder / "pipeline.toml"
    path.write_text(text)
    return path


def codes_on(run: SandboxRun, device_id: str) -> int:
    return len(run.state.codes_by_device[device_id])


def refused(run: SandboxRun) -> int:
    """Creates the sandbox answered with 400 (a rule or a full door)."""
    return run.creates(400)


def budget_rows(results: pl.DataFrame, device_id: str) -> pl.DataFrame:
    return results.filter(
        (pl.col("device_id") == device_id) & (pl.col("reason") == "budget_exhausted")
    )


@pytest.mark.anyio
async def test_budgets_at_or_below_the_sandbox_limit_never_meet_a_limit_error(
    tmp_path, monkeypatch
):
    """Budget = limit, budget < limit, per_door < no limit: codes stop at the budget, no 400."""
    payload, (at_limit, below, unlimited) = doors_with_limits(5, 8, None)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    config = write_config(
        run, f'[budgets]\nper_door = 7\n[budgets.doors]\n"{at_limit}" = 5\n"{below}" = 6\n'
    )
    stays = make_stays([(at_limit, 12), (below, 12), (unlimited, 12)])
    applied = await run.apply(stays, config_path=config)
    results = applied.result.results
    assert refused(run) == 0
    assert [codes_on(run, door) for door in (at_limit, below, unlimited)] == [5, 6, 7]
    for door, budget in ((at_limit, 5), (below, 6), (unlimited, 7)):
        over = budget_rows(results, door)
        assert over.height == 12 - budget
        assert set(over["outcome"]) == {"rejected"}
        made = results.filter((pl.col("device_id") == door) & (pl.col("outcome") == "created"))
        # Allocation order: the earliest stays got the codes.
        assert made["starts_at_utc"].max() <= over["starts_at_utc"].min()
    assert applied.exit_code == 1

    again = await run.apply(stays, config_path=config)
    assert refused(run) == 0
    assert [codes_on(run, door) for door in (at_limit, below, unlimited)] == [5, 6, 7]
    counts = dict(again.result.results.group_by("outcome").len().rows())
    assert counts == {"already_created": 18, "rejected": 18}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("door_rate", "most_refused"),
    [
        # One create at a time per door: the first refusal is the only one.
        (Rate(1, 1.0), 1),
        # Seam's 10 per minute: only creates already in flight when the first refusal came.
        (Rate(10, 60.0), 5),
    ],
)
async def test_a_budget_above_the_sandbox_limit_stops_that_door_only(
    tmp_path, monkeypatch, door_rate, most_refused
):
    """Budget 20 on a door that holds 5: it stops at Seam's no-space answer; others go on."""
    payload, (full, other, third) = doors_with_limits(5, None, None)
    run = start_sandbox(
        payload, tmp_path, monkeypatch, door_rate=(door_rate.count, door_rate.period)
    )
    stays = make_stays([(full, 12), (other, 12), (third, 12)])
    applied = await run.apply(
        stays, ApplySettings(door_rate=door_rate), budget=BudgetOptions(per_door=20)
    )
    results = applied.result.results
    assert 1 <= refused(run) <= most_refused
    assert codes_on(run, full) == 5
    assert codes_on(run, other) == codes_on(run, third) == 12
    over = budget_rows(results, full)
    assert over.height == 7
    assert set(over["outcome"]) == {"rejected"}
    assert over["message"].str.contains(NO_SPACE).all()
    # The rows refused by Seam say so; the rest were never sent.
    assert over["message"].str.starts_with("not sent").sum() == 7 - refused(run)
    assert applied.exit_code == 1


class SeedAfterFirstList(httpx.AsyncBaseTransport):
    """Adds codes to a door right after the door's codes are first listed (the plan's count),
    as another process using the door's budget between the plan and the first create would."""

    def __init__(self, inner: httpx.AsyncBaseTransport, device_id: str, count: int) -> None:
        self.inner, self.device_id, self.count = inner, device_id, count
        self.lists = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = json.loads(request.content or b"{}")
        if request.url.path == "/access_codes/list" and body.get("device_id") == self.device_id:
            self.lists += 1
            if self.lists == 1:
                seed = httpx.Request(
                    "POST",
                    "http://sandbox/_sandbox/seed_codes",
                    json={"per_door": self.count, "device_ids": [self.device_id]},
                )
                await self.inner.handle_async_request(seed)
        return response


@pytest.mark.anyio
async def test_a_full_door_is_named_with_its_site_and_its_id_after(tmp_path, monkeypatch, caplog):
    """Seam's no-space answer: the error line and the rows' message name the door and its
    site as a person knows them, with the device_id after."""
    payload, (full,) = doors_with_limits(1)
    run = start_sandbox(payload, tmp_path, monkeypatch, door_rate=(1, 1.0))
    with caplog.at_level("ERROR", logger="pipeline.apply.creator"):
        applied = await run.apply(
            make_stays([(full, 3)]),
            ApplySettings(door_rate=Rate(1, 1.0)),
            budget=BudgetOptions(per_door=20),
        )
    row = applied.result.results.row(0, named=True)
    door = f"{row['door_name']} at {row['site_name']} ({full})"
    assert [record.getMessage() for record in caplog.records] == [
        f"door {door} is full: its remaining creates are not sent"
    ]
    refused = sorted(budget_rows(applied.result.results, full)["message"], key=len)
    assert refused[0].startswith(
        f"Seam has no space for more codes on door {door}: Seam error {NO_SPACE}: "
    )
    assert refused[1] == f"not sent: {refused[0]}"


@pytest.mark.anyio
async def test_a_stale_door_is_counted_again_just_before_its_first_create(tmp_path, monkeypatch):
    """Codes made by someone else after a door's look are seen before its first create when the
    look has gone stale: the rows that no longer fit are withdrawn, and Seam never refuses one."""
    payload, (busy, quiet) = doors_with_limits(10, 10)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    seeding = SeedAfterFirstList(run.transport, busy, 4)
    run.transport = seeding
    stays = make_stays([(busy, 10), (quiet, 10)])
    applied = await run.apply(
        stays, ApplySettings(recount_after=0), budget=BudgetOptions(per_door=10)
    )
    results = applied.result.results
    # The door's look, then the re-count before its first create (the status refresh at the
    # end asks by code id, not by door).
    assert seeding.lists == 2
    assert refused(run) == 0
    assert codes_on(run, busy) == 10  # 4 seeded + 6 of ours
    assert codes_on(run, quiet) == 10
    over = budget_rows(results, busy)
    assert over.height == 4
    assert over["message"].str.starts_with("counted again just before").all()
    assert applied.budgets.exceeded.is_empty()  # the plan's own count saw room for all


@pytest.mark.anyio
async def test_abort_exits_2_before_any_create(tmp_path, monkeypatch):
    """--on-budget-exceeded abort: exit 2 naming the door, no create sent, the run recorded."""
    payload, (small, large) = doors_with_limits(None, None)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    config = write_config(run, f'[budgets]\nper_door = 50\n[budgets.doors]\n"{small}" = 3\n')
    with pytest.raises(UsageError) as raised:
        await run.apply(
            make_stays([(small, 5), (large, 5)]),
            config_path=config,
            budget=BudgetOptions(on_exceeded="abort"),
        )
    assert raised.value.exit_code == 2
    assert small in raised.value.one_line()
    assert "nothing was sent" in raised.value.one_line()
    assert sum(n for (path, _), n in run.state.requests.items() if "create" in path) == 0
    with sqlite3.connect(run.ledger) as db:
        assert db.execute("SELECT exit_code FROM runs").fetchall() == [(2,)]


@pytest.mark.anyio
async def test_skip_door_creates_nothing_on_a_door_over_budget(tmp_path, monkeypatch):
    """--on-budget-exceeded skip-door: the door over budget gets no code, the others all."""
    payload, (small, large) = doors_with_limits(None, None)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    config = write_config(run, f'[budgets]\nper_door = 50\n[budgets.doors]\n"{small}" = 3\n')
    applied = await run.apply(
        make_stays([(small, 5), (large, 5)]),
        config_path=config,
        budget=BudgetOptions(on_exceeded="skip-door"),
    )
    assert codes_on(run, small) == 0
    assert codes_on(run, large) == 5
    skipped = budget_rows(applied.result.results, small)
    assert skipped.height == 5
    assert skipped["message"].str.contains("skip-door").all()


@pytest.mark.anyio
async def test_concurrent_mode_counts_only_codes_valid_at_once(tmp_path, monkeypatch):
    """Budget of 1 valid code: a run of back-to-back stays all fit; an overlapping one doesn't."""
    payload, (door,) = doors_with_limits(None)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    days = ["2027-02-01", "2027-02-03", "2027-02-05", "2027-02-08"]
    stays = pl.DataFrame(
        {
            "reservation_id": ["A", "B", "C", "X"],
            "device_id": [door] * 4,
            "check_in": [days[0], days[1], days[2], "2027-02-02"],
            "check_out": [days[1], days[2], days[3], "2027-02-04"],
        }
    )
    applied = await run.apply(stays, budget=BudgetOptions(per_door=1, mode="concurrent"))
    outcomes = dict(applied.result.results.select("reservation_id", "outcome").rows())
    assert outcomes == {"A": "created", "B": "created", "C": "created", "X": "rejected"}
    assert codes_on(run, door) == 3


@pytest.mark.anyio
async def test_codes_already_on_the_door_are_adopted_when_the_ledger_is_lost(tmp_path, monkeypatch):
    """A fresh ledger: codes Seam already lists with the row's tag are adopted, not resent."""
    payload, (door, other) = doors_with_limits(None, None)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    stays = make_stays([(door, 6), (other, 6)])
    await run.apply(stays, budget=BudgetOptions(per_door=100))
    creates = run.creates()
    for leftover in tmp_path.glob("ledger.sqlite*"):
        leftover.unlink()
    again = await run.apply(stays, budget=BudgetOptions(per_door=100))
    assert run.creates() == creates
    results = again.result.results
    assert set(zip(results["outcome"], results["reason"], strict=True)) == {
        ("already_created", "found_on_door")
    }
    assert set(run.tags_on_doors().values()) == {1}
    assert again.budgets.doors["on_door"].to_list() == [6, 6]


def test_plan_counts_codes_from_a_saved_list_and_flags_a_door_near_full(tmp_path, capsys):
    """plan --devices --codes: the saved codes are used; a door at >= 90 % is named."""
    devices = json.loads(SANDBOX_DEVICES.read_text())
    room_102 = next(
        d["device_id"]
        for d in devices["devices"]
        if d["properties"].get("name") == "Room 102"
        and d["properties"]["dormakaba_oracode_metadata"]["site_name"] == "Harbor View"
    )
    saved = tmp_path / "codes.json"
    saved.write_text(
        json.dumps(
            {
                "access_codes": [
                    {
                        "access_code_id": f"c{n}",
                        "device_id": room_102,
                        "name": f"someone else's {n}",
                        "status": "set",
                        "starts_at": "2027-01-01T15:00:00.000Z",
                        "ends_at": "2027-01-03T11:00:00.000Z",
                    }
                    for n in range(2)
                ]
            }
        )
    )
    out = tmp_path / "plan.csv"
    # The sample's config without its budgets (a reserve would leave no room here).
    code = plan_sample(
        tmp_path, "", "--codes", str(saved), "--budget-per-door", "3", "--out", str(out)
    )
    printed = " ".join(capsys.readouterr().out.split())
    assert code == 1  # the sample's own rejections
    # The sample's Harbor View stays also need the lobby ([doors.also]): 4 codes on a budget of 3.
    assert "will be at 90 % or more of their budget after this run: Harbor Lobby, Room 102" in (
        printed
    )
    assert "not counted" not in printed
    plan = pl.read_csv(out)
    assert plan.filter(pl.col("reason") == "budget_exhausted")["door_name"].to_list() == [
        "Harbor Lobby"
    ]
    assert plan.filter(pl.col("device_id") == room_102)["outcome"].to_list() == [
        "planned",
        "rejected",
    ]


def test_plan_abort_exits_2_with_one_line_and_keeps_the_plan(tmp_path, capsys):
    """--on-budget-exceeded abort in plan: exit 2, one line naming the door, plan written."""
    out = tmp_path / "plan.csv"
    code = main(
        [
            "plan",
            str(SAMPLE),
            "--config",
            str(SAMPLE_CONFIG),
            "--devices",
            str(SANDBOX_DEVICES),
            "--budget-per-door",
            "0",
            "--on-budget-exceeded",
            "abort",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1
    assert err[0].startswith("error: ")
    assert "over budget" in err[0]
    assert str(out) in err[0]
    assert pl.read_csv(out).filter(pl.col("reason") == "budget_exhausted").height > 0


def test_codes_without_devices_is_refused(tmp_path, capsys):
    """--codes only makes sense with --devices: exit 2 and one line."""
    code = main(["plan", str(SAMPLE), "--codes", str(tmp_path / "codes.json")])
    assert code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_budget_names_that_match_no_door_or_site_are_named(tmp_path, capsys):
    """A typo in [budgets.doors] or [budgets.sites] gets a warning line naming the key and the
    closest names; keys that match (a door name in any case, a site) are not named."""
    plan_sample(
        tmp_path,
        '[budgets]\nper_door = 40\n[budgets.doors]\n"Zimmer 3" = 5\n"Zimmr 9" = 5\n'
        '[budgets.sites]\n"harbor view" = 20\n"Alpnhof" = 10\n',
        "--out",
        str(tmp_path / "plan.csv"),
    )
    warnings = [
        line for line in capsys.readouterr().out.splitlines() if "match(es) no door" in line
    ]
    assert len(warnings) == 1
    assert (
        '[budgets.doors] \'Zimmr 9\' (did you mean "Zimmer 3", "Zimmer 2" or "Zimmer 1"?),'
        " [budgets.sites] 'Alpnhof' (did you mean \"Alpenhof\"?) match(es)"
    ) in warnings[0]


def plan_sample(folder: Path, budgets: str, *options: str) -> int:
    """``plan`` on the sample, offline, with the sample's config but ``budgets`` for its
    ``[budgets]`` part."""
    config = folder / "pipeline.toml"
    config.write_text(SAMPLE_CONFIG.read_text().split("[budgets]")[0] + budgets)
    return main(
        ["plan", str(SAMPLE), "--config", str(config), "--devices", str(SANDBOX_DEVICES), *options]
    )
