"""The receiver as it runs: over a real uvicorn server on a loopback port, and as the
``webhooks`` command (its one-line refusals, and a whole run in a subprocess)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from pipeline.cli import main
from pipeline.webhooks import Verifier, WebhookReceiver, bind, serving
from tests.ledger.helpers import ledger_argument
from tests.paths import ROOT
from tests.webhooks.helpers import PIN, SECRET, code_rows, delivery, event, event_rows


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_signed_delivery_over_real_http_is_recorded(ledger_path):
    """Over uvicorn on a free loopback port, a signed delivery is 200 and reaches the ledger,
    and a forged one is 401."""
    receiver = WebhookReceiver(ledger_path, Verifier(SecretStr(SECRET)))
    with bind("127.0.0.1", 0) as listening:
        async with serving(receiver, listening) as url, httpx.AsyncClient(base_url=url) as client:
            body, headers = delivery(event("set_on_device", code=PIN))
            answer = await client.post("/seam", content=body, headers=headers)
            forged = await client.post("/seam", content=body, headers=headers | {"svix-id": "x"})
    assert (answer.status_code, answer.json()["outcome"]) == (200, "applied")
    assert forged.status_code == 401
    assert code_rows(ledger_path)["ac-1"]["code"] == PIN
    assert len(event_rows(ledger_path)) == 1


@pytest.mark.parametrize(
    ("secret", "line"),
    [
        (
            None,
            "error: no SEAM_WEBHOOK_SECRET: the receiver checks every delivery's signature with"
            " it (set it to the whsec_... secret Seam shows for this webhook)",
        ),
        (
            "c2VjcmV0LXdpdGhvdXQtcHJlZml4",
            "error: SEAM_WEBHOOK_SECRET looks malformed (it doesn't start with whsec_) (set it"
            " again to the secret exactly as Seam's webhook page shows it)",
        ),
        (
            "whsec_not base64!",
            "error: SEAM_WEBHOOK_SECRET looks malformed (what follows whsec_ isn't base64) (set"
            " it again to the secret exactly as Seam's webhook page shows it)",
        ),
    ],
)
# The secret is checked before the ledger is opened: one database is enough.
@pytest.mark.parametrize("ledger_location", ["sqlite"], indirect=True)
def test_a_missing_or_malformed_secret_stops_the_command_with_one_line(
    ledger_path, monkeypatch, capsys, secret, line
):
    """No secret, or one that isn't ``whsec_<base64>``: exit 2, one line that never shows it."""
    monkeypatch.delenv("SEAM_WEBHOOK_SECRET", raising=False)
    if secret is not None:
        monkeypatch.setenv("SEAM_WEBHOOK_SECRET", secret)
    assert main(["webhooks", "--ledger", ledger_argument(ledger_path), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [line]
    if secret is not None:
        assert secret not in err


def test_a_ledger_that_does_not_exist_stops_the_command(tmp_path, monkeypatch, capsys):
    """A wrong --ledger is exit 2 before anything listens (not a new, empty ledger)."""
    monkeypatch.setenv("SEAM_WEBHOOK_SECRET", SECRET)
    missing = tmp_path / "nope.sqlite"
    assert main(["webhooks", "--ledger", str(missing), "--port", "0"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: ledger {missing} does not exist"
        " (check --ledger, else ORACODE_LEDGER; apply creates the ledger)"
    ]
    assert not missing.exists()


def test_a_port_in_use_stops_the_command_with_one_line(ledger_path, monkeypatch, capsys):
    """A port something else listens on is exit 2 and one line."""
    monkeypatch.setenv("SEAM_WEBHOOK_SECRET", SECRET)
    with bind("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        code = main(["webhooks", "--ledger", ledger_argument(ledger_path), "--port", str(port)])
    assert code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: the webhook receiver can't listen on 127.0.0.1:{port}: ")
    assert line.endswith(
        "(pick another --port, or stop what listens there; --host must be an address of this"
        " machine)"
    )


@pytest.mark.slow
def test_the_command_records_deliveries_until_it_is_stopped(ledger_path: Path):
    """``oracode-provision webhooks --port 0``: says where it listens, records a signed delivery
    with one log line (no PIN, no secret), and stops on SIGINT."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAM_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "webhooks",
            "--port",
            "0",
            "--ledger",
            ledger_argument(ledger_path),
        ],
        cwd=ROOT,
        env={**env, "SEAM_WEBHOOK_SECRET": SECRET},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        assert ready.startswith("Webhook receiver on http://127.0.0.1:"), ready
        url = ready.split()[3]
        body, headers = delivery(event("set_on_device", code=PIN))
        answer = httpx.post(f"{url}/anything", content=body, headers=headers, timeout=10)
        assert answer.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    assert code_rows(ledger_path)["ac-1"]["code"] == PIN
    assert "info: webhook event applied" in err
    assert PIN not in err
    assert SECRET.removeprefix("whsec_") not in err
    assert process.returncode in (0, 130), err
