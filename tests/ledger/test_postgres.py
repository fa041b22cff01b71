"""Connecting to a PostgreSQL ledger: each failure is one line of the right kind (exit 2 for
what the user must fix, 3 for a server out of reach or lost), and none shows the password."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import psycopg
import psycopg.errors
import pytest

from pipeline.common.errors import LedgerError, UsageError
from pipeline.ledger.location import parse_ledger
from pipeline.ledger.postgres import (
    application_name,
    connect,
    connect_failure,
    holds_ledger,
    is_connection_failure,
    lost_connection,
    scrub,
)
from tests.postgres import free_port

SECRET = "s3cr3t-pw"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that takes connections and never answers (a server that hangs)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_a_closed_port_is_a_server_out_of_reach_in_one_line_without_the_password():
    """Nothing listens: LedgerError (exit 3), one line naming the masked URL and what to do."""
    port = free_port()
    ledger = parse_ledger(f"postgresql://app:{SECRET}@127.0.0.1:{port}/ledger")
    with pytest.raises(LedgerError) as raised:
        connect(ledger, purpose="apply")
    line = raised.value.one_line()
    assert raised.value.exit_code == 3
    assert line.startswith(
        f"ledger postgresql://app:***@127.0.0.1:{port}/ledger can't be reached: connection to"
        f' server at "127.0.0.1", port {port} failed: Connection refused'
    )
    assert "Connection refused" in line
    assert line.endswith(
        "(check that the PostgreSQL server is up and reachable from here, then rerun)"
    )
    assert "\n" not in line
    assert SECRET not in line
    # Neither chained nor kept as the context: the driver's words may hold the password.
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None


def test_a_server_that_never_answers_times_out_as_out_of_reach(silent_port):
    """A server that takes the connection and says nothing: exit 3 after the URL's timeout."""
    ledger = parse_ledger(
        f"postgresql://app:{SECRET}@127.0.0.1:{silent_port}/ledger?connect_timeout=1"
    )
    with pytest.raises(LedgerError) as raised:
        connect(ledger, purpose="apply")
    assert "can't be reached: connection timeout expired" in raised.value.one_line()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (
            "postgresql://app:{secret}@127.0.0.1:{port}/ledger?sslmode=sometimes",
            'invalid sslmode value: "sometimes"',
        ),
        (
            "postgresql://app:{secret}@127.0.0.1:{port}/ledger?colour=blue",
            'invalid URI query parameter: "colour"',
        ),
        # libpq quotes the token it can't decode: here, the password itself.
        ("postgresql://app:%zz{secret}@127.0.0.1:{port}/ledger", "invalid percent-encoded token"),
        (
            "postgresql://app@127.0.0.1:{port}/ledger?password=%zz{secret}",
            "invalid percent-encoded token",
        ),
    ],
)
def test_an_option_libpq_cannot_read_is_a_usage_error_without_the_password(url, says):
    """A malformed option: UsageError (exit 2) naming it, the hint naming where the URL and
    the password come from; never the password, even where libpq quotes it."""
    ledger = parse_ledger(url.format(secret=SECRET, port=free_port()))
    with pytest.raises(UsageError) as raised:
        connect(ledger, purpose="apply")
    line = raised.value.one_line()
    assert raised.value.exit_code == 2
    assert says in line
    assert "can't be opened" in line
    assert line.endswith(
        "(check the URL in --ledger or ORACODE_LEDGER, and PGPASSWORD or ~/.pgpass)"
    )
    assert SECRET not in line
    assert "\n" not in line


def test_an_unknown_host_is_out_of_reach_whatever_its_name_says():
    """A host name that can't be resolved is exit 3, even one with 'invalid' in it."""
    ledger = parse_ledger(f"postgresql://app:{SECRET}@no-such-host.invalid:5432/ledger")
    error = connect_failure(
        ledger,
        psycopg.OperationalError(
            "failed to resolve host 'no-such-host.invalid': [Errno -2] Name or service not known"
        ),
    )
    assert isinstance(error, LedgerError)


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ('FATAL:  password authentication failed for user "app"', UsageError),
        ("fe_sendauth: no password supplied", UsageError),
        ('FATAL:  database "ledger" does not exist', UsageError),
        ('FATAL:  role "app" does not exist', UsageError),
        ('FATAL:  no pg_hba.conf entry for host "10.0.0.2", user "app"', UsageError),
        ("FATAL:  the database system is starting up", LedgerError),
        ("FATAL:  sorry, too many clients already", LedgerError),
        ("timeout expired", LedgerError),
        ('could not translate host name "db-refused" to address', LedgerError),
    ],
)
def test_the_server_s_refusals_are_usage_errors_and_the_rest_out_of_reach(message, kind):
    """What the user must fix is exit 2; a server that can't take us now is exit 3."""
    ledger = parse_ledger(f"postgresql://app:{SECRET}@db:5432/ledger")
    exc = psycopg.OperationalError(
        f'connection failed: connection to server at "db" failed: {message}'
    )
    error = connect_failure(ledger, exc)
    assert type(error) is kind
    assert SECRET not in error.one_line()


