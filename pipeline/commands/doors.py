"""``doors``: every door with its site, zone, device_id and user levels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread
import polars as pl

from pipeline.catalog.listing import list_door_levels
from pipeline.catalog.sources import load_catalog
from pipeline.commands.options import DOORS_FORMAT
from pipeline.common.settings import load_config
from pipeline.report.files import check_doors_out, write_doors
from pipeline.seam.client import Transport


@dataclass(frozen=True)
class DoorsRun:
    """What ``list_doors`` did: the doors list (``list_door_levels``), and the file it was
    written to (None: for the terminal)."""

    listing: pl.DataFrame
    out: Path | None = None

    @property
    def door_count(self) -> int:
        return self.listing["device_id"].n_unique()


async def list_doors(
    *,
    config_path: Path | None = None,
    devices: Path | None = None,
    fmt: str = DOORS_FORMAT,
    out: Path | None = None,
    transport: Transport | None = None,
) -> DoorsRun:
    """Every dormakaba Oracode door with its site, zone, device_id, offline capability and
    user levels, from Seam (needs SEAM_API_KEY) or a ``devices`` file; with ``out``, written
    there as ``fmt`` (``csv`` or ``json``).

    Raises UsageError (exit 2), before the doors are listed, for a format or ``out`` that
    can't be used or written, DeviceDataError (exit 2) for a ``devices`` file it can't use,
    SeamError (exit 3) when Seam can't be asked.
    """
    await anyio.to_thread.run_sync(check_doors_out, out, fmt)
    config = await anyio.to_thread.run_sync(load_config, config_path)
    catalog = await load_catalog(config, devices, transport)
    listing = await anyio.to_thread.run_sync(list_door_levels, catalog)
    if out is not None:
        await anyio.to_thread.run_sync(write_doors, listing, fmt, out)
    return DoorsRun(listing, out)
