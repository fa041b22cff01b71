"""Exactly once with Seam as the truth: a new or lost ledger, late creates behind a gateway, a
list that lags, a 200 that describes another code, and one look per door per run.

The loop's clock is virtual (tests/virtual_time.py): settle times of minutes take milliseconds.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import signal
import sqlite3

import anyio
import httpx
import polars as pl
import pytest

from pipeline.apply.policy import CreatePolicy
from pipeline.apply.run import ApplySettings
from pipeline.apply.scheduler import PREPARE_LEAD
from pipeline.common.interrupts import Interrupt
from pipeline.common.rates import Rate
from pipeline.common.settings import BudgetOptions
from pipeline.sandbox import Faults
from pipeline.sandbox.handlers import carry_out_late_creates
from tests.apply_helpers import SandboxRun, start_sandbox
from tests.generate import make_devices, make_stays

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]


def doors(count: int, *, limit: int | None = None) -> dict:
    """``count`` generated doors; with ``limit``, each holds at most that many codes."""
    payload = make_devices(count, seed=count + 70)
    if limit is not None:
        payload["sandbox"] = {"code_limits": {d["device_id"]: limit for d in payload["devices"]}}
    return payload


def each_door(payload: dict, count: int, *, seed: int = 5) -> pl.DataFrame:
    return make_stays([(d["device_id"], count) for d in payload["devices"]], seed=seed)


def sent_ago(seconds: float) -> str:
    """A ledger send time ``seconds`` before now."""
    return (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)).isoformat()


def requests(run: SandboxRun) -> int:
    """Every request the sandbox has answered, on Seam's paths."""
    return sum(n for (path, _), n in run.state.requests.items() if not path.startswith("/_"))


@pytest.mark.parametrize("budget", [None, 6], ids=["unbudgeted", "budget-exactly-full"])
@pytest.mark.parametrize("how", ["deleted", "another-name", "restored-old-backup"])
async def test_a_new_or_lost_ledger_on_doors_full_of_our_codes_creates_nothing(
    tmp_path, monkeypatch, caplog, budget, how
):
    """The same file applied again with a new, lost or stale ledger: every code the ledger
    doesn't know is found on its door and adopted (already_created, found_on_door), none is
    created again, and a run on an empty ledger says once that every door will be looked at."""
    payload = doors(5, limit=6)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    stays = each_door(payload, 6)
    options = {"budget": BudgetOptions(per_door=budget)} if budget else {}
    backup = tmp_path / "backup.sqlite"
    if how == "restored-old-backup":
        # A backup taken after a night that made only half of the codes.
        await run.apply(stays.head(15), **options)
        shutil.copyfile(run.ledger, backup)
    first = await run.apply(stays, **options)
    assert set(first.result.results["outcome"]) <= {"created", "already_created"}
    creates = run.creates()
    assert creates == 30
    if how == "deleted":
        for leftover in tmp_path.glob("ledger.sqlite*"):
            leftover.unlink()
    elif how == "restored-old-backup":
        for leftover in tmp_path.glob("ledger.sqlite*"):
            leftover.unlink()
        backup.rename(run.ledger)
    else:
        run.folder = tmp_path / "another-folder"
        run.folder.mkdir()
    caplog.clear()
    again = await run.apply(stays, **options)
    results = again.result.results
    assert run.creates() == creates
    found = results.filter(pl.col("reason") == "found_on_door")
    assert (results["outcome"] == "already_created").all()
    assert found.height == (15 if how == "restored-old-backup" else 30)
    assert results["access_code_id"].to_list() == first.result.results["access_code_id"].to_list()
    assert set(run.tags_on_doors().values()) == {1}
    assert again.exit_code == 0
    notices = [r for r in caplog.records if "ledger holds no codes" in r.getMessage()]
    assert len(notices) == (0 if how == "restored-old-backup" else 1)


async def test_late_creates_settled_longer_than_their_lateness_make_no_duplicate(
    tmp_path, monkeypatch
):
    """A fifth of creates answered 504 at once and carried out 30 s later, lists 10 s behind:
    with a 60 s settle time, 400 codes each exist once and none is lost."""
    payload = doors(40)
    faults = Faults(late=0.2, late_after=30.0, list_lag=10.0)
    run = start_sandbox(payload, tmp_path, monkeypatch, faults=faults, seed=4)
    stays = each_door(payload, 10)
    settings = ApplySettings(policy=CreatePolicy(settle_after=60.0))
    applied = await run.apply(stays, settings)
    results = applied.result.results
    late = run.state.late_counts["answered_504"]
    assert late > 40
    assert (results["outcome"] == "created").all()
    on_doors = run.tags_on_doors()
    assert sorted(on_doors) == sorted(results["idempotency_tag"])
    assert set(on_doors.values()) == {1}
    assert (results["reason"] == "adopted").sum() == late


