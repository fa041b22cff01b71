"""Connecting to a PostgreSQL ledger (psycopg 3), and what its failures tell the user.

Every connection is blocking (run it in a worker thread), in autocommit (the ledger issues its
own BEGIN, COMMIT and SAVEPOINT), gives up after ``CONNECT_TIMEOUT`` seconds, and keeps TCP
keepalives on at both ends: a server that went away is noticed within about half a minute
rather than at the next write, and the server notices a client host that went away as soon,
ending its session and so freeing its locks. It names itself in ``application_name``
(``oracode-provision apply pid=123 host=web-1``) so that the holder of the run lock can be
named from ``pg_stat_activity``. The password comes from the URL, ``PGPASSWORD`` or
``~/.pgpass``: libpq looks for it by itself.

No message ever shows the password: the ledger is named by its masked URL, and the driver's own
words are scrubbed of the password and of the URL (libpq quotes a connection string it can't
parse). Failures are translated into the pipeline's errors (``pipeline.common.errors``):

    UsageError   exit 2: the URL, the password, the database or the role is wrong
    LedgerError  exit 3: the server can't be reached, or the connection was lost mid-run
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from typing import Any
from urllib.parse import unquote, unquote_plus, urlsplit

import psycopg
import psycopg.errors
from psycopg.conninfo import conninfo_to_dict

from pipeline.common.errors import LedgerError, PipelineError, UsageError
from pipeline.ledger.location import MASK, PostgresLedger, is_secret

__all__ = [
    "CONNECT_TIMEOUT",
    "KEEPALIVES",
    "SERVER_KEEPALIVES",
    "application_name",
    "connect",
    "connect_failure",
    "holds_ledger",
    "is_connection_failure",
    "lost_connection",
    "reason",
    "scrub",
]

Connection = psycopg.Connection[tuple[Any, ...]]

# Seconds to wait for the server to answer a new connection (a URL's own connect_timeout wins).
CONNECT_TIMEOUT = 10
# TCP keepalives: a server (or the network to it) that went away is noticed after about
# idle + interval * count = 25 s of silence, instead of when the kernel gives up (hours).
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}
# The server's side of the same, for our session: a client host that died (power, network)
# is noticed as soon, and its session ends, which frees its locks, the run lock first. (Left to
# the operating system's defaults, the server would wait over two hours.)
SERVER_KEEPALIVES = {
    "tcp_keepalives_idle": 10,
    "tcp_keepalives_interval": 5,
    "tcp_keepalives_count": 3,
}
# The driver's words for a server that is there but refuses us (a wrong password, database or
# role) or for options libpq can't read. Anything else is a server out of reach: refused,
# timed out, an unknown host, starting up, out of connection slots.
_REFUSALS = (
    "authentication failed",
    "no password supplied",
    "password",
    "pg_hba.conf",
    "does not exist",
    "not permitted to log in",
    "permission denied",
    "invalid",
    "unsupported",
    "ssl",
)
# What the driver quotes (a host, a database, a user name) says nothing of the failure.
_QUOTED = re.compile(r""""[^"]*"|'[^']*'""")
# SQLSTATE classes of a server or connection that failed, rather than one statement's error:
# connection exception, insufficient resources (a full disk), operator intervention (a
# shutdown, a terminated backend), system error (I/O), configuration file error.
_FAILING_CLASSES = ("08", "53", "57", "58", "F0")
_QUERY_CANCELED = "57014"  # statement_timeout or a cancel request: the statement's own end
_URL_HINT = "check the URL in --ledger or ORACODE_LEDGER, and PGPASSWORD or ~/.pgpass"
_SERVER_HINT = "check that the PostgreSQL server is up and reachable from here, then rerun"
_LOST_HINT = "rerun once the server is reachable: every code sent was committed first"
# A reason longer than this is cut: the line stays readable (libpq lists every host it tried).
_MAX_REASON = 500


def application_name(purpose: str) -> str:
    """What a connection tells the server it is: ``oracode-provision <purpose> pid=<pid>
    host=<hostname>`` (the server keeps the first 63 bytes)."""
    return f"oracode-provision {purpose} pid={os.getpid()} host={socket.gethostname()}"


def connect(ledger: PostgresLedger, *, purpose: str) -> Connection:
    """A new connection to the ledger's database, in autocommit, named for ``purpose`` (see
    ``application_name``). Blocking: call it from a worker thread.

    Raises ``connect_failure``'s error: UsageError (exit 2) for a wrong URL, password, database
    or role, LedgerError (exit 3) for a server that can't be reached. Neither shows the
    password.
    """
    try:
        # The URL's own settings win, but for the name, which the run lock's holder is told by.
        given = conninfo_to_dict(ledger.url)
        options: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT, **KEEPALIVES}
        options = {key: value for key, value in options.items() if key not in given}
        connection = psycopg.connect(
            ledger.url, autocommit=True, application_name=application_name(purpose), **options
        )
        try:
            connection.execute(
                "SELECT " + ", ".join(["set_config(%s, %s, false)"] * len(SERVER_KEEPALIVES)),
                [str(part) for setting in SERVER_KEEPALIVES.items() for part in setting],
            )
            # A run's connection may rest for minutes (windows, settling): a server's
            # idle_session_timeout (PostgreSQL 14 and later) must not end it.
            connection.execute(
                "SELECT set_config('idle_session_timeout', '0', false)"
                " WHERE current_setting('server_version_num')::int >= 140000"
            )
        except BaseException:
            connection.close()
            raise
    except psycopg.Error as exc:
        failure: PipelineError = connect_failure(ledger, exc)
    else:
        return connection
    # Raised outside the handler: the driver's error (its words may hold the password) is then
    # neither the cause nor the context of ours.
    raise failure


