"""Running ``apply`` against an in-process sandbox, and reading back what exists there."""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import polars as pl
import pytest

from pipeline.apply.run import ApplySettings
from pipeline.commands import ApplyRun, apply_files
from pipeline.sandbox import Faults, SandboxState, create_app
from tests.generate import make_devices

API_KEY = "seam_test_5ecret_k3y_do_not_log"
TAG = re.compile(r"opl-\d{20}")


@dataclass
class SandboxRun:
    """A sandbox in this process, and a folder for inputs, ledger and results."""

    state: SandboxState
    transport: httpx.AsyncBaseTransport
    folder: Path
    runs: int = field(default=0)

    @property
    def ledger(self) -> Path:
        return self.folder / "ledger.sqlite"

    async def apply(
        self,
        reservations: pl.DataFrame | Path,
        settings: ApplySettings | None = None,
        **options: Any,
    ) -> ApplyRun:
        """Run ``apply`` through the sandbox on a file (a table is written to a CSV first)."""
        self.runs += 1
        source = self.folder / "reservations.csv"
        if isinstance(reservations, pl.DataFrame):
            await anyio.to_thread.run_sync(reservations.write_csv, source)
        else:
            source = reservations
        return await apply_files(
            [source],
            ledger_path=self.ledger,
            out=self.folder / f"results-{self.runs}.csv",
            settings=settings or ApplySettings(),
            transport=self.transport,
            **options,
        )

    def tags_on_doors(self) -> Counter[str]:
        """How many codes on the sandbox carry each idempotency tag."""
        return Counter(
            match[0] for code in self.state.codes.values() if (match := TAG.search(code.name or ""))
        )

    def creates(self, status: int = 200) -> int:
        return self.state.requests[("/access_codes/create", status)]


def start_sandbox(
    payload: dict[str, Any],
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    door_rate: tuple[int, float] | None = (10, 60.0),
    global_rate: float | None = None,
    faults: Faults | None = None,
    seed: int = 0,
) -> SandboxRun:
    state = SandboxState.from_payload(
        payload, door_rate=door_rate, global_rate=global_rate, seed=seed
    )
    transport = httpx.ASGITransport(app=create_app(state, faults), raise_app_exceptions=False)
    monkeypatch.setenv("SEAM_API_KEY", API_KEY)
    monkeypatch.setenv("SEAM_ENDPOINT", "http://sandbox")
    return SandboxRun(state, transport, folder)


def orphaned_reservations(ledger: Path) -> list[str]:
    """The reservation ids of the codes the ledger at ``ledger`` (SQLite) holds as orphaned."""
    with sqlite3.connect(ledger) as db:
        rows = db.execute(
            "SELECT reservation_id FROM codes WHERE orphaned_run_id IS NOT NULL"
        ).fetchall()
    return [reservation_id for (reservation_id,) in rows]


def one_door_sandbox(
    folder: Path, monkeypatch: pytest.MonkeyPatch, *, seed: int
) -> tuple[SandboxRun, str]:
    """A sandbox with one generated door; returns it and the door's device_id."""
    payload = make_devices(1, seed=seed)
    return start_sandbox(payload, folder, monkeypatch), payload["devices"][0]["device_id"]
