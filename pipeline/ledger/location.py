"""Where the ledger lives: a SQLite file (the default) or a PostgreSQL database.

``--ledger`` (or ``ORACODE_LEDGER``) takes a file's path or a PostgreSQL connection string: a
``postgresql://`` or ``postgres://`` URL (libpq's), the same URL as SQLAlchemy spells it with
its driver (``postgresql+psycopg://``), or libpq's ``key=value`` string (``host=db
dbname=ledger``). Which one a text is, libpq's own parser says: text is a ``key=value`` string
only when it parses as one (known keywords only, quoting as libpq reads it) and names a
``dbname``, ``host`` or ``service``. Any other text starting with a scheme (``mysql://``), or
made of several ``key=value`` words libpq can't read, is refused rather than taken for a path:
a database location mistyped must never become a new, empty SQLite ledger in a folder named
after it (hosts meant to share one ledger and its lock would each have their own). A path may
hold ``=`` (``outputs/date=2026-12-07/ledger.sqlite``).

A SQLite ledger stays a ``Path``; a PostgreSQL one is a ``PostgresLedger``, whose text is always
its connection string written again from what libpq reads in it, with every password
(``password``, ``sslpassword``, any key naming one) as ``***``: no message, log line or file
ever shows a password (libpq also finds one in ``PGPASSWORD`` or ``~/.pgpass`` when the string
has none). Text libpq can't read shows nothing past its first ``=`` (or, in a URL, past the
first ``:`` or ``@`` after the scheme).
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict

from pipeline.common.errors import UsageError

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
# A text that starts with a URL's scheme.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
# A ``key=`` word of a libpq string (a bare keyword at the start or after a space).
_KEYWORD = re.compile(r"(?:^|\s)[A-Za-z_][A-Za-z0-9_]*\s*=")
# What a libpq string must name to be one (else it is a path that happens to hold ``=``).
_NAMING_KEYS = frozenset({"dbname", "host", "service"})
# The order a ``key=value`` string is written again in (the rest after, as libpq read them).
_FIRST_KEYS = ("host", "hostaddr", "port", "dbname", "user")
# The parts of a URL that aren't query parameters.
_URL_KEYS = frozenset({"user", "password", "host", "port", "dbname"})


@dataclass(frozen=True)
class PostgresLedger:
    """A ledger in a PostgreSQL database. ``url`` is its connection string (a ``postgresql://``
    URL or libpq's ``key=value`` string) and holds the password when one was given: pass it only
    to the driver; ``str()`` and ``repr()`` show it masked."""

    url: str = field(repr=False)

    @functools.cached_property
    def masked(self) -> str:
        """The connection string with every password (if any) replaced by ``***``."""
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
    password, for a connection string that can't be used, for any other scheme, and for
    several ``key=value`` words libpq can't read, which are never taken for a path."""
    text = text.strip()
    scheme = _SCHEME.match(text)
    if scheme is not None:
        name, rest = scheme[1].lower(), text[scheme.end() :]
        if name in DRIVER_SCHEMES:
            return _postgres_url(f"postgresql://{rest}", source, given=text)
        if name in POSTGRES_SCHEMES:
            return _postgres_url(text, source, given=text)
        raise UsageError(
            f"{source} {mask_password(text)} is not a ledger location: {name}:// is no"
            " database the ledger can live in",
            hint=f"give {_FORMS}",
        )
    options, problem = _read_keywords(text)
    if options is not None and options.keys() & _NAMING_KEYS:
        if not options.keys() & {"dbname", "service"}:
            raise UsageError(
                f"{source} {mask_password(text)} names no database",
                hint="add dbname=DATABASE, or write it as postgresql://USER@HOST:PORT/DATABASE",
            )
        return PostgresLedger(text)
    if "://" in text or len(_KEYWORD.findall(text)) > 1:
        if options is not None:
            problem = "it names no dbname, host or service"
        why = f" ({problem})" if problem else ""
        raise UsageError(
            f"{source} {mask_password(text)} is neither a file's path nor a connection string"
            f" libpq can read{why}",
            hint=f"give {_FORMS}; a file's path can't hold :// or several key=value words",
        )
    return Path(text)


def _postgres_url(url: str, source: str, *, given: str) -> PostgresLedger:
    """A ``postgresql://`` URL, checked to name its hosts, ports and database readably, as
    libpq reads it (a password holding ``/`` or ``@`` unescaped moves them); a URL libpq
    can't read at all is checked as urllib reads it, and libpq says what is wrong in it when
    it connects (``postgres``)."""
    options = _read_url(url)
    if options is not None:
        readable, database = _is_plain(options), options.get("dbname", "")
    else:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 (raises ValueError for a port that isn't a number)
            readable, database = True, parts.path.strip("/")
        except ValueError:
            readable, database = False, ""  # its words may quote the password: not shown
    if not readable:
        raise UsageError(
            f"{source} {mask_password(given)} is not a usable PostgreSQL URL: its host or port"
            " can't be read (a password with / ? # or @ must be percent-encoded, or given in"
            " PGPASSWORD)",
            hint="write it as postgresql://USER@HOST:PORT/DATABASE",
        )
    if not database:
        raise UsageError(
            f"{source} {mask_password(given)} names no database",
            hint="write it as postgresql://USER@HOST:PORT/DATABASE",
        )
    return PostgresLedger(url)


def _read_keywords(text: str) -> tuple[dict[str, str] | None, str | None]:
    """What libpq reads in ``text`` as a ``key=value`` string, or None and why it can't (only
    when libpq names an unknown keyword: its other words may quote a password)."""
    try:
        return {key: str(value) for key, value in conninfo_to_dict(text).items()}, None
    except psycopg.Error as exc:
        words = " ".join(str(exc).split())
        unknown = re.fullmatch(r'invalid connection option "([A-Za-z_][A-Za-z0-9_]*)"', words)
        return None, unknown[0] if unknown else None


def _read_url(url: str) -> dict[str, str] | None:
    """What libpq reads in a ``postgresql://`` URL, or None when it can't."""
    try:
        return {key: str(value) for key, value in conninfo_to_dict(url).items()}
    except psycopg.Error:
        return None


def _is_plain(options: dict[str, str]) -> bool:
    """Whether a URL's parts as libpq read them are what they seem: numeric ports, and no
    ``@`` in a host, user or database (there it is a password's, unescaped)."""
    ports = [port for port in options.get("port", "").split(",") if port]
    named = (options.get(key, "") for key in ("host", "user", "dbname"))
    return all(port.isdigit() for port in ports) and not any("@" in value for value in named)


def ledger_from_environment(default: Path) -> LedgerLocation:
    """``ORACODE_LEDGER`` when it is set (a container's usual way), else ``default``. Raises
    UsageError (exit 2) naming the variable when it holds a URL that can't be used."""
    value = os.environ.get(LEDGER_ENV, "").strip()
    return parse_ledger(value, source=LEDGER_ENV) if value else default


def shown(text: str) -> str:
    """A ledger location as it may be shown: masked (``mask_password``) when it isn't a path."""
    try:
        location = parse_ledger(text)
    except UsageError:
        return mask_password(text)
    return str(location)


def is_secret(key: str) -> bool:
    """Whether a connection option holds a password (``password``, ``sslpassword``...)."""
    return "password" in key.lower()


def mask_password(text: str) -> str:
    """``text`` (a connection URL or libpq ``key=value`` string) written again from what libpq
    reads in it, every password as ``***`` (a URL under any scheme is read as libpq's). Text
    libpq can't read shows nothing past its first ``=``, or in a URL past the first ``:``,
    ``@`` or ``=`` after the scheme."""
    text = text.strip()
    scheme = _SCHEME.match(text)
    if scheme is None:
        options, _ = _read_keywords(text)
        if options is None:
            return _cut(text, "=")
        return _keywords_text(options)
    rest = text[scheme.end() :]
    url_options = _read_url(f"postgresql://{rest}")
    if url_options is None or not _is_plain(url_options):
        return scheme[0] + _cut(rest, ":@=")
    return scheme[0] + _url_text(url_options)


def _cut(text: str, marks: str) -> str:
    """``text`` up to its first of ``marks``, then ``***`` (all of it when it has none)."""
    found = [at for at in (text.find(mark) for mark in marks) if at >= 0]
    return text[: min(found) + 1] + MASK if found else text


def _keywords_text(options: dict[str, str]) -> str:
    """A ``key=value`` string of ``options``: hosts and database first, passwords last and
    masked."""
    keys = [key for key in _FIRST_KEYS if key in options]
    keys += [key for key in options if key not in keys and not is_secret(key)]
    keys += [key for key in options if is_secret(key)]
    return " ".join(
        f"{key}={MASK if is_secret(key) else _quoted_value(options[key])}" for key in keys
    )


def _quoted_value(value: str) -> str:
    """A value as libpq's ``key=value`` syntax writes it (quoted when empty or spaced)."""
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _url_text(options: dict[str, str]) -> str:
    """A URL's part after ``scheme://`` from ``options``, passwords masked."""
    user = quote(options.get("user", ""), safe="")
    userinfo = user + (f":{MASK}" if "password" in options else "")
    hosts = options.get("host", "").split(",")
    ports = options.get("port", "").split(",")
    query = {key: value for key, value in options.items() if key not in _URL_KEYS}
    if any(host.startswith("/") for host in hosts):
        query["host"], hosts = options["host"], [""]  # a socket's folder: a parameter
    if len(ports) != len(hosts):
        hosts, ports = [",".join(hosts)], [",".join(ports)]
    netloc = ",".join(
        (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
        for host, port in zip(hosts, ports, strict=True)
    )
    text = (f"{userinfo}@" if userinfo else "") + netloc + "/"
    text += quote(options.get("dbname", ""), safe="/")
    if query:
        text += "?" + "&".join(
            f"{key}={MASK if is_secret(key) else quote(value, safe='/')}"
            for key, value in query.items()
        )
    return text
