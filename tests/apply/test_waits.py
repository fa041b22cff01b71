"""Every wait ends within the give-up time: no Retry-After, backoff or settle time holds a run
longer than what is left of --give-up-after.

The loop's clock is virtual (tests/virtual_time.py): the waits are measured, not slept.
"""

from __future__ import annotations

import json
from collections import Counter

import anyio
import httpx
import polars as pl
import pytest
import stamina

from pipeline.apply.policy import CreatePolicy, ProgressWatch
from pipeline.apply.run import ApplySettings
from pipeline.common.errors import SeamError
from pipeline.seam.answers import RetryableRead, read_retry_wait
from tests.apply_helpers import start_sandbox
from tests.generate import make_devices, make_stays


class RefusedCreates(httpx.AsyncBaseTransport):
    """Answers every create 429 with a day-long Retry-After, naming ``limit``; counts the
    creates of each code (by name) and when the last was sent."""

    def __init__(self, inner: httpx.AsyncBaseTransport, limit: str) -> None:
        self.inner, self.limit, self.refused = inner, limit, 0
        self.names: Counter[str] = Counter()
        self.last_at = 0.0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/access_codes/create":
            return await self.inner.handle_async_request(request)
        self.refused += 1
        self.names[json.loads(request.content)["name"]] += 1
        self.last_at = anyio.current_time()
        error = {"type": "rate_limited", "message": "slow down", "data": {"limit": self.limit}}
        return httpx.Response(
            429, headers={"retry-after": "86400"}, json={"error": error, "ok": False}
        )


@pytest.mark.anyio
@pytest.mark.virtual_time
@pytest.mark.parametrize("limit", ["door", "global"])
async def test_a_day_long_retry_after_waits_no_longer_than_the_give_up_time(
    tmp_path, monkeypatch, limit
):
    """Retry-After: 86400 on every create with --give-up-after 60: the run stops (exit 3)
    60 s after its first refusals, when its pause (cut to 60 s) ends, not after the 120 s
    clamp, and sends no create again; every row not attempted."""
    payload = make_devices(2, seed=9)
    run = start_sandbox(payload, tmp_path, monkeypatch, global_rate=100.0)
    run.transport = refusing = RefusedCreates(run.transport, limit)
    stays = make_stays([(d["device_id"], 2) for d in payload["devices"]], seed=1)
    settings = ApplySettings(global_rate=50.0, policy=CreatePolicy(give_up_after=60))
    started = anyio.current_time()
    stopped = await run.apply(stays, settings)
    took = anyio.current_time() - started
    assert stopped.exit_code == 3
    assert "no usable answer for 60 s" in stopped.result.stopped.one_line()
    # The pause ends when the give-up time does, and the run stops then instead of sending
    # again, well before the 120 s a clamped Retry-After would have held it.
    assert 60 <= took < 61
    # Creates sent before the first refusals came back, none after the pause, none twice.
    assert refusing.refused >= 1
    assert refusing.last_at < 1.0
    assert max(refusing.names.values()) == 1
    results = pl.read_csv(stopped.out)
    assert set(results["reason"]) == {"not_attempted"}


@pytest.mark.anyio
@pytest.mark.virtual_time
async def test_a_reads_wait_is_bounded_by_what_is_left():
    """A read's Retry-After (clamped to 120 s) and its backoff are cut to what is left before
    the run gives up, counted from the read's first failure; its answer ends a stall that
    only reads made, but not one a create made."""
    refused = SeamError("slow down", error_type="rate_limited", status=429)
    day = RetryableRead(refused, 86400.0, "/access_codes/list")
    unsaid = RetryableRead(refused, None, "/access_codes/list")
    assert read_retry_wait(day) == 120.0  # status: no give-up time, the clamp only
    assert read_retry_wait(unsaid) is True
    assert read_retry_wait(ValueError("not a read"), patience=ProgressWatch(42.0)) is False
    watch = ProgressWatch(42.0)
    assert read_retry_wait(day, patience=watch) == 42.0
    await anyio.sleep(40.0)
    assert 0.1 <= read_retry_wait(unsaid, attempt=1, patience=watch) <= 2.0
    assert watch.remaining() == pytest.approx(2.0)
    watch.read_answered()
    assert watch.remaining() == 42.0
    assert read_retry_wait(unsaid, patience=ProgressWatch(300.0)) is True  # stamina's own backoff
    watch.mark_stalled(anyio.current_time())  # a create's unknown outcome
    await anyio.sleep(30.0)
    watch.read_answered()
    assert watch.remaining() == pytest.approx(12.0)


class RefusedLists(httpx.AsyncBaseTransport):
    """Answers every list of a door's codes 429 with a day-long Retry-After."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.refused = inner, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/access_codes/list":
            return await self.inner.handle_async_request(request)
        self.refused += 1
        error = {"type": "rate_limited", "message": "slow down"}
        return httpx.Response(
            429, headers={"retry-after": "86400"}, json={"error": error, "ok": False}
        )


@pytest.mark.anyio
@pytest.mark.virtual_time
async def test_reads_that_keep_failing_give_up_within_the_give_up_time(
    tmp_path, monkeypatch, caplog
):
    """Every look at a door answered 429 with Retry-After: 86400 and --give-up-after 20 (its
    retries really waiting): each door's list waits 20 s once, then the run stops (exit 3) at
    20 s instead of sending the list again; the warning says the real bound."""
    monkeypatch.setattr("pipeline.seam.answers._clamped", set())
    payload = make_devices(3, seed=19)
    run = start_sandbox(payload, tmp_path, monkeypatch)
    run.transport = refusing = RefusedLists(run.transport)
    stays = make_stays([(d["device_id"], 2) for d in payload["devices"]], seed=1)
    settings = ApplySettings(policy=CreatePolicy(give_up_after=20))
    started = anyio.current_time()
    with stamina.set_testing(False):
        stopped = await run.apply(stays, settings)
    took = anyio.current_time() - started
    assert stopped.exit_code == 3
    assert stopped.result.stopped.one_line().startswith(
        "Seam has given no usable answer for 20 s (last: Seam error rate_limited: slow down"
    )
    assert 20 <= took < 21
    assert refusing.refused == 3  # one list per door, none sent again after its wait
    assert run.creates() == 0
    warnings = [r.getMessage() for r in caplog.records if r.name == "pipeline.seam.answers"]
    assert warnings == [
        "Seam's Retry-After on /access_codes/list asked for a wait of 86400 s; waiting 20 s at"
        " most; then the run gives up (--give-up-after)"
    ]
