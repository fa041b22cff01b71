"""Where the ledger lives: a SQLite file (the default) or a PostgreSQL database.

``--ledger`` (or ``ORACODE_LEDGER``) takes a file's path or a PostgreSQL connection string: a
``postgresql://`` or ``postgres://`` URL (libpq's), the same URL as SQLAlchemy spells it with
its driver (``postgresql+psycopg://``), or libpq's ``key=value`` string (``host=db
dbname=ledger``). Anything else with ``://`` or ``=`` in it is refused rather than taken for a
file's path: a database location mistyped must never become a new, empty SQLite ledger in a
folder named after it (hosts meant to share one ledger and its lock would each have their own).
A SQLite ledger stays a ``Path``; a PostgreSQL one is a ``PostgresLedger``, whose text is always
its connection string with the password masked, so that no message, log line or file ever
shows the password (libpq also finds one in ``PGPASSWORD`` or ``~/.pgpass`` when the string
has none).
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
# SQLAlchemy's spellings of the same URL, naming a driver: libpq's URL once the driver is gone.
DRIVER_SCHEMES = ("postgresql+psycopg", "postgresql+psycopg2")
LEDGER_ENV = "ORACODE_LEDGER"
MASK = "***"
_FORMS = (
    "a SQLite file's path, a postgresql:// (or postgres://, postgresql+psycopg://) URL, or a"
    " libpq string such as 'host=db dbname=ledger'"
)
# A libpq ``password=`` parameter and its value (quoted, or up to the next space).
_KEYWORD_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)")


@dataclass(frozen=True)
class PostgresLedger:
    """A ledger in a PostgreSQL database. ``url`` is its connection string (a ``postgresql://``
    URL or libpq's ``key=value`` string) and holds the password when one was given: pass it only
    to the driver; ``str()`` and ``repr()`` show it masked."""

    url: str = field(repr=False)

    @property
    def masked(self) -> str:
        """The connection string with its password (if any) replaced by ``***``."""
        return mask_password(self.url)

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"PostgresLedger({self.masked!r})"


LedgerLocation = Path | PostgresLedger


def parse_ledger(text: str, *, source: str = "--ledger") -> LedgerLocation:
    """``--ledger``'s value: a PostgreSQL URL (``postgresql://``, ``postgres://``,
    ``postgresql+psycopg://``) or libpq ``key=value`` string, or else a SQLite file's path.
    Raises UsageError (exit 2) naming ``source`` (where the text came from), without showing a
    password, for a connection string that can't be used, and for any other text holding
    ``://`` or ``=``, which is never taken for a path."""
    text = text.strip()
    scheme, separator, rest = text.partition("://")
    if separator:
        if scheme.lower() in DRIVER_SCHEMES:
            return _postgres_url(f"postgresql://{rest}", source, given=text)
        if scheme.lower() in POSTGRES_SCHEMES:
            return _postgres_url(text, source, given=text)
        raise UsageError(
            f"{source} {mask_password(text)} is not a ledger location: {scheme}:// is no"
            " database the ledger can live in",
            hint=f"give {_FORMS}",
        )
    if "=" in text:
        return _keyword_string(text, source)
    return Path(text)


def _postgres_url(url: str, source: str, *, given: str) -> PostgresLedger:
    """A ``postgresql://`` URL, checked to name its host, port and database readably."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that isn't a number)
        readable = True
    except ValueError:
        readable = False  # its words may quote the password: not shown, not chained
    if not readable:
        raise UsageError(
            f"{source} {mask_password(given)} is not a usable PostgreSQL URL: its host or port"
            " can't be read (a password with / ? # or @ must be percent-encoded, or given in"
            " PGPASSWORD)",
            hint="write it as postgresql://USER@HOST:PORT/DATABASE",
        )
    if not parts.path.strip("/"):
        raise UsageError(
            f"{source} {mask_password(given)} names no database",
            hint="write it as postgresql://USER@HOST:PORT/DATABASE",
        )
    return PostgresLedger(url)


def _keyword_string(text: str, source: str) -> PostgresLedger:
    """libpq's ``key=value`` connection string, checked to be one libpq reads and to name its
    database (``dbname``, or a ``service`` that may)."""
    # Imported here: only a connection string needs the driver's parser.
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        options = conninfo_to_dict(text)
        problem = None
    except psycopg.Error as exc:
        options, problem = {}, " ".join(str(exc).split())
    if problem is not None:
        raise UsageError(
            f"{source} {mask_password(text)} is neither a file's path nor a connection string"
            f" libpq can read ({_without_password(problem, text)})",
            hint=f"give {_FORMS}; a file's path can't hold = or ://",
        )
    if not ({"dbname", "service"} & options.keys()):
        raise UsageError(
            f"{source} {mask_password(text)} names no database",
            hint="add dbname=DATABASE, or write it as postgresql://USER@HOST:PORT/DATABASE",
        )
    return PostgresLedger(text)


def _without_password(words: str, text: str) -> str:
    """The driver's ``words`` about ``text`` without the password written in it."""
    for found in _KEYWORD_PASSWORD.finditer(text):
        value = found[2].strip("'")
        if value:
            words = words.replace(value, MASK)
    return words


def ledger_from_environment(default: Path) -> LedgerLocation:
    """``ORACODE_LEDGER`` when it is set (a container's usual way), else ``default``. Raises
    UsageError (exit 2) naming the variable when it holds a URL that can't be used."""
    value = os.environ.get(LEDGER_ENV, "").strip()
    return parse_ledger(value, source=LEDGER_ENV) if value else default


def shown(text: str) -> str:
    """A ledger location as it may be shown: masked (``mask_password``) when it could be a
    connection string (it holds ``://`` or ``=``), else as given."""
    return mask_password(text) if "://" in text or "=" in text else text


def mask_password(url: str) -> str:
    """``url`` (a connection URL or libpq ``key=value`` string) with its password replaced by
    ``***`` (unchanged without one). In a URL: everything between the user name's ``:`` and
    the last ``@`` (a password may hold ``/``, ``?``, ``#`` or ``@`` unescaped), and any
    parameter whose key is ``password`` once percent-decoded (as libpq reads it); in a
    ``key=value`` string, the ``password`` value, quoted or not. When in doubt it masks more,
    never less."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return _KEYWORD_PASSWORD.sub(lambda found: found[1] + MASK, url)
    if "@" in rest:
        userinfo, _, rest = rest.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        rest = f"{user}:{MASK}@{rest}" if colon else f"{user}@{rest}"
    rest = re.sub(r"([?&][^=&#]*=)([^&#]*)", _mask_password_parameter, rest)
    return f"{scheme}://{rest}"


def _mask_password_parameter(parameter: re.Match[str]) -> str:
    key = unquote(parameter[1][1:-1]).strip().lower()
    return parameter[1] + MASK if key == "password" else parameter[0]
