"""Status: keeping the ledger's codes current with Seam, and saying which need a person.

A created code is refreshed until it is final: its window has ended, or it is ``set`` with its
PIN and carries no error and nothing flagged on it. Refreshing asks ``/access_codes/list`` by
``access_code_ids``, a batch of ``REFRESH_BATCH`` codes at a time whatever their doors (never
one ``get`` per code, nor one list per door), or first from Seam's events since the last full
refresh when that is cheaper (``catchup``), and records the code's status (``unset`` →
``setting`` → ``set``), its PIN once assigned, and Seam's ``errors`` and ``warnings`` on it.
Each status change is an event in the ledger.

Status also looks at the doors where a late create may have left a duplicate (and, once, at
the doors of a ledger an earlier version made; one list each, ``apply.duplicates``), and says
every duplicate the ledger knows whose window is open.

A code needs attention (``needs_attention``, the reason first):
    seam_error        Seam reports an error on it (e.g. failed_to_set_on_device)
    not_set_in_time   still not ``set`` ``attention_after`` (default 1 hour) after starts_at
    missing_on_seam   Seam doesn't have it any more
    pin_unexpected    Seam gave it something that isn't a PIN (not recorded); and, until
    pin_changed       Seam itself gives a PIN, what an event said of its PIN
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import polars as pl

from pipeline.apply.duplicates import duplicate_table
from pipeline.common.instants import parse_instant
from pipeline.ledger.events import PIN_CHANGED, PIN_UNEXPECTED, unexpected_pin
from pipeline.ledger.store import STATUS_COLUMNS, Ledger
from pipeline.seam.client import SeamClient
from pipeline.seam.models import AccessCode
from pipeline.status.catchup import REFRESH_BATCH, event_page_budget, pins_from_events

__all__ = ["ATTENTION_AFTER", "REFRESH_BATCH", "StatusResult", "refresh_statuses"]

ATTENTION_AFTER = dt.timedelta(hours=1)
# Seam's lists may lag behind a create: a code recorded as created this recently that isn't
# listed yet is not flagged missing (it is asked for again next time).
LIST_LAG_GRACE = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class StatusResult:
    """The codes that were refreshed (STATUS_COLUMNS plus ``previous_status``), and the
    duplicates whose window is open (``apply.duplicates.DUPLICATE_SCHEMA``)."""

    codes: pl.DataFrame
    requests: int = 0  # requests sent to Seam for this refresh
    from_events: int = 0  # codes settled by Seam's events (not asked for by id)
    duplicates: pl.DataFrame = field(default_factory=lambda: duplicate_table([]))

    @property
    def changed(self) -> int:
        return int(
            (self.codes["code_status"] != self.codes["previous_status"]).fill_null(True).sum()
        )

    @property
    def needing_attention(self) -> pl.DataFrame:
        return self.codes.filter(pl.col("needs_attention").is_not_null())

    @property
    def exit_code(self) -> int:
        """1 when any code needs attention or is on its door more than once, else 0."""
        return 1 if self.needing_attention.height or self.duplicates.height else 0


async def refresh_statuses(
    client: SeamClient,
    ledger: Ledger,
    run_id: str,
    *,
    now: dt.datetime,
    attention_after: dt.timedelta = ATTENTION_AFTER,
    tags: Collection[str] | None = None,
) -> StatusResult:
    """Refresh every created code that isn't final (those with ``tags`` only, when given).

    Without ``tags``, when the ledger knows since when every unfinished code's status is
    known, the codes Seam's events say were set since then are settled from the events (at
    most a tenth of the batches' requests: ``catchup``) and only the others asked for by id;
    the ledger then knows every unfinished code's status as of ``now``.

    Raises SeamError when the codes can't be listed (nothing is recorded then).
    """
    requests_before = client.requests
    created = await ledger.created_codes(tags)
    codes = await anyio.to_thread.run_sync(
        lambda: [code for code in created if not _is_final(code, now)]
    )
    ids = [code["access_code_id"] for code in codes]
    settled: dict[str, str] = {}
    known_until = None if tags is not None else await ledger.status_known_until()
    if known_until is not None and (budget := event_page_budget(len(ids))):
        settled = await pins_from_events(client, known_until, set(ids), budget=budget)
        # An event settles only a code still on its way to set: one the ledger knows as set,
        # removed or deleted, or flagged (a webhook may have recorded a later failure), is
        # asked for by id instead, so no code is moved back.
        on_the_way = {
            code["access_code_id"]
            for code in codes
            if code["code_status"] in (None, "unset", "setting") and not code["needs_attention"]
        }
        settled = {code_id: pin for code_id, pin in settled.items() if code_id in on_the_way}
    asked = [code_id for code_id in ids if code_id not in settled]
    listed: dict[str, AccessCode] = {}
    for start in range(0, len(asked), REFRESH_BATCH):
        batch = await client.list_access_codes_by_ids(asked[start : start + REFRESH_BATCH])
        listed.update((code.access_code_id, code) for code in batch)
    checked_at = now.isoformat(timespec="seconds")

    def refresh_all() -> list[dict[str, Any]]:
        return [
            _settle(code, settled[code["access_code_id"]])
            if code["access_code_id"] in settled
            else _refresh(code, listed.get(code["access_code_id"]), now, attention_after)
            for code in codes
        ]

    rows = await anyio.to_thread.run_sync(refresh_all)
    await ledger.record_statuses(run_id, rows, checked_at)
    if tags is None:
        await ledger.set_status_known_until(checked_at)
    withdrawn = [code.get("withdrawn") for code in codes]

    def tabulate() -> pl.DataFrame:
        # A withdrawn code's PIN stays out of the results file: a cancelled guest or a moved
        # stay's old code must not be messaged from it (``pins`` lists the current ones).
        table = pl.DataFrame(
            rows, schema=dict.fromkeys((*STATUS_COLUMNS, "previous_status"), pl.String)
        ).with_columns(withdrawn=pl.Series(withdrawn, dtype=pl.String))
        return table.with_columns(code=pl.when(pl.col("withdrawn").is_null()).then("code"))

    table = await anyio.to_thread.run_sync(tabulate)
    return StatusResult(
        codes=table, requests=client.requests - requests_before, from_events=len(settled)
    )


def _is_final(code: dict[str, Any], now: dt.datetime) -> bool:
    if parse_instant(code["ends_at"]) <= now:
        return True  # the window is over: nothing more can happen to it
    has_errors = code["code_errors"] not in (None, "[]")
    # A code flagged (a webhook's other PIN, a removal) is asked about until Seam settles it.
    is_flagged = code["needs_attention"] is not None
    is_set = code["code_status"] == "set" and code["code"] is not None
    return is_set and not has_errors and not is_flagged


def _settle(code: dict[str, Any], pin: str) -> dict[str, Any]:
    """The code's row after an ``access_code.set_on_device`` event: set, with its PIN."""
    row = {column: code.get(column) for column in STATUS_COLUMNS}
    row.update(
        previous_status=code["code_status"],
        code_status="set",
        code=pin,
        code_errors="[]",
        needs_attention=None,
    )
    return row