async def test_a_settle_time_shorter_than_the_lateness_is_what_duplicates(tmp_path, monkeypatch):
    """The control: the same late backend with a 5 s settle time does duplicate codes, so the
    settle time is what keeps the test above at none."""
    payload = doors(10)
    faults = Faults(late=0.3, late_after=30.0)
    run = start_sandbox(payload, tmp_path, monkeypatch, faults=faults, seed=4)
    settings = ApplySettings(policy=CreatePolicy(settle_after=5.0))
    await run.apply(each_door(payload, 10), settings)
    run.state.clock.advance(60)
    carry_out_late_creates(run.state)
    assert max(run.tags_on_doors().values()) > 1


async def test_a_run_ending_while_codes_settle_leaves_them_for_the_next(tmp_path, monkeypatch):
    """A settle time longer than --give-up-after: the late codes are left outcome_unknown, never
    resent early; the next run, after they settled, adopts them: each code once."""
    payload = doors(4)
    faults = Faults(late=1.0, late_after=30.0)
    run = start_sandbox(payload, tmp_path, monkeypatch, faults=faults, seed=2)
    stays = each_door(payload, 3)
    policy = CreatePolicy(settle_after=600.0, give_up_after=300.0)
    first = await run.apply(stays, ApplySettings(policy=policy))
    results = first.result.results
    assert set(zip(results["outcome"], results["reason"], strict=True)) == {
        ("failed", "outcome_unknown")
    }
    assert run.creates(504) == 12
    assert run.creates(200) == 0
    faults.late = 0.0
    # Time passes: the backend has long finished, and the settle time since each send too.
    run.state.clock.advance(700)
    with sqlite3.connect(run.ledger) as db:
        db.execute(f"UPDATE codes SET sent_at = '{sent_ago(700)}'")
    again = await run.apply(stays, ApplySettings(policy=policy))
    assert (again.result.results["outcome"] == "created").all()
    assert set(again.result.results["reason"]) == {"adopted"}
    assert (run.creates(504), run.creates(200)) == (12, 0)
    assert set(run.tags_on_doors().values()) == {1}


class ForgedAnswers(httpx.AsyncBaseTransport):
    """Rewrites every create's 200 to describe another code: on another door, or without our
    tag in its name. With ``swallow`` the create never reaches the sandbox at all."""

    def __init__(self, inner: httpx.AsyncBaseTransport, forge: str, *, swallow: bool) -> None:
        self.inner, self.forge, self.swallow = inner, forge, swallow
        self.forged = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/access_codes/create":
            return await self.inner.handle_async_request(request)
        body = json.loads(request.content)
        code = {
            "access_code_id": f"forged-{self.forged}",
            "device_id": body["device_id"],
            "name": body["name"],
            "status": "unset",
            "is_offline_access_code": True,
        }
        if not self.swallow:
            answer = await self.inner.handle_async_request(request)
            await answer.aread()
            code = answer.json()["access_code"]
        if self.forge == "another door":
            code["device_id"] = "some-other-door"
        else:
            code["name"] = "a code that isn't ours"
        self.forged += 1
        return httpx.Response(200, json={"access_code": code, "ok": True})


@pytest.mark.parametrize("forge", ["another door", "no tag"])
@pytest.mark.parametrize("swallow", [False, True], ids=["code-made", "nothing-made"])
async def test_a_200_that_describes_another_code_is_looked_up_not_trusted(
    tmp_path, monkeypatch, forge, swallow
):
    """A 200 naming another door or a code without our tag is an unknown outcome: the door is
    looked at after the settle time; a code that was made is adopted, one that wasn't is sent
    again; never recorded from the forged answer."""
    payload = doors(3)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    forged = ForgedAnswers(run.transport, forge, swallow=swallow)
    run.transport = forged
    stays = each_door(payload, 2)
    applied = await run.apply(stays)
    results = applied.result.results
    assert not results["access_code_id"].str.starts_with("forged").any()
    if swallow:
        # Every answer is forged and nothing ever reaches the doors: the run makes no
        # progress and stops; nothing was recorded as created.
        assert "created" not in set(results["outcome"])
        assert run.tags_on_doors() == {}
    else:
        assert set(zip(results["outcome"], results["reason"], strict=True)) == {
            ("created", "adopted")
        }
        assert set(run.tags_on_doors().values()) == {1}
        assert forged.forged == 6