def test_a_lost_connection_is_one_line_with_the_reason_scrubbed():
    """lost_connection: exit 3, the masked URL, the driver's words, and why a rerun is safe."""
    ledger = parse_ledger(f"postgresql://app:{SECRET}@db:5432/ledger")
    exc = psycopg.errors.AdminShutdown(
        f"terminating connection due to administrator command\n(was {ledger.url})"
    )
    error = lost_connection(ledger, exc)
    assert error.exit_code == 3
    assert error.one_line() == (
        "ledger postgresql://app:***@db:5432/ledger: lost its connection to PostgreSQL"
        " (terminating connection due to administrator command"
        " (was postgresql://app:***@db:5432/ledger))"
        " (rerun once the server is reachable: every code sent was committed first)"
    )


def test_scrub_masks_the_password_however_it_is_written(monkeypatch):
    """The URL's password as written, decoded, as a query parameter, and PGPASSWORD's."""
    monkeypatch.setenv("PGPASSWORD", "env-secret")
    ledger = parse_ledger("postgresql://app:p%40ss@db/ledger?password=q%2Bw")
    text = "p%40ss p@ss q%2Bw q+w env-secret postgresql://app:p%40ss@db/ledger?password=q%2Bw"
    assert scrub(ledger, text) == ("*** *** *** *** *** postgresql://app:***@db/ledger")


@pytest.mark.parametrize(
    ("exc", "failed"),
    [
        (psycopg.OperationalError("the connection is closed"), True),
        (psycopg.OperationalError("consuming input failed: server closed the connection"), True),
        (psycopg.errors.ConnectionTimeout("connection timeout expired"), True),
        (psycopg.errors.AdminShutdown("terminating connection"), True),
        (psycopg.errors.CrashShutdown("terminating connection"), True),
        (psycopg.errors.DiskFull("could not extend file"), True),
        (psycopg.errors.IoError("could not read block"), True),
        (psycopg.errors.ConnectionFailure("connection failure"), True),
        (psycopg.errors.TooManyConnections("too many clients"), True),
        (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), False),
        (psycopg.errors.SerializationFailure("could not serialize access"), False),
        (psycopg.errors.DeadlockDetected("deadlock detected"), False),
        (psycopg.errors.LockNotAvailable("could not obtain lock"), False),
        (psycopg.errors.UniqueViolation("duplicate key value"), False),
        (psycopg.errors.UndefinedTable('relation "runs" does not exist'), False),
        (ValueError("not psycopg's"), False),
    ],
)
def test_connection_failures_are_told_from_a_statement_s_own_errors(exc, failed):
    """The server or the connection failing, not one statement: is_connection_failure."""
    assert is_connection_failure(exc) is failed


def test_a_connection_names_its_purpose_process_and_host():
    """application_name: what the run lock's holder is named by in pg_stat_activity."""
    name = application_name("apply")
    assert name.startswith("oracode-provision apply pid=")
    assert name.endswith(f" host={socket.gethostname()}")


@pytest.mark.slow
def test_a_connection_is_in_autocommit_named_and_kept_alive(postgres_url):
    """What the server sees of a ledger connection: autocommit, its name in
    pg_stat_activity, keepalives on at both ends; the URL's own connect_timeout wins."""
    ledger = parse_ledger(f"{postgres_url}?connect_timeout=3")
    with connect(ledger, purpose="apply") as connection:
        assert connection.autocommit
        row = connection.execute(
            "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        ).fetchone()
        # The server keeps 63 bytes of it: a long host name loses its end.
        assert row == (application_name("apply").encode()[:63].decode("utf-8", "ignore"),)
        settings = connection.info.get_parameters()
        assert settings["connect_timeout"] == "3"
        assert (settings["keepalives"], settings["keepalives_idle"]) == ("1", "10")
        assert (settings["keepalives_interval"], settings["keepalives_count"]) == ("5", "3")
        server_side = connection.execute(
            "SELECT current_setting('tcp_keepalives_idle'),"
            " current_setting('tcp_keepalives_interval'), current_setting('tcp_keepalives_count')"
        ).fetchone()
        assert server_side == ("10", "5", "3")


@pytest.mark.slow
def test_the_password_may_come_from_pgpassword(postgres_server, monkeypatch):
    """libpq finds the password in PGPASSWORD when the URL has none."""
    url = postgres_server.new_database(with_password=False)
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    with connect(parse_ledger(url), purpose="read") as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)
    monkeypatch.setenv("PGPASSWORD", "not-it")
    with pytest.raises(UsageError) as refused:
        connect(parse_ledger(url), purpose="read")
    assert "not-it" not in refused.value.one_line()


