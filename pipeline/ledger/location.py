"""Where the ledger lives: a SQLite file (the default) or a PostgreSQL database.

``--ledger`` (or ``ORACODE_LEDGER``) takes either a file's path or a ``postgresql://`` URL. A
SQLite ledger stays a ``Path``; a PostgreSQL one is a ``PostgresLedger``, whose text is always
the URL with its password masked, so that no message, log line or file ever shows the password
(libpq also finds one in ``PGPASSWORD`` or ``~/.pgpass`` when the URL has none).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pipeline.errors import UsageError

# The schemes libpq takes for a connection URL.
POSTGRES_SCHEMES = ("postgresql", "postgres")
LEDGER_ENV = "ORACODE_LEDGER"
MASK = "***"


@dataclass(frozen=True)
class PostgresLedger:
    """A ledger in a PostgreSQL database. ``url`` holds the password when one was given: pass
    it only to the driver; ``str()`` and ``repr()`` show the masked URL."""

    url: str = field(repr=False)

    @property
    def masked(self) -> str:
        """The URL with its password (if any) replaced by ``***``."""
        return mask_password(self.url)

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"PostgresLedger({self.masked!r})"


LedgerLocation = Path | PostgresLedger


def is_postgres_url(text: str) -> bool:
    return text.split("://", 1)[0].lower() in POSTGRES_SCHEMES and "://" in text


def parse_ledger(text: str, *, source: str = "--ledger") -> LedgerLocation:
    """``--ledger``'s value: a ``postgresql://`` URL, or else a SQLite file's path. Raises
    UsageError (exit 2) for a URL that libpq couldn't read, naming ``source`` (where the text
    came from), without showing its password."""
    text = text.strip()
    if not is_postgres_url(text):
        return Path(text)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises ValueError for a port that isn't a number)
        readable = True
    except ValueError:
        readable = False  # its words may quote the password: not shown, not chained
    if not readable:
        raise UsageError(
            f"{source} {mask_password(text)} is not a usable PostgreSQL URL: its host or port"
            " can't be read (a password with / ? # or @ must be percent-encoded, or given in"
            " PGPASSWORD)",
            hint="write it as postgresql://USER@HOST:PORT/DATABASE",
        )
    if not parts.path.strip("/"):
        raise UsageError(
            f"{source} {mask_password(text)} names no database",
            hint="write it as postgresql://USER@HOST:PORT/DATABASE",
        )
    return PostgresLedger(text)


def ledger_from_environment(default: Path) -> LedgerLocation:
    """``ORACODE_LEDGER`` when it is set (a container's usual way), else ``default``. Raises
    UsageError (exit 2) naming the variable when it holds a URL that can't be used."""
    value = os.environ.get(LEDGER_ENV, "").strip()
    return parse_ledger(value, source=LEDGER_ENV) if value else default


def mask_password(url: str) -> str:
    """``url`` with its password replaced by ``***`` (unchanged without one): everything between
    the user name's ``:`` and the last ``@`` (a password may hold ``/``, ``?``, ``#`` or ``@``
    unescaped), and any parameter whose key is ``password`` once percent-decoded (as libpq
    reads it). When in doubt it masks more, never less."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    if "@" in rest:
        userinfo, _, rest = rest.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        rest = f"{user}:{MASK}@{rest}" if colon else f"{user}@{rest}"
    rest = re.sub(r"([?&][^=&#]*=)([^&#]*)", _mask_password_parameter, rest)
    return f"{scheme}://{rest}"


def _mask_password_parameter(parameter: re.Match[str]) -> str:
    key = unquote(parameter[1][1:-1]).strip().lower()
    return parameter[1] + MASK if key == "password" else parameter[0]
