"""``status``: refresh the ledger's codes from Seam, and look for duplicates on their doors."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path

import anyio
import anyio.to_thread

from pipeline.apply.duplicates import duplicate_table, look_for_duplicates, say_duplicates
from pipeline.apply.run import ApplySettings, apply_session
from pipeline.apply.workspace import check_workspace
from pipeline.commands.options import check_request_timeout
from pipeline.commands.runs import require_ledger, stop_run
from pipeline.common.errors import PipelineError
from pipeline.common.interrupts import Interrupt, until_interrupted
from pipeline.common.outputs import check_output_path, default_output_path, write_table
from pipeline.common.settings import load_config, load_credentials
from pipeline.ledger.location import LedgerLocation
from pipeline.ledger.store import DEFAULT_LEDGER
from pipeline.seam.client import DEFAULT_REQUEST_TIMEOUT, Transport
from pipeline.status.refresh import ATTENTION_AFTER, StatusResult, refresh_statuses


@dataclass(frozen=True)
class StatusRun:
    """What ``status_files`` did: the refreshed codes, and where they were written."""

    result: StatusResult
    out: Path
    run_id: str

    @property
    def exit_code(self) -> int:
        return self.result.exit_code


async def status_files(
    *,
    config_path: Path | None = None,
    ledger_path: LedgerLocation = DEFAULT_LEDGER,
    out: Path | None = None,
    attention_after: dt.timedelta = ATTENTION_AFTER,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    transport: Transport | None = None,
    now: dt.datetime | None = None,
    interrupt: Interrupt | None = None,
) -> StatusRun:
    """Refresh every code of the ledger that isn't final and write them (mode 0600: PINs).

    Raises UsageError (exit 2) for a bad ``request_timeout``, a missing ledger or key, or a key
    of another Seam workspace than the ledger's, SeamError (exit 3) when Seam can't be asked,
    LedgerError (exit 3) when a PostgreSQL ledger's server can't be reached.
    """
    check_request_timeout(request_timeout)
    now = now or dt.datetime.now(dt.UTC)
    out = out or default_output_path("status", now=now)
    await anyio.to_thread.run_sync(check_output_path, out)
    await require_ledger(ledger_path, "status")
    config = await anyio.to_thread.run_sync(load_config, config_path)
    credentials = load_credentials(config)
    credentials.auth_headers()
    settings = ApplySettings(request_timeout=request_timeout)
    opened = apply_session(credentials, ledger_path, settings, "status", [], transport)
    async with opened as session:
        try:
            async with until_interrupted(interrupt):
                asked_before = session.client.requests
                await check_workspace(session)
                result = await refresh_statuses(
                    session.client,
                    session.ledger,
                    session.run_id,
                    now=now,
                    attention_after=attention_after,
                )
                doubled = await look_for_duplicates(
                    session.client, session.ledger, session.run_id, now=now
                )
        except PipelineError as exc:
            raise await stop_run(session, exc) from exc
        say_duplicates(doubled, command="status")
        result = replace(
            result,
            duplicates=duplicate_table(doubled),
            requests=session.client.requests - asked_before,  # every one this status sent
        )
        await anyio.to_thread.run_sync(write_table, result.codes, out)
        await session.ledger.finish_run(
            session.run_id,
            result.exit_code,
            {"checked": result.codes.height, "needs_attention": result.needing_attention.height},
        )
    return StatusRun(result=result, out=out, run_id=session.run_id)
