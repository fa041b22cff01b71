"""The ledger: what the pipeline did, in SQLite or PostgreSQL, so that no crash or rerun creates
a code twice.

Tables
    runs    one row per ``apply`` run: command, inputs, pid, host, start, end, exit code, counts
    codes   one row per planned code (a reservation on a door with its window), keyed by the
            idempotency tag; ``state`` goes pending → sending → created | failed
    events  append-only: every request sent to Seam with its answer, every state change
    run_doors    per ``apply`` run: input rows per door, outcome and reason (for the report)
    run_budgets  per ``apply`` run: each budgeted door's budget, codes used before the run and
                 after it
    seam_events  Seam's events as webhooks delivered them, once per event id and delivery id,
                 and what each did to our codes (never a PIN)
    workspace    the Seam workspace whose codes the ledger records (a key for another is
                 refused)
    duplicates   each of our tags found on more than one code of its door, with the codes
    without_code the latest apply run's rows that got no code (rejected, failed), for the
                 hand-off and the report
    door_looks   when each door's codes were last listed in full (a door never listed is
                 looked at once for duplicates)

A code is marked ``sending`` (and committed) before its create leaves the process; only a
``created`` code is final. A ``sending`` code has an unknown outcome until someone looks for it
on the door. The ledger holds PINs, so the file is created readable by its owner only; it never
holds an API key (requests are logged without headers).

All database work runs in one worker thread (``anyio.to_thread`` with a limiter of 1), never on
the event loop. Commits are durable (SQLite: WAL, ``synchronous=FULL``; PostgreSQL: the
server's own) and shared: an awaited change
returns once committed, together with every change queued before it. What Seam answered a
create (``mark_created``, ``mark_failed``, ``mark_pending``) is queued, not awaited: it goes in
with the next commit (the next ``sending``, any read, ``commit_every``'s beat, ``close``). Until
then the code is still ``sending`` on disk, which is the safe side: a run that stops before the
answer is committed looks for the code on its door before sending anything for it again.

The parts: ``tables`` (the tables' SQL), ``connect`` (opening: checks, what a new version
adds), ``commits`` (the thread and group commits), ``columns`` (what is kept of a code),
``keys`` (joins on many keys), ``states`` (a code's states), ``codes`` (moving codes through
them), ``statuses`` (Seam's status of created codes), ``runs`` (runs and what they leave for
the report), ``pins`` (guests for the hand-off), ``status_cursor`` (how far ``status`` caught
up), ``known_trouble`` (what the nightly summary said), ``events`` (Seam's events and what they
change), ``overview`` (what the HTML report reads besides), ``failures`` (the errors a failing
file becomes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

import anyio.to_thread

from pipeline.ledger.codes import Codes
from pipeline.ledger.columns import (
    CODE_COLUMNS,
    LEDGER_CODE_COLUMNS,
    RESULT_COLUMNS,
    STAY_COLUMNS,
    LedgerCode,
)
from pipeline.ledger.connect import connect
from pipeline.ledger.dialects import DATABASE_ERRORS
from pipeline.ledger.duplicates import Duplicates
from pipeline.ledger.events import SeamEvents
from pipeline.ledger.failures import open_failure
from pipeline.ledger.keys import fill_keys
from pipeline.ledger.known_trouble import KnownTrouble
from pipeline.ledger.location import LedgerLocation
from pipeline.ledger.overview import Overview
from pipeline.ledger.pins import Pins
from pipeline.ledger.runs import Runs
from pipeline.ledger.states import MAY_EXIST, SENDABLE
from pipeline.ledger.status_cursor import StatusCursor
from pipeline.ledger.statuses import STATUS_COLUMNS, Statuses
from pipeline.ledger.tables import ADDED_COLUMNS, SCHEMA
from pipeline.ledger.without_code import WithoutCode
from pipeline.ledger.workspace import Workspace

__all__ = [
    "ADDED_COLUMNS",
    "CODE_COLUMNS",
    "DEFAULT_LEDGER",
    "LEDGER_CODE_COLUMNS",
    "MAY_EXIST",
    "RESULT_COLUMNS",
    "SCHEMA",
    "SENDABLE",
    "STATUS_COLUMNS",
    "STAY_COLUMNS",
    "Ledger",
    "LedgerCode",
    "fill_keys",
]

DEFAULT_LEDGER = Path("outputs/ledger.sqlite")


class Ledger(
    Codes,
    Statuses,
    Runs,
    SeamEvents,
    Pins,
    StatusCursor,
    KnownTrouble,
    Workspace,
    Duplicates,
    WithoutCode,
    Overview,
):
    """The ledger, in a SQLite file or a PostgreSQL database; open it with
    ``async with await Ledger.open(location) as ledger:``, which closes it on the way out
    (its queued changes committed first, also when the block is cancelled)."""

    @classmethod
    async def open(cls, path: LedgerLocation = DEFAULT_LEDGER) -> Self:
        """Open (creating if needed) the ledger at ``path``, checked and brought up to date.

        Raises UsageError (exit 2) when it can't be opened (a wrong path, permissions),
        CorruptLedgerError (exit 2) when the file is damaged or isn't this ledger, and
        LedgerError (exit 3) when its disk is full or failing.
        """
        try:
            connection = await anyio.to_thread.run_sync(connect, path)
        except (OSError, *DATABASE_ERRORS) as exc:
            raise open_failure(path, exc) from exc
        return cls(connection, path)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
