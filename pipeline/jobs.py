"""The commands as library functions: each CLI command is one call here that a test can make."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread
import polars as pl

from pipeline.applying import ApplyResult, ApplySettings, apply_plan, apply_session
from pipeline.catalog import DeviceCatalog, read_device_file
from pipeline.creating import KEY_REFUSED_STATUS, key_refused
from pipeline.errors import PipelineError, SeamError
from pipeline.ledger import DEFAULT_LEDGER
from pipeline.planning import plan_reservations
from pipeline.reading import read_reservations
from pipeline.reports import ApplyProgress, check_output_path, default_output_path, write_table
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
        return await list_catalog(client)


async def list_catalog(client: SeamClient) -> DeviceCatalog:
    devices = [device async for device in client.list_devices()]
    return await anyio.to_thread.run_sync(DeviceCatalog.from_devices, devices)


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


@dataclass(frozen=True)
class ApplyRun:
    """What ``apply_files`` did: the apply result, and where results and ledger are."""

    result: ApplyResult
    out: Path
    ledger: Path

    @property
    def exit_code(self) -> int:
        return self.result.exit_code


async def apply_files(
    paths: Sequence[Path],
    *,
    config_path: Path | None = None,
    ledger_path: Path = DEFAULT_LEDGER,
    out: Path | None = None,
    settings: ApplySettings | None = None,
    transport: Transport | None = None,
    progress: ApplyProgress | None = None,
    now: dt.datetime | None = None,
) -> ApplyRun:
    """Plan the files against the live doors and create every planned code exactly once.

    Writes the results file (one row per input row, mode 0600) and records the run in the
    ledger, also when the run stops early (RunStopped is then in the result, exit code 3).
    Raises UsageError (exit 2) for unusable input before anything is sent, and SeamError
    (exit 3) when the doors can't be listed.
    """
    settings = settings or ApplySettings()
    now = now or dt.datetime.now(dt.UTC)
    out = out or default_output_path("results", now=now)
    check_output_path(out)
    config = await anyio.to_thread.run_sync(load_config, config_path)
    credentials = load_credentials(config)
    credentials.auth_headers()  # a missing key stops the run before the ledger is touched
    inputs = [str(path) for path in paths]
    opened = apply_session(credentials, ledger_path, settings, "apply", inputs, transport)
    async with opened as session:
        try:
            catalog = await list_catalog(session.client)
            reservations = await anyio.to_thread.run_sync(read_reservations, paths, config)
            plan = await anyio.to_thread.run_sync(
                lambda: plan_reservations(reservations, catalog, config, now=now)
            )
        except PipelineError as exc:
            stop = exc
            if isinstance(exc, SeamError) and exc.status in KEY_REFUSED_STATUS:
                stop = key_refused(exc)
            await session.ledger.finish_run(session.run_id, stop.exit_code, {})
            raise stop from exc
        result = await apply_plan(
            plan,
            session,
            settings,
            on_progress=progress.advance if progress else lambda event: None,
            on_total=progress.start if progress else lambda total: None,
        )

        def write_results() -> dict[str, int]:
            write_table(result.results, out)
            return dict(result.results.group_by("outcome").len().rows())

        counts = await anyio.to_thread.run_sync(write_results)
        await session.ledger.finish_run(session.run_id, result.exit_code, counts)
    return ApplyRun(result=result, out=out, ledger=ledger_path)
