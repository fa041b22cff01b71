"""The nightly job as cron runs it: apply, status and nightly-summary as processes against the
sandbox over HTTP, three nights; then pins hands over the PINs of the stays still booked."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import polars as pl
import pytest

from pipeline.sandbox import Faults
from tests.generate import make_devices
from tests.servers import environment, served

TONIGHT = {"KEEP": ("2027-03-01", "2027-03-04"), "CANCEL": ("2027-03-10", "2027-03-12")}


def command(*words: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", *words]


@pytest.mark.slow
def test_three_nights_exit_1_only_the_night_a_stay_is_cancelled(tmp_path):
    """Night 1: all booked, exit 0; night 2: CANCEL left the export, exit 1 with the orphan
    named; night 3: the same, exit 0. pins then lists KEEP only, in a 0600 CSV."""
    payload = make_devices(1, seed=84)
    door = payload["devices"][0]["device_id"]
    ledger = str(tmp_path / "ledger.sqlite")
    _, server = served(payload, Faults())
    nights = [TONIGHT, {"KEEP": TONIGHT["KEEP"]}, {"KEEP": TONIGHT["KEEP"]}]
    codes = []
    with server as url:
        env = environment(url)
        for number, stays in enumerate(nights, start=1):
            source = tmp_path / f"night-{number}.csv"
            pl.DataFrame(
                {
                    "reservation_id": list(stays),
                    "device_id": [door] * len(stays),
                    "check_in": [dates[0] for dates in stays.values()],
                    "check_out": [dates[1] for dates in stays.values()],
                    "guest_name": [f"Guest {name}" for name in stays],
                }
            ).write_csv(source)
            results = str(tmp_path / f"results-{number}.parquet")
            applied = subprocess.run(
                command("apply", str(source), "--ledger", ledger, "--results", results),
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
            )
            checked = subprocess.run(
                command("status", "--ledger", ledger, "--results", f"{results}.status.parquet"),
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
            )
            summary = subprocess.run(
                command(
                    "nightly-summary",
                    "--ledger",
                    ledger,
                    "--results",
                    results,
                    "--apply-exit",
                    str(applied.returncode),
                    "--status-exit",
                    str(checked.returncode),
                ),
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
            )
            codes.append((applied.returncode, checked.returncode, summary.returncode))
            if number == 2:
                assert "1 orphaned (1 new)" in summary.stdout
                assert "new orphaned: CANCEL" in summary.stdout
        pins = subprocess.run(
            command("pins", "--ledger", ledger, "--out", "pins.csv"),
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
        )
    assert codes == [(0, 0, 0), (0, 0, 1), (0, 0, 0)]
    assert pins.returncode == 0
    assert pins.stdout.startswith("wrote 1 rows (0 ready) to pins.csv")
    written = pl.read_csv(tmp_path / "pins.csv")
    assert written.select("reservation_id", "guest_name").rows() == [("KEEP", "Guest KEEP")]
    assert stat.S_IMODE(os.stat(tmp_path / "pins.csv").st_mode) == 0o600
