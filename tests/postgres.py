"""A throwaway PostgreSQL server for the tests: initdb in a fresh temporary folder, started on a
free loopback port with a random superuser password, stopped and removed at the end.

The binaries are the Debian package's (``make postgres`` installs them). Run as root, every
server command runs as the ``postgres`` OS user, since initdb and postgres refuse root. Password
logins over TCP use scram-sha-256 (so a wrong password is refused); the unix socket, inside the
temporary folder, trusts local users. fsync stays on: the ledger is about durability, and the
tests that stop the server abruptly must see what a real server keeps.
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import secrets
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit

import psycopg
from psycopg import sql

DEBIAN_ROOT = Path("/usr/lib/postgresql")
OS_USER = "postgres"
SUPERUSER = "postgres"
HOST = "127.0.0.1"
PREFIX = "oracode-pg-"
OWNER_FILE = "session.pid"
TIMEOUT = 30
INSTALL_HINT = "run `make postgres` (or `make test`, which installs it)"

StopMode = Literal["smart", "fast", "immediate"]


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries (initdb, pg_ctl) on this machine."""


class PostgresFailed(RuntimeError):
    """A server command failed; the message ends with the server log's tail."""


@dataclass(frozen=True)
class Binaries:
    initdb: Path
    pg_ctl: Path


def find_binaries(debian_root: Path = DEBIAN_ROOT, path: str | None = None) -> Binaries:
    """initdb and pg_ctl: the newest major under the Debian package's folder, else the folder
    ``pg_config --bindir`` names, else PATH (``path``, as for shutil.which). Both must be in
    the same folder, since pg_ctl starts the postgres next to it."""
    folders = sorted(debian_root.glob("*/bin"), key=_major, reverse=True)
    if (pg_config := shutil.which("pg_config", path=path)) and (
        bindir := _output([pg_config, "--bindir"])
    ):
        folders.append(Path(bindir))
    if initdb := shutil.which("initdb", path=path):
        folders.append(Path(initdb).resolve().parent)
    for folder in folders:
        found = Binaries(folder / "initdb", folder / "pg_ctl")
        if all(os.access(p, os.X_OK) for p in (found.initdb, found.pg_ctl)):
            return found
    raise PostgresMissing(
        f"PostgreSQL server binaries (initdb, pg_ctl) not found in {debian_root}/<major>/bin, "
        f"pg_config --bindir or PATH: {INSTALL_HINT}"
    )


def _major(folder: Path) -> tuple[int, ...]:
    """The version in ``<root>/<major>/bin`` as numbers (9.6 < 15 < 16), for sorting."""
    return tuple(int(n) for n in re.findall(r"\d+", folder.parent.name))


