"""The systemd units and the tmpfiles.d entry in deploy/, and the crontab line of the nightly
job's page: systemd itself accepts the units, they hold what the guide promises, and cron runs
the same command as the timer, at the same time."""

from __future__ import annotations

import configparser
import itertools
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.cli.parser import build_parser
from pipeline.webhooks.guard import MAX_CONNECTIONS
from tests.docs.commands import fenced_blocks, pages
from tests.paths import ROOT

DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").iterdir())
NIGHTLY, TIMER, WEBHOOKS = (
    DEPLOY / "systemd" / name
    for name in ("oracode-nightly.service", "oracode-nightly.timer", "oracode-webhooks.service")
)
# `oracode-provision nightly INPUT... [--config FILE] [--ledger FILE|URL] [--out-dir DIR]
# [--keep-days N]`: the options the nightly command takes, each with a value.
NIGHTLY_OPTIONS = {"--config", "--ledger", "--out-dir", "--keep-days"}


def unit(path: Path) -> configparser.ConfigParser:
    """A unit file's sections and keys (a key given twice is an error here: ours don't)."""
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def exec_start(path: Path) -> list[str]:
    return shlex.split(unit(path)["Service"]["ExecStart"])


def environment(path: Path) -> dict[str, str]:
    return dict(w.split("=", 1) for w in shlex.split(unit(path)["Service"]["Environment"]))


def writable(path: Path) -> list[Path]:
    """The folders a service may write: its ReadWritePaths (without their ``-``)."""
    return [Path(p.lstrip("-")) for p in unit(path)["Service"]["ReadWritePaths"].split()]


def is_writable(service: Path, target: str) -> bool:
    return any(Path(target).is_relative_to(folder) for folder in writable(service))


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_the_units_are_the_ones_the_guide_installs():
    """deploy/systemd holds the nightly service, its timer and the receiver's service."""
    assert [p.name for p in UNITS] == [NIGHTLY.name, TIMER.name, WEBHOOKS.name]


