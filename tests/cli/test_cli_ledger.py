"""Where the commands keep their ledger: --ledger takes a path or a postgresql:// URL, its
default is ORACODE_LEDGER, else outputs/ledger.sqlite; and no output of any command ever shows
the URL's password."""

from __future__ import annotations

import argparse
import json
import os
import stat
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest

from pipeline.cli import main
from pipeline.cli.parser import build_parser
from pipeline.commands.options import DEFAULT_LEDGER
from pipeline.ledger.location import PostgresLedger
from tests.paths import ROOT
from tests.postgres import free_port
from tests.webhooks.helpers import SECRET as WEBHOOK_SECRET

SAMPLE = ROOT / "inputs" / "reservations-sample.csv"
PASSWORD = "pg-s3cr3t-word"
# Each command that keeps or reads a ledger, with what it needs before it gets to it.
LEDGER_COMMANDS = {
    "apply": [str(SAMPLE), "--log-format", "json"],
    "status": ["--log-format", "json"],
    "report": [],
    "pins": [],
    "nightly-summary": [],
    "nightly": [str(SAMPLE)],
    "webhooks": ["--port", "0", "--log-format", "json"],
}


def commands_with_a_ledger() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(
        name
        for name, command in action.choices.items()
        if any("--ledger" in a.option_strings for a in command._actions)
    )


@pytest.fixture
def command_env(monkeypatch, tmp_path):
    """A fresh working folder and the keys the commands check before the ledger."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEAM_API_KEY", "seam_test_key")
    monkeypatch.setenv("SEAM_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("SEAM_WEBHOOK_SECRET", WEBHOOK_SECRET)
    return tmp_path


def files_holding(folder: Path, text: str) -> list[Path]:
    return [
        path
        for path in folder.rglob("*")
        if path.is_file() and not path.is_symlink() and text.encode() in path.read_bytes()
    ]


def test_every_command_with_a_ledger_is_covered_here():
    """The commands below are every command that has --ledger."""
    assert commands_with_a_ledger() == sorted(LEDGER_COMMANDS)


@pytest.mark.parametrize("command", sorted(LEDGER_COMMANDS))
def test_ledger_takes_a_path_or_a_url(command):
    """--ledger FILE is a path, --ledger postgresql://... a PostgreSQL ledger; without it,
    the library's default (None here, resolved by the CLI)."""
    needs = LEDGER_COMMANDS[command]
    parse = build_parser().parse_args
    url = f"postgresql://app:{PASSWORD}@db:5432/ledger"
    assert parse([command, *needs, "--ledger", "x/ledger.sqlite"]).ledger == Path("x/ledger.sqlite")
    assert parse([command, *needs, "--ledger", url]).ledger == PostgresLedger(url)
    assert parse([command, *needs]).ledger is None


@pytest.mark.parametrize("command", sorted(LEDGER_COMMANDS))
def test_help_says_the_default_with_the_password_masked(command, monkeypatch, capsys):
    """--help names ORACODE_LEDGER and outputs/ledger.sqlite; the variable's URL is shown
    masked (and a % in it doesn't trouble argparse)."""
    monkeypatch.setenv("ORACODE_LEDGER", f"postgresql://app:{PASSWORD}%21@db/ledger")
    with pytest.raises(SystemExit):
        main([command, "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert (
        "(default: $ORACODE_LEDGER when set, now postgresql://app:***@db/ledger; else"
        f" {DEFAULT_LEDGER})"
    ) in shown
    assert PASSWORD not in shown


@pytest.mark.parametrize("command", sorted(LEDGER_COMMANDS))
@pytest.mark.parametrize("given", ["--ledger", "ORACODE_LEDGER"])
def test_a_server_out_of_reach_is_exit_3_in_one_line_that_never_shows_the_password(
    command, given, command_env, monkeypatch, capsys
):
    """A URL with a password on a closed port, as --ledger or ORACODE_LEDGER: exit 3 and one
    line naming the masked URL; the password is in no output, log line or file written."""
    port = free_port()
    url = f"postgresql://app:{PASSWORD}@127.0.0.1:{port}/ledger"
    argv = [command, *LEDGER_COMMANDS[command]]
    if given == "--ledger":
        argv += ["--ledger", url]
    else:
        monkeypatch.setenv("ORACODE_LEDGER", url)
    assert main(argv) == 3
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if not line.startswith(("{", "info:"))]
    assert lines == [
        f"error: ledger postgresql://app:***@127.0.0.1:{port}/ledger can't be reached:"
        f' connection to server at "127.0.0.1", port {port} failed: Connection refused Is the'
        " server running on that host and accepting TCP/IP connections? (check that the"
        " PostgreSQL server is up and reachable from here, then rerun)"
    ]
    for line in err.splitlines():
        if line.startswith("{"):
            json.loads(line)  # log lines stay JSON
    assert PASSWORD not in out + err
    assert files_holding(command_env, PASSWORD) == []


