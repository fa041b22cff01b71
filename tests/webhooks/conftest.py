"""The webhook tests' fixtures: a ledger holding two created codes, and the receiver on it
driven in-process (``httpx.ASGITransport``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx
import pytest
from pydantic import SecretStr

from pipeline.ledger.location import LedgerLocation
from pipeline.ledger.store import Ledger
from pipeline.seam.models import AccessCode
from pipeline.webhooks import Verifier, WebhookReceiver, create_app
from tests.ledger.helpers import planned
from tests.webhooks.helpers import CODES, SECRET


@pytest.fixture
def ledger_path(ledger_location: LedgerLocation) -> LedgerLocation:
    """A ledger with two created codes (``CODES``), not yet set and without their PINs (made
    on its own event loop, so that the command's tests, which run their own, can have it), on
    each backend."""
    anyio.run(_make_ledger, ledger_location)
    return ledger_location


async def _make_ledger(path: LedgerLocation) -> None:
    ledger = await Ledger.open(path)
    run_id = await ledger.start_run("apply", [])
    await ledger.register(run_id, [planned(tag) for tag in CODES.values()])
    for access_code_id, tag in CODES.items():
        assert await ledger.mark_sending(tag, run_id)
        code = AccessCode(access_code_id=access_code_id, device_id="device-1", status="unset")
        ledger.mark_created(tag, run_id, code, "req-1", how="created")
    await ledger.finish_run(run_id, 0, {})
    await ledger.close()


@pytest.fixture
def receiver(ledger_path: LedgerLocation) -> WebhookReceiver:
    return WebhookReceiver(ledger_path, Verifier(SecretStr(SECRET)))


@pytest.fixture
async def client(receiver: WebhookReceiver) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the receiver's app, in-process, while it accepts deliveries."""
    async with receiver.accepting():
        transport = httpx.ASGITransport(app=create_app(receiver))
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            yield client
