"""Where the ledger lives: a file's path, or a PostgreSQL URL whose password is never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import UsageError
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
            "postgresql://app@db/ledger?password=***&sslmode=require",
        ),
        ("postgresql://app@db/ledger", "postgresql://app@db/ledger"),
        (
            "postgresql://app@db/ledger?sslmode=require&pass%77ord=s3cr3t",
            "postgresql://app@db/ledger?sslmode=require&pass%77ord=***",
        ),
        ("postgresql://app@db/ledger?PASSWORD=s3cr3t", "postgresql://app@db/ledger?PASSWORD=***"),
    ],
)
def test_the_password_is_masked_in_every_text_of_the_ledger(url, shown):
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
            "host=db dbname=ledger password = *** sslmode=require",
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
            "outputs/night=1/ledger.sqlite",
            "--ledger outputs/night=1/ledger.sqlite is neither a file's path nor a connection"
            ' string libpq can read (invalid connection option "outputs/night")',
        ),
        (
            "host=db password=s3cr3t dbnme=ledger",
            "--ledger host=db password=*** dbnme=ledger is neither a file's path nor a"
            ' connection string libpq can read (invalid connection option "dbnme")',
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
