"""Every wait ends within the give-up time: no Retry-After, backoff or settle time holds a run
longer than what is left of --give-up-after.

The loop's clock is virtual (tests/virtual_time.py): the waits are measured, not slept.
"""

from __future__ import annotations

import anyio
import httpx
import polars as pl
import pytest

from pipeline.apply.policy import CreatePolicy
from pipeline.apply.run import ApplySettings
from pipeline.errors import SeamError
from pipeline.seam.answers import RetryableRead
from pipeline.seam.client import READ_WAIT_MAX, _backoff
from tests.apply_helpers import start_sandbox
from tests.generate import make_devices, make_stays


class RefusedCreates(httpx.AsyncBaseTransport):
    """Answers every create 429 with a day-long Retry-After, naming ``limit``."""

    def __init__(self, inner: httpx.AsyncBaseTransport, limit: str) -> None:
        self.inner, self.limit, self.refused = inner, limit, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/access_codes/create":
            return await self.inner.handle_async_request(request)
        self.refused += 1
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
    60 s after its first refusal, not after the 120 s clamp; every row not attempted."""
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
    # The pause ends when the give-up time does, and the next refusal stops the run (after a
    # global 429 the limiter sends at its lowered pace: a few seconds more), well before the
    # 120 s a clamped Retry-After would have held it.
    assert 60 <= took < 75
    assert refusing.refused >= 2
    results = pl.read_csv(stopped.out)
    assert set(results["reason"]) == {"not_attempted"}


def test_a_reads_wait_is_bounded_by_what_is_left():
    """A read's Retry-After (clamped to 120 s) and stamina's own backoff are cut to what is left
    before the run gives up; with more left, they are as before."""
    refused = SeamError("slow down", error_type="rate_limited", status=429)
    day = RetryableRead(refused, 86400.0)
    unsaid = RetryableRead(refused, None)
    assert _backoff(day) == 120.0
    assert _backoff(day, limit=lambda: 42.0) == 42.0
    assert _backoff(unsaid) is True
    assert _backoff(unsaid, limit=lambda: READ_WAIT_MAX) is True
    assert _backoff(unsaid, limit=lambda: 7.5) == 7.5
    assert _backoff(ValueError("not a read"), limit=lambda: 7.5) is False
