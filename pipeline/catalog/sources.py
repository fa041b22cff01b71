"""Where the catalog comes from: Seam's ``/devices/list`` (all pages), or a file holding such
an answer (``--devices``, for planning offline)."""

from __future__ import annotations

from pathlib import Path

import anyio
import anyio.to_thread

from pipeline.catalog.doors import DeviceCatalog, read_device_file
from pipeline.common.errors import NoApiKey
from pipeline.common.settings import Config, load_credentials
from pipeline.seam.client import SeamClient, Transport


async def list_catalog(client: SeamClient) -> DeviceCatalog:
    """The Oracode doors ``client``'s workspace has, from ``/devices/list`` (all pages)."""
    devices = [device async for device in client.list_devices()]
    return await anyio.to_thread.run_sync(DeviceCatalog.from_devices, devices)


async def fetch_catalog(config: Config, transport: Transport | None = None) -> DeviceCatalog:
    """The Oracode doors of the workspace, from Seam (needs SEAM_API_KEY)."""
    async with SeamClient(load_credentials(config), transport=transport) as client:
        return await list_catalog(client)


async def load_catalog(
    config: Config, devices: Path | None, transport: Transport | None = None
) -> DeviceCatalog:
    """From a ``--devices`` file when given, else from the Seam API (needs SEAM_API_KEY).

    Raises DeviceDataError (exit 2) for a file it can't use, SeamError (exit 3) when Seam
    can't be asked."""
    if devices is not None:
        return await anyio.to_thread.run_sync(read_device_file, devices)
    try:
        return await fetch_catalog(config, transport)
    except NoApiKey as exc:
        # Only the commands that take a catalog (plan, doors) can do without Seam.
        raise NoApiKey(
            exc.message, hint=f"{exc.hint}, or pass --devices FILE, a saved list of the doors"
        ) from None