async def test_a_nightly_rerun_spends_about_two_requests_per_new_code(tmp_path, monkeypatch):
    """300 budgeted doors with one new stay each: one look and one create per door, the status
    refresh batched by code id: at most 2.1 requests per new code, counted by the sandbox."""
    payload = doors(300)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    budget = BudgetOptions(per_door=50)
    tonight = each_door(payload, 1, seed=5)
    await run.apply(tonight, budget=budget)
    before, lists_before = requests(run), run.state.requests[("/access_codes/list", 200)]
    tomorrow = pl.concat([tonight, each_door(payload, 1, seed=6)])
    applied = await run.apply(tomorrow, budget=budget)
    results = applied.result.results
    assert (results["outcome"] == "created").sum() == 300
    assert (results["outcome"] == "already_created").sum() == 300
    spent = requests(run) - before
    assert spent == applied.result.requests
    assert spent / 300 <= 2.1
    # One look per door with a new stay, and three batches of 100 codes for their statuses.
    assert run.state.requests[("/access_codes/list", 200)] - lists_before == 300 + 3
    assert applied.result.requests_per_new_code == pytest.approx(spent / 300)


class FailingLists(httpx.AsyncBaseTransport):
    """Answers the first ``count`` lists of one door's codes with 503, as a struggling Seam."""

    def __init__(self, inner: httpx.AsyncBaseTransport, device_id: str, count: int) -> None:
        self.inner, self.device_id, self.count = inner, device_id, count

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        is_list = request.url.path == "/access_codes/list" and self.count > 0
        if is_list and json.loads(request.content).get("device_id") == self.device_id:
            self.count -= 1
            return httpx.Response(503, json={"error": {"type": "unavailable"}, "ok": False})
        return await self.inner.handle_async_request(request)


async def test_a_door_whose_look_keeps_failing_sends_nothing_until_it_is_looked_at(
    tmp_path, monkeypatch
):
    """With a lost ledger, a door whose list fails again and again (its retries spent twice)
    sends no create before its look finally answers: its codes are adopted, none doubled."""
    payload = doors(2)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    stays = each_door(payload, 3)
    await run.apply(stays)
    for leftover in tmp_path.glob("ledger.sqlite*"):
        leftover.unlink()
    struggling = payload["devices"][0]["device_id"]
    run.transport = FailingLists(run.transport, struggling, count=12)
    again = await run.apply(stays)
    assert run.transport.count == 0
    assert set(again.result.results["reason"]) == {"found_on_door"}
    assert set(run.tags_on_doors().values()) == {1}


@pytest.mark.parametrize(
    ("sent", "waits"), [(1_000.0, False), (10.0, True)], ids=["settled", "still-settling"]
)
async def test_a_code_left_sending_is_resent_only_after_its_settle_time(
    tmp_path, monkeypatch, sent, waits
):
    """A code a killed run left sending, which never reached the door: sent 1,000 s ago it is
    known not made and created at once; sent 10 s ago the run waits out the rest of the
    120 s settle time and looks again before creating it. Either way it exists once."""
    payload = doors(1)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    stays = each_door(payload, 2)
    first = (await run.apply(stays)).result.results
    lost = first["idempotency_tag"][0]
    code = run.state.codes.pop(first["access_code_id"][0])
    run.state.codes_by_device[code.device_id].remove(code)
    sent_at = sent_ago(sent)
    with sqlite3.connect(run.ledger) as db:
        db.execute(
            "UPDATE codes SET state = 'sending', sent_at = ? WHERE idempotency_tag = ?",
            (sent_at, lost),
        )
    creates, searches = run.creates(), run.state.requests[("/access_codes/list", 200)]
    started = anyio.current_time()
    again = (await run.apply(stays)).result.results
    waited = anyio.current_time() - started
    # The settle time runs on the wall clock, which the loop's virtual clock doesn't move:
    # what the run still had to wait is 120 s less the wall time since the send.
    since_sent = dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(sent_at)
    by_tag = {row["idempotency_tag"]: row for row in again.iter_rows(named=True)}
    assert by_tag[lost]["outcome"] == "created"
    assert run.creates() == creates + 1
    assert set(run.tags_on_doors().values()) == {1}
    lists = run.state.requests[("/access_codes/list", 200)] - searches
    if waits:
        assert waited >= 120 - since_sent.total_seconds()  # the rest of the settle time
        assert lists == 3  # the door's look, the look once settled, the status refresh
    else:
        assert waited < 60
        assert lists == 2  # the door's look, the status refresh