def connect_failure(ledger: PostgresLedger, exc: BaseException) -> PipelineError:
    """The one-line error for a connection that couldn't be opened: UsageError (exit 2) when
    the server refused us or the URL can't be read (a wrong password, database, role or
    option), else LedgerError (exit 3: refused, timed out, an unknown host, a server starting
    up or out of connection slots). Never shows the password."""
    words = reason(ledger, exc)
    if _is_refusal(exc, words):
        return UsageError(f"ledger {ledger} can't be opened: {words}", hint=_URL_HINT)
    return LedgerError(f"ledger {ledger} can't be reached: {words}", hint=_SERVER_HINT)


def lost_connection(ledger: PostgresLedger, exc: BaseException) -> LedgerError:
    """The one-line error (exit 3) for a connection lost while the run was using it."""
    return LedgerError(
        f"ledger {ledger}: lost its connection to PostgreSQL ({reason(ledger, exc)})",
        hint=_LOST_HINT,
    )


def is_connection_failure(exc: BaseException) -> bool:
    """Whether a psycopg error says the connection or the server failed (lost, closed, shut
    down, out of disk or memory, an I/O error), rather than one statement's own error (a
    constraint, a deadlock, a serialization failure, a cancelled statement)."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    if state is None:  # the driver's own: the connection is closed, lost or timed out
        return not isinstance(exc, psycopg.errors.PipelineAborted)
    return state.startswith(_FAILING_CLASSES) and state != _QUERY_CANCELED


def holds_ledger(ledger: PostgresLedger, *, purpose: str) -> bool:
    """Whether the ledger's database (its schema on the URL's search path) holds a ledger yet:
    its ``runs`` table. Blocking. Raises as ``connect`` does, and ``lost_connection``'s error."""
    with connect(ledger, purpose=purpose) as connection:
        try:
            row = connection.execute("SELECT to_regclass('runs') IS NOT NULL").fetchone()
        except psycopg.Error as exc:
            if not is_connection_failure(exc):
                raise
            lost = lost_connection(ledger, exc)
        else:
            return bool(row and row[0])
    raise lost  # outside the handler: the driver's words are not its context


def scrub(ledger: PostgresLedger, text: str) -> str:
    """``text`` without the ledger's password: its URL is masked, and the password itself (as
    written in the URL, decoded, or in ``PGPASSWORD``) becomes ``***`` wherever it appears."""
    text = text.replace(ledger.url, ledger.masked)
    for secret in sorted(_secrets(ledger), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _secrets(ledger: PostgresLedger) -> set[str]:
    """Every password as the connection string writes it (a URL's user part or a parameter,
    a ``key=value`` string's ``password``, ``sslpassword``...), decoded, and ``PGPASSWORD``'s."""
    found = {os.environ.get("PGPASSWORD", "")}
    with contextlib.suppress(psycopg.Error):  # not readable: the URL's parts below, as written
        options = conninfo_to_dict(ledger.url)
        found |= {str(value or "") for key, value in options.items() if is_secret(key)}
    try:
        parts = urlsplit(ledger.url)
        found.add(parts.password or "")
    except ValueError:
        # A URL urlsplit can't read: whatever stands between the scheme and the host.
        found.add(ledger.url.split("://", 1)[-1].rpartition("@")[0])
    else:
        for item in parts.query.split("&"):
            key, _, value = item.partition("=")
            if is_secret(unquote(key)):
                found.add(value)
    found |= {unquote(secret) for secret in found} | {unquote_plus(secret) for secret in found}
    return {secret for secret in found if secret}


def reason(ledger: PostgresLedger, exc: BaseException) -> str:
    """The driver's words for ``exc`` on one line, scrubbed of the password (``scrub``),
    without psycopg's generic lead-in, cut at ``_MAX_REASON`` characters: what a message about
    a PostgreSQL ledger quotes of psycopg."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for lead in ("connection failed: ", "connection is bad: "):
        text = text.removeprefix(lead)
    text = scrub(ledger, text)
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


def _is_refusal(exc: BaseException, words: str) -> bool:
    if isinstance(exc, psycopg.errors.ConnectionTimeout):
        return False
    if isinstance(exc, psycopg.ProgrammingError):  # libpq couldn't read the URL's options
        return True
    pgconn = getattr(exc, "pgconn", None)
    if pgconn is not None and pgconn.needs_password:
        return True
    unquoted = _QUOTED.sub('""', words).lower()
    return any(refusal in unquoted for refusal in _REFUSALS)
