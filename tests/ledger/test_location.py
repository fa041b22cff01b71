"""Where the ledger lives: a file's path, or a PostgreSQL URL whose password is never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.common.errors import UsageError
from pipeline.ledger.location import PostgresLedger, ledger_from_environment, parse_ledger


def test_a_path_stays_a_path_and_a_url_becomes_a_postgres_ledger():
    assert parse_ledger("outputs/ledger.sqlite") == Path("outputs/ledger.sqlite")
    assert parse_ledger(" postgresql://app@db:5432/ledger ") == PostgresLedger(
        "postgresql://app@db:5432/ledger"
    )
    assert isinstance(parse_ledger("postgres://db/ledger"), PostgresLedger)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cr3t@db:5432/ledger", "postgresql://app:***@db:5432/ledger"),
        (
            "postgresql://app@db/ledger?password=s3cr3t&sslmode=require",
            "postgresql://app:***@db/ledger?sslmode=require",
        ),
        ("postgresql://app@db/ledger", "postgresql://app@db/ledger"),
        (
            "postgresql://app@db/ledger?sslmode=require&pass%77ord=s3cr3t",
            "postgresql://app:***@db/ledger?sslmode=require",
        ),
        (
            "postgresql://app@db/ledger?sslpassword=s3cr3t&sslmode=require",
            "postgresql://app@db/ledger?sslmode=require&sslpassword=***",
        ),
        # libpq can't read an upper-case key: nothing past the first ``@`` is shown.
        ("postgresql://app@db/ledger?PASSWORD=s3cr3t", "postgresql://app@***"),
        ("postgresql://h1:5432,h2:5433/ledger", "postgresql://h1:5432,h2:5433/ledger"),
        ("postgresql://app:s3?cr#et@db/ledger", "postgresql://app:***@db/ledger"),
    ],
)
def test_the_password_is_masked_in_every_text_of_the_ledger(url, shown):
    """A URL is written again from what libpq reads in it, every password as ***."""
    ledger = parse_ledger(url)
    assert str(ledger) == shown
    assert "s3cr3t" not in repr(ledger)
    assert "s3cr3t" not in f"{ledger} {ledger!r} {[ledger]}"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://app:s3cr3t@db:port/ledger", "not a usable PostgreSQL URL"),
        ("postgresql://app:s3cr3t@db:5432/", "names no database"),
    ],
)
def test_a_url_that_cannot_be_used_is_a_usage_error_without_its_password(url, says):
    with pytest.raises(UsageError) as raised:
        parse_ledger(url)
    assert says in raised.value.one_line()
    assert "s3cr3t" not in raised.value.one_line()


def test_oracode_ledger_in_the_environment_wins_over_the_default(monkeypatch):
    monkeypatch.delenv("ORACODE_LEDGER", raising=False)
    assert ledger_from_environment(Path("outputs/ledger.sqlite")) == Path("outputs/ledger.sqlite")
    monkeypatch.setenv("ORACODE_LEDGER", "postgresql://app@db/ledger")
    assert ledger_from_environment(Path("x")) == PostgresLedger("postgresql://app@db/ledger")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:s3cr/et@db/ledger",
        "postgresql://app:s3cr/et@db:5432/ledger",
        "postgresql://app:s3?cr#et@db/ledger",
        "postgresql://app:s3cr@et@db/ledger",
    ],
)
def test_a_password_with_unescaped_url_characters_is_masked_all_the_same(url):
    """A password holding / ? # or @ as written (base64 secrets do) never shows: not in the
    ledger's text, nor in the error of a URL that can't be read, nor in its context."""
    failure: UsageError | None = None
    try:
        shown = str(parse_ledger(url))
    except UsageError as exc:
        failure, shown = exc, exc.one_line()
    if failure is not None:
        assert (failure.__context__, failure.__cause__) == (None, None)
    assert "s3" not in shown
    assert "cr" not in shown.replace("PostgreSQL", "").replace("percent", "")


@pytest.mark.parametrize(
    ("given", "url", "shown"),
    [
        (
            "postgresql+psycopg://app:s3cr3t@db:5432/ledger",
            "postgresql://app:s3cr3t@db:5432/ledger",
            "postgresql://app:***@db:5432/ledger",
        ),
        (
            "postgresql+psycopg2://app@db/ledger?sslmode=require",
            "postgresql://app@db/ledger?sslmode=require",
            "postgresql://app@db/ledger?sslmode=require",
        ),
        (
            "host=db port=5432 dbname=ledger user=app password=s3cr3t",
            "host=db port=5432 dbname=ledger user=app password=s3cr3t",
            "host=db port=5432 dbname=ledger user=app password=***",
        ),
        (
            "host=db dbname=ledger password = 's3 cr3t\\' x' sslmode=require",
            "host=db dbname=ledger password = 's3 cr3t\\' x' sslmode=require",
            "host=db dbname=ledger sslmode=require password=***",
        ),
        ("service=oracode", "service=oracode", "service=oracode"),
    ],
)
def test_every_form_of_a_postgresql_location_reaches_postgresql(given, url, shown):
    """SQLAlchemy's driver URLs and libpq key=value strings are PostgreSQL ledgers (the driver
    URL as libpq's own), their passwords masked in every text of the ledger."""
    ledger = parse_ledger(given)
    assert ledger == PostgresLedger(url)
    assert str(ledger) == shown
    assert "s3" not in f"{ledger} {ledger!r}"