class RefusedCreates(httpx.AsyncBaseTransport):
    """Answers every create 429, with ``retry_after`` as its Retry-After header (None: none),
    until ``open`` is set; everything else goes to the sandbox."""

    def __init__(self, inner: httpx.AsyncBaseTransport, retry_after: str | None) -> None:
        self.inner, self.retry_after, self.open, self.refused = inner, retry_after, False, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/access_codes/create" or self.open:
            return await self.inner.handle_async_request(request)
        self.refused += 1
        headers = {"retry-after": self.retry_after} if self.retry_after else {}
        error = {"type": "rate_limited", "message": "slow down", "data": {"limit": "door"}}
        return httpx.Response(429, headers=headers, json={"error": error, "ok": False})


@pytest.mark.parametrize("retry_after", ["86400", None], ids=["a-day", "no-header"])
async def test_creates_that_only_meet_429s_end_the_run_and_the_rerun_finishes(
    tmp_path, monkeypatch, retry_after
):
    """Every create answered 429 (Retry-After a day, or none): the run ends by itself after
    --give-up-after without progress (exit 3, no day-long wait), writes the results with
    every row not attempted, and the rerun creates each code once."""
    payload = doors(3)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    refusing = RefusedCreates(run.transport, retry_after)
    run.transport = refusing
    stays = each_door(payload, 4)
    started = anyio.current_time()
    stopped = await run.apply(stays, ApplySettings(policy=CreatePolicy(give_up_after=300)))
    took = anyio.current_time() - started
    assert stopped.exit_code == 3
    assert "no usable answer for" in stopped.result.stopped.one_line()
    assert 300 <= took < 900  # bounded by the no-progress limit, not by Retry-After
    assert refusing.refused >= 3
    results = pl.read_csv(stopped.out)
    assert set(zip(results["outcome"], results["reason"], strict=True)) == {
        ("failed", "not_attempted")
    }
    refusing.open = True
    finished = await run.apply(stays)
    assert finished.exit_code == 0
    assert sorted(run.tags_on_doors().values()) == [1] * 12


def ledger_states(run: SandboxRun) -> list[str]:
    """Every code's state in the run's ledger (none before the ledger exists)."""
    if not run.ledger.exists():
        return []
    with contextlib.closing(sqlite3.connect(run.ledger)) as db:
        try:
            return [state for (state,) in db.execute("SELECT state FROM codes")]
        except sqlite3.OperationalError:  # no codes table yet
            return []


async def test_a_create_prepared_but_not_sent_when_the_run_stops_goes_back_to_pending(
    tmp_path, monkeypatch
):
    """A door's next create is committed ``sending`` just before its place frees; a run
    stopped (SIGTERM) in between never sent it, so it is ``pending`` again and reported
    ``not_attempted`` (not ``outcome_unknown``), and the rerun creates it at once, once."""
    payload = doors(1)
    run = start_sandbox(payload, tmp_path, monkeypatch, door_rate=(2, 60.0))
    settings = ApplySettings(door_rate=Rate(2, 60.0))
    stays = each_door(payload, 3)
    interrupt = Interrupt()
    states: list[str] = []

    async def stop_between_prepare_and_send() -> None:
        # The two first creates are answered at once; the third's place frees 60 s later, and
        # it is prepared PREPARE_LEAD before that: two created and one sending is that moment.
        while sorted(states) != ["created", "created", "sending"]:
            await anyio.sleep(PREPARE_LEAD / 5)
            states[:] = ledger_states(run)
        interrupt.request(signal.SIGTERM)

    async with anyio.create_task_group() as group:
        group.start_soon(stop_between_prepare_and_send)
        stopped = await run.apply(stays, settings, interrupt=interrupt)
    assert sorted(states) == ["created", "created", "sending"]  # it was prepared
    results = stopped.result.results
    assert sorted(results["outcome"]) == ["created", "created", "failed"]
    assert results.filter(pl.col("outcome") == "failed")["reason"].to_list() == ["not_attempted"]
    with sqlite3.connect(run.ledger) as db:
        left = db.execute("SELECT state, attempts, sent_at FROM codes WHERE state != 'created'")
        assert left.fetchall() == [("pending", 1, None)]  # its attempt counted, never sent
    assert run.creates() == 2
    started = anyio.current_time()
    again = await run.apply(stays, settings)
    assert anyio.current_time() - started < 60  # nothing to settle
    assert sorted(again.result.results["outcome"]) == ["already_created"] * 2 + ["created"]
    assert sorted(run.tags_on_doors().values()) == [1, 1, 1]