def verified(folder: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` on copies of the units whose ExecStart runs a program that
    exists (verify refuses a missing executable)."""
    program = folder / "oracode-provision"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    for path in UNITS:
        text = path.read_text().replace(exec_start(NIGHTLY)[0], str(program))
        (folder / path.name).write_text(text)
    return subprocess.run(
        ["systemd-analyze", "verify", *(str(folder / p.name) for p in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_systemd_accepts_the_units(tmp_path):
    """``systemd-analyze verify`` finds nothing to say of the units (no unknown key, no value
    it can't read); without systemd-analyze, each unit's sections and keys parse."""
    if shutil.which("systemd-analyze"):
        done = verified(tmp_path)
        assert (done.returncode, done.stderr) == (0, "")
    else:
        for path in UNITS:
            assert unit(path).sections()


def test_the_nightly_service_runs_the_nightly_command_as_its_own_user():
    """A oneshot as a dedicated user, in its working folder, its key from an EnvironmentFile;
    ExecStart runs ``oracode-provision nightly`` on inputs with the documented options."""
    service = unit(NIGHTLY)["Service"]
    argv = exec_start(NIGHTLY)
    assert (service["Type"], service["User"]) == ("oneshot", "oracode")
    assert Path(service["WorkingDirectory"]).is_absolute()
    assert Path(service["EnvironmentFile"]).is_absolute()
    assert Path(argv[0]).name == "oracode-provision"
    assert argv[1] == "nightly"
    inputs = list(itertools.takewhile(lambda word: not word.startswith("--"), argv[2:]))
    assert inputs
    options = argv[2 + len(inputs) :]
    assert set(options[::2]) <= NIGHTLY_OPTIONS
    assert all(not value.startswith("--") for value in options[1::2])


def test_the_nightly_service_may_write_what_it_writes_and_nothing_else():
    """Hardened (no new privileges, a private /tmp, a read-only system), it may still write its
    ledger, its outputs and the default outputs/ of its working folder (crash files)."""
    service = unit(NIGHTLY)["Service"]
    argv = exec_start(NIGHTLY)
    assert service["NoNewPrivileges"] == service["PrivateTmp"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert is_writable(NIGHTLY, option(argv, "--ledger"))
    assert is_writable(NIGHTLY, option(argv, "--out-dir"))
    assert is_writable(NIGHTLY, f"{service['WorkingDirectory']}/outputs/crash.txt")


def test_the_nightly_service_locks_the_workspace_where_every_run_on_the_host_does():
    """Its private /tmp would hide a lock there from other runs: ORACODE_RUN_DIR names a folder
    outside it, writable by the service, that tmpfiles.d makes at boot shared and sticky."""
    run_dir = environment(NIGHTLY)["ORACODE_RUN_DIR"]
    (entry,) = [
        line.split()
        for line in (DEPLOY / "tmpfiles.d" / "oracode-provision.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not run_dir.startswith(("/tmp/", "/var/tmp/"))
    assert is_writable(NIGHTLY, f"{run_dir}/workspace-w.lock")
    assert entry[:3] == ["d", run_dir, "1777"]


def test_the_timer_starts_the_nightly_service_once_a_night():
    """The timer (named as the service, so it starts it) runs daily, catches up a night missed
    while the host was off, and is enabled with timers.target."""
    timer = unit(TIMER)
    assert TIMER.stem == NIGHTLY.stem
    assert re.fullmatch(r"\*-\*-\* \d\d:\d\d:00", timer["Timer"]["OnCalendar"])
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"


def test_the_webhook_service_restarts_and_keeps_its_secret_and_connections():
    """The receiver restarts on failure, counts SIGTERM's 143 as a clean stop, may open well
    over its connection cap, reads its secret from an EnvironmentFile, writes its ledger, and
    runs ``oracode-provision webhooks`` as the CLI parses it, on the loopback."""
    service = unit(WEBHOOKS)["Service"]
    argv = exec_start(WEBHOOKS)
    arguments = build_parser().parse_args(argv[1:])
    assert service["Restart"] == "on-failure"
    assert "143" in service["SuccessExitStatus"].split()
    assert int(service["LimitNOFILE"]) >= 10 * MAX_CONNECTIONS
    assert Path(service["EnvironmentFile"]).is_absolute()
    assert (arguments.command, arguments.host) == ("webhooks", "127.0.0.1")
    assert is_writable(WEBHOOKS, option(argv, "--ledger"))
    assert unit(WEBHOOKS)["Install"]["WantedBy"] == "multi-user.target"


# A crontab field: a list of *, N or N-M, each with an optional /STEP; months and weekdays may
# be named.
CRON_FIELDS = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day", 1, 31),
    ("month", 1, 12),
    ("weekday", 0, 7),
]
NAMES = {
    "month": ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
    "weekday": ["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
}


def cron_field_is_valid(field: str, name: str, low: int, high: int) -> bool:
    def value(text: str) -> int:
        if text.lower() in NAMES.get(name, []):
            return NAMES[name].index(text.lower()) + (1 if name == "month" else 0)
        return int(text)

    for item in field.split(","):
        span, _, step = item.partition("/")
        if step and not (step.isdigit() and int(step) > 0):
            return False
        if span == "*":
            continue
        try:
            ends = [value(end) for end in span.split("-", 1)]
        except ValueError:
            return False
        if not all(low <= end <= high for end in ends) or ends != sorted(ends):
            return False
    return True


def crontab_line() -> str:
    """The one crontab line of the guide: the block whose title is ``crontab``."""
    (block,) = [
        block
        for path in pages()
        for block in fenced_blocks(path.read_text(), str(path.relative_to(ROOT)))
        if block.title == "crontab"
    ]
    (line,) = [line for line in block.lines if line.strip() and not line.startswith("#")]
    return line


@pytest.mark.parametrize(
    ("field", "name", "valid"),
    [
        ("0", "minute", True),
        ("*/15", "minute", True),
        ("60", "minute", False),
        ("1-5", "weekday", True),
        ("mon-fri", "weekday", True),
        ("5-1", "weekday", False),
        ("3,15", "hour", True),
        ("*/0", "hour", False),
        ("x", "day", False),
    ],
)
def test_the_crontab_field_check(field, name, valid):
    """The field check takes cron's forms and refuses values out of range."""
    _, low, high = next(f for f in CRON_FIELDS if f[0] == name)
    assert cron_field_is_valid(field, name, low, high) is valid


def test_the_crontab_line_runs_the_timer_s_command_at_its_time():
    """The nightly job's crontab line is five valid fields and a command that sh can read,
    without cron's ``%``; it runs at the timer's time, in the service's folder, with its key
    file and ORACODE_RUN_DIR, exactly the service's ExecStart."""
    fields = crontab_line().split(maxsplit=5)
    command = fields.pop()
    assert all(
        cron_field_is_valid(field, *spec) for field, spec in zip(fields, CRON_FIELDS, strict=True)
    )
    assert "%" not in command
    assert subprocess.run(["sh", "-n", "-c", command], timeout=10).returncode == 0
    hour, minute = unit(TIMER)["Timer"]["OnCalendar"].split()[1].split(":")[:2]
    assert fields == [str(int(minute)), str(int(hour)), "*", "*", "*"]
    steps = [shlex.split(step) for step in command.split(" && ")]
    service = unit(NIGHTLY)["Service"]
    assert ["cd", service["WorkingDirectory"]] in steps
    assert [".", service["EnvironmentFile"]] in steps
    assert steps[-1] == [
        *(f"{k}={v}" for k, v in environment(NIGHTLY).items()),
        "exec",
        *exec_start(NIGHTLY),
    ]
