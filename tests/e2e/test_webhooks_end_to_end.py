"""PINs reach the ledger by Seam's webhooks: the sandbox, served over HTTP, signs and posts its
codes' lifecycle to the receiver, served over HTTP too, which records each PIN."""

from __future__ import annotations

import datetime as dt
import sqlite3

import anyio
import httpx
import polars as pl
import pytest
import time_machine
from pydantic import SecretStr

from pipeline.commands import apply_files
from pipeline.sandbox import build_sandbox
from pipeline.sandbox.server import serve_in_thread
from pipeline.webhooks import Verifier, WebhookReceiver, bind, serving
from tests.apply_helpers import API_KEY
from tests.paths import SANDBOX_DEVICES
from tests.webhooks.helpers import SECRET

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


def ledger_codes(path) -> dict[str, tuple[str | None, str | None]]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT access_code_id, code_status, code FROM codes").fetchall()
    return {code_id: (status, pin) for code_id, status, pin in rows}


async def test_the_sandboxs_webhooks_drive_the_ledger_to_set_with_pins(tmp_path, monkeypatch):
    """apply makes three codes over HTTP (no PIN yet); once the clock reaches their check-in,
    the sandbox's signed set_on_device deliveries bring each code to set with its PIN."""
    state, app = build_sandbox(SANDBOX_DEVICES)
    stays = pl.DataFrame(
        {
            "reservation_id": ["W1", "W2", "W3"],
            "site_name": ["Harbor View"] * 3,
            "door_name": ["Room 101", "Room 102", "Room 101"],
            "check_in": ["2027-03-01", "2027-03-02", "2027-03-05"],
            "check_out": ["2027-03-04", "2027-03-05", "2027-03-07"],
        }
    )
    source = tmp_path / "stays.csv"
    stays.write_csv(source)
    config = tmp_path / "pipeline.toml"
    config.write_text('[user_levels.sites]\n"Harbor View" = "Guest 3:30pm-10:30am"\n')
    ledger = tmp_path / "ledger.sqlite"
    with serve_in_thread(app) as sandbox:
        monkeypatch.setenv("SEAM_API_KEY", API_KEY)
        monkeypatch.setenv("SEAM_ENDPOINT", sandbox)
        applied = await apply_files([source], config_path=config, ledger_path=ledger)
        assert set(applied.result.results["outcome"]) == {"created"}
        assert {pin for _, pin in ledger_codes(ledger).values()} == {None}
        receiver = WebhookReceiver(ledger, Verifier(SecretStr(SECRET)))
        with bind("127.0.0.1", 0) as listening:
            async with serving(receiver, listening) as url, httpx.AsyncClient() as client:
                await client.post(
                    f"{sandbox}/_sandbox/configure",
                    json={"webhook_url": f"{url}/seam", "webhook_secret": SECRET},
                )
                # Time passes for both (they share this process's clock): the receiver takes
                # no event dated ahead of its own clock, as Seam's never are.
                until = dt.datetime(2027, 3, 6, 12, tzinfo=dt.UTC)  # every check-in is past
                with time_machine.travel(until, tick=True), anyio.fail_after(30):
                    # The deliveries arrive in the receiver's own tasks: look at the ledger.
                    while {status for status, _ in ledger_codes(ledger).values()} != {"set"}:  # noqa: ASYNC110
                        await anyio.sleep(0.1)
    pins = {code.access_code_id: code.pin for code in state.codes.values()}
    assert ledger_codes(ledger) == {code_id: ("set", pin) for code_id, pin in pins.items()}