def test_the_ledger_option_wins_over_oracode_ledger(command_env, monkeypatch, capsys):
    """--ledger given: ORACODE_LEDGER is not looked at (here it isn't even usable)."""
    monkeypatch.setenv("ORACODE_LEDGER", "postgresql://app:pw@db:port/ledger")
    assert main(["report", "--ledger", "missing.sqlite"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: ledger missing.sqlite does not exist"
        " (check --ledger, else ORACODE_LEDGER; apply creates the ledger)"
    ]


def test_oracode_ledger_holding_a_file_is_that_file(command_env, monkeypatch, capsys):
    """ORACODE_LEDGER may name a SQLite file too."""
    monkeypatch.setenv("ORACODE_LEDGER", "elsewhere/ledger.sqlite")
    assert main(["pins"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: ledger elsewhere/ledger.sqlite does not exist"
        " (check --ledger, else ORACODE_LEDGER; apply creates the ledger)"
    ]


@pytest.mark.parametrize(
    ("given", "line"),
    [
        (
            "ORACODE_LEDGER",
            "error: ORACODE_LEDGER postgresql://app:*** is not a usable"
            " PostgreSQL URL: its host or port can't be read (a password with / ? # or @ must be"
            " percent-encoded, or given in PGPASSWORD)"
            " (write it as postgresql://USER@HOST:PORT/DATABASE)",
        ),
        (
            "--ledger",
            "error: --ledger postgresql://app:*** is not a usable"
            " PostgreSQL URL: its host or port can't be read (a password with / ? # or @ must be"
            " percent-encoded, or given in PGPASSWORD)"
            " (write it as postgresql://USER@HOST:PORT/DATABASE)",
        ),
    ],
)
def test_a_url_that_cannot_be_used_is_exit_2_naming_where_it_came_from(
    given, line, command_env, monkeypatch, capsys
):
    """A malformed URL is one line (exit 2) naming --ledger or ORACODE_LEDGER, never a
    traceback, never the password; nothing is written."""
    url = f"postgresql://app:{PASSWORD}@db:port/ledger"
    argv = ["report"]
    if given == "--ledger":
        argv += ["--ledger", url]
    else:
        monkeypatch.setenv("ORACODE_LEDGER", url)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.splitlines() == [line]
    assert PASSWORD not in out + err
    assert list(command_env.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(LEDGER_COMMANDS))
def test_a_wrong_password_is_exit_2_in_one_line(
    command, postgres_server, postgres_url, command_env, capsys
):
    """The server refuses the password: exit 2 and one line saying where the password comes
    from; neither password shown."""
    wrong = postgres_url.replace(quote(postgres_server.password, safe=""), PASSWORD)
    assert main([command, *LEDGER_COMMANDS[command], "--ledger", wrong]) == 2
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if not line.startswith(("{", "info:"))]
    assert len(lines) == 1
    assert lines[0].startswith(f"error: ledger {PostgresLedger(wrong)} can't be opened:")
    assert 'password authentication failed for user "postgres"' in lines[0]
    assert lines[0].endswith(
        "(check the URL in --ledger or ORACODE_LEDGER, and PGPASSWORD or ~/.pgpass)"
    )
    for secret in (PASSWORD, postgres_server.password):
        assert secret not in out + err
        assert files_holding(command_env, secret) == []


@pytest.mark.slow
# apply, and the nightly job's apply, create the ledger.
@pytest.mark.parametrize("command", sorted(set(LEDGER_COMMANDS) - {"apply", "nightly"}))
def test_a_database_without_a_ledger_is_exit_2(command, postgres_url, command_env, capsys):
    """The commands that read what runs did refuse a database that holds no ledger yet, as
    they refuse a missing file."""
    assert main([command, *LEDGER_COMMANDS[command], "--ledger", postgres_url]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: ledger {PostgresLedger(postgres_url)} does not exist: its database has no"
        " ledger tables (check --ledger, else ORACODE_LEDGER; apply creates the ledger)"
    )


@pytest.fixture
def stand_in_checkout(tmp_path):
    """A checkout whose oracode-provision only notes its ORACODE_LEDGER and arguments."""
    for name in ("Makefile", "pyproject.toml"):
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / "outputs").mkdir()
    program = tmp_path / ".venv" / "bin" / "oracode-provision"
    program.parent.mkdir(parents=True)
    program.write_text(
        '#!/bin/sh\nprintf \'%s|%s\\n\' "${ORACODE_LEDGER-<unset>}" "$*" >> calls.txt\n'
    )
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    (tmp_path / ".venv" / ".installed").touch()
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "commands"),
    [
        ("apply", ["apply x.csv"]),
        ("status", ["status"]),
        ("report", ["report --format table"]),
        ("pins", ["pins"]),
        ("webhooks", ["webhooks --port 8788"]),
        ("nightly", ["nightly x.csv"]),
    ],
)
def test_make_hands_ledger_to_the_command_untouched(target, commands, stand_in_checkout):
    """make TARGET LEDGER=<a URL with $, &, ? and a quote>: the command gets exactly that
    (through ORACODE_LEDGER), and make's echo of the recipe never shows it; without LEDGER
    the command's own default holds."""
    url = "postgresql://app:pa$s'w&rd@db:5432/ledger?sslmode=disable&connect_timeout=5"
    env = {k: v for k, v in os.environ.items() if k not in ("ORACODE_LEDGER", "LEDGER")}
    for ledger in ([f"LEDGER={url}"], []):
        (stand_in_checkout / "calls.txt").unlink(missing_ok=True)
        done = subprocess.run(
            ["make", target, "INPUT=x.csv", *ledger],
            cwd=stand_in_checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        calls = (stand_in_checkout / "calls.txt").read_text().splitlines()
        assert [call.split("|")[1].split(" --")[0] for call in calls] == [
            command.split(" --")[0] for command in commands
        ]
        assert {call.split("|")[0] for call in calls} == {url if ledger else "<unset>"}
        assert all("--ledger" not in call for call in calls)
        assert "pa$s" not in done.stdout + done.stderr
