"""The commands as library functions: each CLI command is one call here that a test can make."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import polars as pl

from pipeline.catalog import DeviceCatalog, read_device_file
from pipeline.planning import plan_reservations
from pipeline.reading import read_reservations
from pipeline.reports import check_output_path, default_output_path, write_table
from pipeline.seam import SeamClient, Transport
from pipeline.settings import Config, load_config, load_credentials


@dataclass(frozen=True)
class PlanRun:
    """What ``plan_files`` did: the plan table and where it was written."""

    plan: pl.DataFrame
    out: Path

    @property
    def exit_code(self) -> int:
        """0 when every row is planned or skipped, 1 when any row is rejected."""
        return 1 if (self.plan["outcome"] == "rejected").any() else 0


async def fetch_catalog(config: Config, transport: Transport | None = None) -> DeviceCatalog:
    """The Oracode doors of the workspace, from Seam's ``/devices/list`` (all pages)."""
    async with SeamClient(load_credentials(config), transport=transport) as client:
        devices = [device async for device in client.list_devices()]
    return DeviceCatalog.from_devices(devices)


def load_catalog(config: Config, devices: Path | None) -> DeviceCatalog:
    """From a ``--devices`` file when given, else from the Seam API (needs SEAM_API_KEY)."""
    if devices is not None:
        return read_device_file(devices)
    return anyio.run(fetch_catalog, config)


def plan_files(
    paths: Sequence[Path],
    *,
    config_path: Path | None = None,
    devices: Path | None = None,
    out: Path | None = None,
    now: dt.datetime | None = None,
) -> PlanRun:
    """Read, plan and write: one output row per input row. Raises UsageError (exit 2)."""
    now = now or dt.datetime.now(dt.UTC)
    out = out or default_output_path("plan", now=now)
    check_output_path(out)
    config = load_config(config_path)
    # Doors first: a missing API key (or an unreachable Seam) stops the run before a large
    # export is read.
    catalog = load_catalog(config, devices)
    reservations = read_reservations(paths, config)
    plan = plan_reservations(reservations, catalog, config, now=now)
    return PlanRun(plan=plan, out=write_table(plan, out))