@pytest.mark.parametrize(
    ("given", "line"),
    [
        (
            "mysql://app:s3cr3t@db/ledger",
            "--ledger mysql://app:***@db/ledger is not a ledger location: mysql:// is no"
            " database the ledger can live in",
        ),
        (
            "sqlite:///outputs/ledger.sqlite",
            "--ledger sqlite:///outputs/ledger.sqlite is not a ledger location: sqlite:// is no"
            " database the ledger can live in",
        ),
        (
            "host=db password=s3cr3t dbnme=ledger",
            "--ledger host=*** is neither a file's path nor a connection string libpq can read"
            ' (invalid connection option "dbnme")',
        ),
        ("host=db password=s3cr3t", "--ledger host=db password=*** names no database"),
    ],
)
def test_a_location_that_is_neither_a_path_nor_postgresql_is_refused(given, line, tmp_path):
    """Text with :// or = that isn't a PostgreSQL location is exit 2 with one line that never
    shows its password, and never becomes a SQLite file or folder."""
    with pytest.raises(UsageError) as refused:
        parse_ledger(given)
    assert refused.value.exit_code == 2
    assert refused.value.message == line
    assert "s3cr3t" not in refused.value.one_line()


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        # A quoted password holding :// is a libpq string's, not a URL.
        ("host=db password='Zz://s3cr3t' dbname=ledger", "host=db dbname=ledger password=***"),
        ("host=db dbname=ledger sslpassword=s3cr3t", "host=db dbname=ledger sslpassword=***"),
        ("host=db dbname=ledger password=p\\'s3cr3t\\ r", "host=db dbname=ledger password=***"),
        (
            "postgresql+psycopg://app:s3cr3t@db/ledger?sslpassword=s3cr3t",
            "postgresql://app:***@db/ledger?sslpassword=***",
        ),
    ],
)
def test_every_password_of_a_connection_string_is_masked_as_libpq_reads_it(given, shown):
    """Each password libpq reads (quoted, escaped, sslpassword) is *** in the ledger's text,
    decided by libpq's parser, never by a pattern over the text."""
    ledger = parse_ledger(given)
    assert isinstance(ledger, PostgresLedger)
    assert str(ledger) == shown
    assert "s3cr3t" not in f"{ledger} {ledger!r}"


@pytest.mark.parametrize(
    "given",
    [
        "host=db PASSWORD=s3cr3t dbname=ledger",
        'host=db password="dq s3cr3t" dbname=ledger',
        "host=db password='it''s s3cr3t' dbname=ledger",
    ],
)
def test_a_string_libpq_cannot_read_shows_nothing_past_its_first_equals(given):
    """Several key=value words libpq can't read are refused (exit 2), the line showing only
    what stands before the first = (libpq's own words may quote the password)."""
    with pytest.raises(UsageError) as refused:
        parse_ledger(given)
    assert refused.value.exit_code == 2
    assert refused.value.message.startswith(
        "--ledger host=*** is neither a file's path nor a connection string libpq can read"
    )
    assert "s3cr3t" not in refused.value.one_line()
    assert "dq" not in refused.value.one_line()


@pytest.mark.parametrize(
    "given",
    [
        "outputs/date=2026-12-07/ledger.sqlite",
        "outputs/night=1/ledger.sqlite",
        "ledgers/a=b",
        "dbnme=ledger.sqlite",
    ],
)
def test_a_path_holding_equals_is_a_path(given):
    """Text that isn't a libpq string naming a dbname, host or service is a file's path, = or
    not (only several key=value words, or ://, are refused)."""
    assert parse_ledger(given) == Path(given)


def test_a_libpq_string_naming_none_of_its_database_or_host_is_refused():
    """Several known keywords that name no dbname, host or service: refused, not a path."""
    with pytest.raises(UsageError) as refused:
        parse_ledger("user=app password=s3cr3t")
    assert refused.value.message == (
        "--ledger user=app password=*** is neither a file's path nor a connection string libpq"
        " can read (it names no dbname, host or service)"
    )