def _output(command: Sequence[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def free_port() -> int:
    """A loopback port nobody listens on right now (the kernel's pick for port 0)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _as_server_user(command: Sequence[str | Path]) -> list[str]:
    """The command as the ``postgres`` OS user when we are root (initdb and postgres refuse
    root), as is otherwise."""
    if os.geteuid() != 0:
        return [str(c) for c in command]
    if runuser := shutil.which("runuser"):
        return [runuser, "-u", OS_USER, "--", *map(str, command)]
    return ["su", OS_USER, "-s", "/bin/sh", "-c", shlex.join(map(str, command))]


def servers_folder() -> Path:
    """Where the servers' folders go: the temporary folder, unless the server user (when we
    are root) couldn't reach into it (a TMPDIR under a private home): then /tmp."""
    folder = Path(tempfile.gettempdir())
    if os.geteuid() == 0 and any(
        not os.stat(part).st_mode & stat.S_IXOTH for part in (folder, *folder.parents)
    ):
        return Path("/tmp")
    return folder


def _give_to_server_user(path: Path) -> None:
    """The folder or file belongs to the ``postgres`` OS user (when we are root)."""
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam(OS_USER)
        except KeyError:
            raise PostgresMissing(
                f"tests run as root need the {OS_USER!r} OS user for the server: {INSTALL_HINT}"
            ) from None
        os.chown(path, user.pw_uid, user.pw_gid)


@dataclass
class PostgresServer:
    """One server in ``root`` (data folder, unix socket, log) on ``host``:``port``, superuser
    ``user`` with ``password``."""

    binaries: Binaries
    root: Path
    port: int
    password: str = field(repr=False)
    host: str = HOST
    user: str = SUPERUSER
    _names: Iterator[int] = field(default_factory=itertools.count, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres", *, with_password: bool = True) -> str:
        """The connection URL of ``database``; without the password for the tests of
        PGPASSWORD and .pgpass."""
        secret = f":{quote(self.password, safe='')}" if with_password else ""
        return f"postgresql://{self.user}{secret}@{self.host}:{self.port}/{quote(database)}"

    def new_database(self, name: str | None = None, *, with_password: bool = True) -> str:
        """CREATE DATABASE (a unique name unless one is given) and return its URL: each test
        gets its own, so none sees another's tables."""
        name = name or f"test_{next(self._names)}_{secrets.token_hex(3)}"
        with self.connect() as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name, with_password=with_password)

    def connect(self, database: str = "postgres") -> psycopg.Connection[tuple[Any, ...]]:
        """A superuser connection in autocommit (CREATE DATABASE cannot run in a transaction)."""
        return psycopg.connect(self.url(database), autocommit=True, connect_timeout=10)

    def terminate_backends(self, database: str, *, named: str = "%") -> int:
        """Cut every connection to ``database`` (a name or one of our URLs) but this call's own,
        as a dropped connection mid-run would, or those whose ``application_name`` is LIKE
        ``named``; returns how many. Each is gone on return."""
        if "://" in database:
            database = unquote(urlsplit(database).path.lstrip("/"))
        with self.connect() as admin:
            pids = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s"
                " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                " AND application_name LIKE %s",
                [database, named],
            ).fetchall()
            # One by one: in a single query the planner may call pg_terminate_backend
            # before the other conditions, on our own connection too.
            return sum(_terminate(admin, pid) for (pid,) in pids)

    def start(self) -> None:
        """pg_ctl start on our port, waiting until the server accepts connections; a failure
        raises with the server log's tail."""
        self._pg_ctl(
            "start", "-w", "-t", str(TIMEOUT), "-l", self.log_file, "-o", f"-p {self.port}"
        )

    def stop(self, mode: StopMode = "fast") -> None:
        """pg_ctl stop: ``fast`` rolls back open transactions and shuts down cleanly;
        ``immediate`` kills the server as a crash would (recovery at the next start)."""
        self._pg_ctl("stop", "-w", "-t", str(TIMEOUT), "-m", mode)

    def restart_abruptly(self) -> None:
        """An immediate stop, then a start on the same data folder and port: what was committed
        is still there, and the connections open before are broken."""
        self.stop("immediate")
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        """The server log's last lines: what a test checks after a restart, or shows when it
        fails."""
        return _tail(self.log_file, lines)

    def _pg_ctl(self, *arguments: str | Path) -> None:
        _run([self.binaries.pg_ctl, "-D", self.data_dir, *arguments], self.root, self.log_file)


def _terminate(admin: psycopg.Connection[tuple[Any, ...]], pid: int) -> bool:
    """pg_terminate_backend, waiting up to 5 s until that backend has exited."""
    done = admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone()
    return bool(done and done[0])


