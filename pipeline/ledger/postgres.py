"""Connecting to a PostgreSQL ledger (a first cut: connection and the errors it becomes)."""

from __future__ import annotations

import os
import socket
from typing import Any

import psycopg

from pipeline.errors import LedgerError, PipelineError, UsageError
from pipeline.ledger.location import PostgresLedger


def connect(ledger: PostgresLedger, *, purpose: str) -> psycopg.Connection[Any]:
    """A connection in autocommit mode (the ledger sends its own BEGIN); blocking."""
    return psycopg.connect(
        ledger.url,
        autocommit=True,
        connect_timeout=10,
        application_name=(
            f"oracode-provision {purpose} pid={os.getpid()} host={socket.gethostname()}"
        ),
    )


def is_connection_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is the connection or the server failing, not one statement's error."""
    return isinstance(exc, psycopg.OperationalError | psycopg.errors.DiskFull)


def connect_failure(ledger: PostgresLedger, exc: BaseException) -> PipelineError:
    return UsageError(f"ledger {ledger} can't be opened: {reason(ledger, exc)}")


def lost_connection(ledger: PostgresLedger, exc: BaseException) -> LedgerError:
    return LedgerError(
        f"ledger {ledger}: lost its connection to PostgreSQL ({reason(ledger, exc)})",
        hint="rerun once the server is reachable: every code sent was committed first",
    )


def reason(ledger: PostgresLedger, exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text.replace(ledger.url, str(ledger))
