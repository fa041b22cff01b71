"""The thin command line: its defaults are the library's, and a bad value is the library's
one line with exit 2."""

from __future__ import annotations

import argparse

import pytest

from pipeline.apply.run import ApplySettings
from pipeline.cli import main
from pipeline.cli.parser import build_parser
from pipeline.commands import apply_files, export_report, options, plan_files
from pipeline.common.errors import UsageError
from pipeline.common.rates import parse_rate
from tests.paths import ROOT

SAMPLE = ROOT / "inputs" / "reservations-sample.csv"
RATE_HINT = "(write e.g. 10/60s, or off)"


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", ["plan", "apply", "status", "report", "sandbox"])
def test_every_option_says_its_default_in_help(command):
    """Each option of each command (but --help) says in --help what happens when it's left out."""
    for action in subcommands()[command]._actions:
        if action.option_strings and action.option_strings[0] != "-h":
            assert "(default: " in (action.help or ""), action.option_strings


def test_help_shows_the_library_defaults(capsys):
    """apply --help shows the defaults of ApplySettings, in the units of the command line."""
    with pytest.raises(SystemExit):
        main(["apply", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    defaults = ApplySettings()
    assert "(default: 10/60s)" in shown
    for value in (
        defaults.concurrency,
        defaults.policy.give_up_after,
        defaults.policy.settle_after,
        defaults.request_timeout,
    ):
        assert f"(default: {value})" in shown


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_help_names_every_kind_of_reservation_file(command, capsys):
    """plan and apply --help say the files they read are CSV, Parquet or workbooks."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert (
        "reservations reservation files: CSV (.csv, .tsv, .txt), Parquet or workbooks (.xlsx,"
        " .xls, .ods)"
    ) in shown


def test_the_cli_defaults_build_the_library_defaults():
    """apply with no options runs with exactly ``ApplySettings()``; status flags after an hour."""
    args = build_parser().parse_args(["apply", "x.csv"])
    given = options.ApplyOptions(
        door_rate=args.door_rate,
        global_rate=args.global_rate,
        concurrency=args.concurrency,
        give_up_after=args.give_up_after,
        settle_after=args.settle_after,
        request_timeout=args.request_timeout,
    )
    assert given == options.ApplyOptions()
    assert given.settings() == ApplySettings()
    assert build_parser().parse_args(["status"]).attention_after == 60.0


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["apply", "x.csv", "--concurrency", "0"], "--concurrency must be at least 1"),
        (["apply", "x.csv", "--global-rate", "0"], "--global-rate must be positive"),
        (
            ["apply", "x.csv", "--settle-after", "-1"],
            "--settle-after must be 0 or more seconds (a finite number, not nan)",
        ),
        (
            ["apply", "x.csv", "--settle-after", "nan"],
            "--settle-after must be 0 or more seconds (a finite number, not nan)",
        ),
        (["apply", "x.csv", "--global-rate", "nan"], "--global-rate must be positive"),
        (["apply", "x.csv", "--global-rate", "inf"], "--global-rate must be positive"),
        (
            ["apply", "x.csv", "--give-up-after", "-1"],
            "--give-up-after must be a positive number of seconds (a finite number, not nan)",
        ),
        (
            ["apply", "x.csv", "--wait-for-lock", "inf"],
            "--wait-for-lock must be 0 or more seconds (a finite number, not nan)",
        ),
        (
            ["status", "--attention-after", "nan"],
            "--attention-after must be 0 or more minutes (a finite number, not nan)",
        ),
        (
            ["status", "--attention-after", "1e300"],
            "--attention-after must be 0 or more minutes (a finite number, not nan)",
        ),
        (
            ["apply", "x.csv", "--door-rate", "0/60s"],
            f"rate '0/60s' is not COUNT/SECONDS {RATE_HINT}",
        ),
        (
            ["apply", "x.csv", "--request-timeout", "0"],
            "--request-timeout must be a positive number of seconds",
        ),
        (
            ["status", "--request-timeout", "inf"],
            "--request-timeout must be a positive number of seconds",
        ),
        (["report", "--runs", "0"], "--runs must be at least 1"),
        (["sandbox", "--door-rate", "fast"], f"rate 'fast' is not COUNT/SECONDS {RATE_HINT}"),
        (["sandbox", "--late", "2"], "late must be a share between 0 and 1"),
        (
            ["plan", str(SAMPLE), "--codes", "codes.json"],
            "--codes goes with --devices (without --devices Seam is asked)",
        ),
    ],
)
def test_a_bad_value_is_exit_2_with_the_library_line_and_nothing_made(
    argv, line, tmp_path, monkeypatch, capsys
):
    """A value the library refuses: exit 2, its one line on stderr, no file or folder made."""
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {line}"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", ["10/60s", "10/60", " 5 / 2.5S ", "off", "OFF", "unknown"])
def test_apply_and_the_sandbox_read_one_door_rate_syntax(text):
    """The text apply reads as a rate is the one the sandbox serves with."""
    apply = options.ApplyOptions(door_rate=text).settings().door_rate
    sandbox = parse_rate(options.SandboxOptions(door_rate=text).door_rate)
    assert (None if apply is None else (apply.count, apply.period)) == sandbox


@pytest.mark.anyio
async def test_the_checks_are_the_library_s(tmp_path):
    """Called directly, the command functions refuse what the CLI would (UsageError, exit 2)."""
    with pytest.raises(UsageError, match="--concurrency must be at least 1"):
        await apply_files([SAMPLE], settings=ApplySettings(concurrency=0))
    with pytest.raises(UsageError, match="--codes goes with --devices"):
        await plan_files([SAMPLE], codes=tmp_path / "codes.json")
    with pytest.raises(UsageError, match="--format xml is not one of"):
        await export_report(ledger_path=tmp_path / "ledger.sqlite", fmt="xml")
    with pytest.raises(UsageError, match="--out needs --format"):
        await export_report(ledger_path=tmp_path / "ledger.sqlite", out=tmp_path / "r.json")
    assert list(tmp_path.iterdir()) == []