def _tail(log_file: Path, lines: int = 20) -> str:
    """A log's last lines (empty when there is none yet)."""
    try:
        return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def _run(command: Sequence[str | Path], cwd: Path, log_file: Path | None = None) -> None:
    """Run a server command (as the server user when we are root) in ``cwd``, which that user
    can enter; on failure raise with its output and the server log's tail."""
    done = subprocess.run(_as_server_user(command), cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        log = f"\nserver log ({log_file}), last lines:\n{_tail(log_file)}" if log_file else ""
        raise PostgresFailed(
            f"{shlex.join(map(str, command))} exited with {done.returncode}:\n"
            f"{done.stdout}{done.stderr}{log}"
        )


def _initdb(binaries: Binaries, root: Path, password: str) -> Path:
    """A new cluster in ``root/data``: superuser ``postgres`` with ``password`` (from a file
    only the server user reads, removed afterwards), scram-sha-256 over TCP, trust on the
    unix socket, UTF-8 with the C locale (the same ordering on every machine)."""
    pwfile = root / "password"
    pwfile.write_text(password + "\n")
    pwfile.chmod(0o600)
    _give_to_server_user(pwfile)
    data_dir = root / "data"
    try:
        _run(
            [
                binaries.initdb,
                "-D",
                data_dir,
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            ],
            root,
        )
    finally:
        pwfile.unlink()
    return data_dir


def _configure(data_dir: Path, socket_dir: Path) -> None:
    """Settings every start reads (the port is given at each start): loopback only, the unix
    socket in our folder, durable commits, a short log of warnings and worse."""
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "unix_socket_directories": f"'{socket_dir}'",
        "fsync": "on",
        "synchronous_commit": "on",
        "full_page_writes": "on",
        "log_min_messages": "warning",
    }
    with (data_dir / "postgresql.conf").open("a") as conf:
        conf.write("\n# tests/postgres.py\n")
        conf.writelines(f"{name} = {value}\n" for name, value in settings.items())


def start_server(binaries: Binaries | None = None) -> PostgresServer:
    """A new cluster in a fresh temporary folder, started on a free port with a random
    password; the folder is removed again if that fails."""
    binaries = binaries or find_binaries()
    _remove_leftovers(binaries)
    root = Path(tempfile.mkdtemp(prefix=PREFIX, dir=servers_folder()))
    (root / OWNER_FILE).write_text(str(os.getpid()))
    _give_to_server_user(root)
    server = PostgresServer(binaries, root, port=0, password=secrets.token_urlsafe(24))
    try:
        _configure(_initdb(binaries, root, server.password), socket_dir=root)
        _start_on_free_port(server)
    except BaseException:
        remove_server(server)
        raise
    return server


def _start_on_free_port(server: PostgresServer, attempts: int = 3) -> None:
    """Start on a free port; if another process took it between our pick and the server's
    bind, start on another one."""
    for attempt in range(1, attempts + 1):
        server.port = free_port()
        try:
            server.start()
            return
        except PostgresFailed as failed:
            if attempt == attempts or "could not bind" not in str(failed):
                raise


def remove_server(server: PostgresServer) -> None:
    """Stop the server if it runs (fast: open transactions are rolled back; immediate if that
    fails) and remove its folder, whatever state the tests left it in."""
    if (server.data_dir / "postmaster.pid").exists():
        try:
            server.stop("fast")
        except PostgresFailed:
            with suppress(PostgresFailed):
                server.stop("immediate")
    shutil.rmtree(server.root, ignore_errors=True)


@contextmanager
def running_server(binaries: Binaries | None = None) -> Iterator[PostgresServer]:
    """A throwaway server for the ``with`` block, stopped and removed afterwards even when the
    block raises."""
    server = start_server(binaries)
    try:
        yield server
    finally:
        remove_server(server)


def _remove_leftovers(binaries: Binaries) -> None:
    """Stop and remove the servers of test sessions that were killed before their teardown
    (their folder names a process that is gone); those of live sessions are left alone."""
    for root in servers_folder().glob(f"{PREFIX}*"):
        try:
            owner = int((root / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # a session still setting up, or not ours
        if _alive(owner):
            continue
        if _postmaster_of(root / "data") is not None:
            with suppress(PostgresFailed):
                _run([binaries.pg_ctl, "-D", root / "data", "stop", "-m", "immediate"], root)
        shutil.rmtree(root, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _postmaster_of(data_dir: Path) -> int | None:
    """The pid in postmaster.pid when that process is a postgres serving ``data_dir`` (a pid
    left by a crash may since belong to another process, which must not get a signal)."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, IndexError):
        return None
    return pid if os.fsencode(data_dir) in command else None
