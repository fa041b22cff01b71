"""``pins``: the guest → PIN hand-off, from the ledger alone."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread
import polars as pl

from pipeline.commands.options import instant_option
from pipeline.commands.runs import require_ledger
from pipeline.common.settings import load_config
from pipeline.ledger.location import LedgerLocation
from pipeline.ledger.store import DEFAULT_LEDGER, Ledger
from pipeline.report.pins import check_pins_out, hand_off, write_pins


@dataclass(frozen=True)
class PinsRun:
    """What ``export_pins`` did: the hand-off table, and the file it was written to."""

    pins: pl.DataFrame
    out: Path

    @property
    def ready(self) -> int:
        return int(self.pins["ready"].sum())


async def export_pins(
    *,
    config_path: Path | None = None,
    ledger_path: LedgerLocation = DEFAULT_LEDGER,
    fmt: str | None = None,
    out: Path | None = None,
    ready_only: bool = False,
    changed_since: str | dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> PinsRun:
    """The guest → PIN hand-off from the ledger alone (``report.pins``): one row per
    reservation and door of the latest input (those without a code saying why), never an
    orphaned (cancelled) or replaced code, times for messages as the config's ``[pins]``
    says; written as ``fmt`` (``csv``, ``parquet`` or ``json``; default: ``out``'s extension,
    else csv) to ``out`` (default ``outputs/pins-<UTC time>.<fmt>``), atomically, mode 0600.
    No key needed, no lock taken.

    Raises UsageError (exit 2), before the ledger is read, for a format, ``out`` or
    ``changed_since`` it can't use, a config error, and for a missing ledger; LedgerError
    (exit 3) when a PostgreSQL ledger's server can't be reached.
    """
    now = now or dt.datetime.now(dt.UTC)
    out, chosen = await anyio.to_thread.run_sync(check_pins_out, out, fmt)
    if isinstance(changed_since, str):
        changed_since = instant_option(changed_since, "--changed-since")
    config = await anyio.to_thread.run_sync(load_config, config_path)
    await require_ledger(ledger_path, "pins")
    async with await Ledger.open(ledger_path) as ledger:
        table = await hand_off(
            ledger, now=now, ready_only=ready_only, changed_since=changed_since, formats=config.pins
        )
    written = await anyio.to_thread.run_sync(lambda: write_pins(table, chosen, out, now=now))
    return PinsRun(table, written)