def _refresh(
    code: dict[str, Any],
    seen: AccessCode | None,
    now: dt.datetime,
    attention_after: dt.timedelta,
) -> dict[str, Any]:
    """The code's row after Seam's answer (``seen`` is None when Seam doesn't list it).

    A PIN in dispute (an event's other PIN, ``pin_changed``, or a value that wasn't a PIN,
    ``pin_unexpected``) is settled only by Seam's own PIN, which wins; while Seam has none, the
    code keeps needing attention (``pins`` doesn't hand it out). A value in Seam's answer that
    isn't a PIN is never recorded: the code needs attention."""
    row = {column: code.get(column) for column in STATUS_COLUMNS}
    row["previous_status"] = code["code_status"]
    row["reported_code"] = code.get("reported_code")
    attention = code["needs_attention"] or ""
    dispute = attention if attention.startswith((PIN_CHANGED, PIN_UNEXPECTED)) else None
    if seen is None:
        created_at = code.get("created_at")
        if created_at is None or now - parse_instant(created_at) >= LIST_LAG_GRACE:
            row["needs_attention"] = "missing_on_seam: Seam doesn't list this code any more"
        return row
    errors = [{"error_code": e.code, "message": e.message} for e in seen.errors]
    warnings = [{"warning_code": w.code, "message": w.message} for w in seen.warnings]
    row.update(
        code_status=seen.status,
        code=seen.code or code["code"],
        code_errors=json.dumps(errors),
        code_warnings=json.dumps(warnings),
        needs_attention=None,
    )
    if errors:
        row["needs_attention"] = "seam_error: " + "; ".join(
            f"{e['error_code']}: {e['message']}" for e in errors
        )
    elif seen.status != "set" and now >= parse_instant(code["starts_at"]) + attention_after:
        row["needs_attention"] = (
            f"not_set_in_time: still {seen.status} {now - parse_instant(code['starts_at'])}"
            " after starts_at"
        )
    if seen.pin_unexpected:
        row["needs_attention"] = unexpected_pin(
            f"Seam's answer of {now.isoformat(timespec='seconds')}"
        )
    elif seen.code is not None:
        row["reported_code"] = None  # Seam's own PIN: the dispute, if any, is settled
    elif dispute is not None:
        row["needs_attention"] = dispute  # Seam has no PIN yet: nothing settles it
    return row