@pytest.mark.slow
def test_holds_ledger_says_whether_the_database_has_a_ledger(postgres_url):
    """A fresh database holds no ledger; one with the ledger's runs table does."""
    ledger = parse_ledger(postgres_url)
    assert not holds_ledger(ledger, purpose="report")
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("CREATE TABLE runs (run_id text PRIMARY KEY)")
    assert holds_ledger(ledger, purpose="report")


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_role_without_create_uses_a_ledger_another_role_made(postgres_server):
    """The first apply's role creates the tables; a role that may only read and write rows
    (no CREATE on the schema) opens that ledger and records in it."""
    from pipeline.ledger.store import Ledger
    from tests.ledger.helpers import planned

    owner_url = postgres_server.new_database()
    database = owner_url.rsplit("/", 1)[1]
    made = await Ledger.open(parse_ledger(owner_url))
    await made.close()
    with psycopg.connect(owner_url, autocommit=True) as admin:
        admin.execute("CREATE ROLE writer LOGIN PASSWORD 'writer-pw'")
        admin.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        admin.execute(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO writer"
        )
        admin.execute("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO writer")
    url = f"postgresql://writer:writer-pw@{postgres_server.host}:{postgres_server.port}/{database}"
    ledger = await Ledger.open(parse_ledger(url))
    try:
        run_id = await ledger.start_run("apply", [])
        await ledger.register(run_id, [planned("t1")])
        assert await ledger.mark_sending("t1", run_id)
    finally:
        await ledger.close()


def new_role(owner_url: str, *, grant: str) -> tuple[str, str]:
    """A login role of its own (no CREATE on the schema), given ``grant`` on the tables as
    the owner; its name and password."""
    role = f"writer_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(owner_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'writer-pw'")
        admin.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        admin.execute(grant.format(role=role))
        admin.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
    return role, "writer-pw"


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_role_that_cannot_see_every_table_still_opens_an_up_to_date_ledger(
    postgres_server,
):
    """A role granted rows of every table but one (the catalog, not its privileges, says what
    exists) opens a ledger another role made: nothing is created again, nothing refused."""
    from pipeline.ledger.store import Ledger

    owner_url = postgres_server.new_database()
    database = owner_url.rsplit("/", 1)[1]
    await (await Ledger.open(parse_ledger(owner_url))).close()
    role, password = new_role(
        owner_url,
        grant="GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};"
        " REVOKE ALL ON known_trouble FROM {role}",
    )
    server = f"{postgres_server.host}:{postgres_server.port}"
    ledger = await Ledger.open(parse_ledger(f"postgresql://{role}:{password}@{server}/{database}"))
    try:
        assert await ledger.start_run("status", [])
    finally:
        await ledger.close()


@pytest.mark.slow
@pytest.mark.anyio
async def test_an_older_ledger_a_role_cannot_upgrade_says_who_can_and_the_grants(
    postgres_server,
):
    """A ledger of an earlier version (no door_looks table, no reported_code column) opened
    by a role without CREATE: exit 2, one line naming what it needs, the owner's role to open
    it with, and the GRANT; once the owner has opened it and granted, the role opens it."""
    from pipeline.ledger.store import Ledger

    owner_url = postgres_server.new_database()
    database = owner_url.rsplit("/", 1)[1]
    await (await Ledger.open(parse_ledger(owner_url))).close()
    with psycopg.connect(owner_url, autocommit=True) as admin:
        admin.execute("DROP TABLE door_looks; ALTER TABLE codes DROP COLUMN reported_code")
    role, password = new_role(
        owner_url,
        grant="GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
    )
    server = f"{postgres_server.host}:{postgres_server.port}"
    url = f"postgresql://{role}:{password}@{server}/{database}"
    with pytest.raises(UsageError) as refused:
        await Ledger.open(parse_ledger(url))
    assert refused.value.exit_code == 2
    assert refused.value.one_line() == (
        f"ledger postgresql://{role}:***@{server}/{database} was made by an earlier version,"
        f" and role {role} can't bring it up to date: it needs table door_looks, column"
        " codes.reported_code (permission denied for schema public) (open it once with the"
        " role that owns its tables (e.g. oracode-provision report --ledger <the owner's"
        " URL>); then, as the owner: GRANT SELECT, INSERT, UPDATE, DELETE ON door_looks TO"
        f" {role})"
    )
    await (await Ledger.open(parse_ledger(owner_url))).close()
    with psycopg.connect(owner_url, autocommit=True) as admin:
        admin.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON door_looks TO {role}")
    ledger = await Ledger.open(parse_ledger(url))
    try:
        ledger.note_door_looks(["door-1"])
        await ledger.commit()
    finally:
        await ledger.close()
