"""Unknown outcomes settled by a look: a create whose answer was lost is looked for on its door
within seconds (one look for every such code of the door), adopted when there; only a code
still absent waits out --settle-after and a look after it before any resend.

The loop's clock is virtual (tests/virtual_time.py): settle times of minutes take milliseconds.
"""

from __future__ import annotations

import json
import sqlite3

import anyio
import polars as pl
import pytest

from pipeline.apply.policy import SETTLE_AFTER
from pipeline.apply.run import ApplySettings
from pipeline.apply.settling import LOOK_SOON
from pipeline.sandbox import Faults
from tests.apply_helpers import start_sandbox
from tests.generate import make_devices, make_stays

pytestmark = pytest.mark.anyio


@pytest.mark.virtual_time
async def test_lost_answers_of_codes_made_are_adopted_within_seconds(tmp_path, monkeypatch):
    """A fifth of the answers lost after the code was made, at the default 120 s settle time:
    every such code is found by the look soon after and adopted, so the run doesn't wait out
    the settle time; each code exists once, none is sent twice."""
    payload = make_devices(12, seed=41)
    run = start_sandbox(payload, tmp_path, monkeypatch, faults=Faults(drop_after=0.2), seed=6)
    stays = make_stays([(d["device_id"], 10) for d in payload["devices"]], seed=3)
    started = anyio.current_time()
    applied = await run.apply(stays, ApplySettings())
    took = anyio.current_time() - started
    results = applied.result.results
    lost = sum(run.state.requests[("/access_codes/create", s)] for s in (0, 502, 504))
    assert lost > 12
    assert (results["outcome"] == "created").all()
    assert (results["reason"] == "adopted").sum() == lost
    assert set(run.tags_on_doors().values()) == {1}
    assert run.creates(200) + lost == 120  # no code was sent a second time
    # The doors' own pace takes 60 s (ten a door at most a minute, then the rest); no code
    # waited the 120 s settle time on top.
    assert took < 60 + SETTLE_AFTER / 2


async def test_one_look_soon_covers_every_lost_answer_of_a_door(tmp_path, monkeypatch):
    """Ten creates to one door at once, every answer lost after the code was made: one list of
    the door a few seconds later adopts all ten (the door's first look, that one, and the
    status refresh: three lists in all). On the real clock: a virtual one would jump to the
    look while the ledger's thread commits the next create."""
    payload = make_devices(1, seed=42)
    run = start_sandbox(payload, tmp_path, monkeypatch, faults=Faults(drop_after=1.0))
    stays = make_stays([(payload["devices"][0]["device_id"], 10)], seed=4)
    started = anyio.current_time()
    applied = await run.apply(stays, ApplySettings())
    took = anyio.current_time() - started
    results = applied.result.results
    assert set(zip(results["outcome"], results["reason"], strict=True)) == {("created", "adopted")}
    assert run.state.requests[("/access_codes/list", 200)] == 3
    assert run.creates(0) + run.creates(502) + run.creates(504) == 10
    assert took < LOOK_SOON + 5


@pytest.mark.virtual_time
async def test_a_code_not_there_soon_waits_out_the_settle_time_before_a_resend(
    tmp_path, monkeypatch
):
    """Every create answered 504 while the backend makes the code 30 s later: the look soon
    finds nothing, nothing is resent, and the look once settled (120 s after the send) adopts
    each code; none exists twice."""
    payload = make_devices(2, seed=43)
    faults = Faults(late=1.0, late_after=30.0)
    run = start_sandbox(payload, tmp_path, monkeypatch, faults=faults)
    stays = make_stays([(d["device_id"], 3) for d in payload["devices"]], seed=5)
    started = anyio.current_time()
    applied = await run.apply(stays, ApplySettings())
    took = anyio.current_time() - started
    results = applied.result.results
    assert set(zip(results["outcome"], results["reason"], strict=True)) == {("created", "adopted")}
    assert run.creates(504) == 6
    assert run.creates(200) == 0
    assert SETTLE_AFTER <= took < SETTLE_AFTER + 10
    assert set(run.tags_on_doors().values()) == {1}
    # Each code was searched for once settled, after the look soon had found nothing.
    searches = [e for e in ledger_requests(run) if e.get("search")]
    assert {e["search"] for e in searches} == set(results["idempotency_tag"])
    assert pl.read_csv(applied.out).height == 6


def ledger_requests(run) -> list[dict]:
    """The bodies of the /access_codes/list requests the ledger's event log holds."""
    with sqlite3.connect(run.ledger) as db:
        rows = db.execute(
            "SELECT detail FROM events WHERE kind = 'request' AND path = '/access_codes/list'"
        ).fetchall()
    return [json.loads(detail)["body"] for (detail,) in rows]
