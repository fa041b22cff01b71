"""The command-block checker itself, on pages written for the test: what it finds, what it
lets pass, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.commands import (
    Check,
    Command,
    all_commands,
    assignment_problem,
    cli_problem,
    command_blocks,
    commands,
    fenced_blocks,
    host_problems,
    make_problem,
    pages,
    unchecked,
)

CURL = "curl -H 'Authorization: Bearer x' https://connect.getseam.com/devices/list"


def site(tmp_path: Path, page: str) -> Path:
    """A repository's layout with an empty README and ``page`` as a new page of the guide,
    in a folder of its own."""
    (tmp_path / "README.md").write_text("# A tool\n")
    (tmp_path / "docs" / "operators").mkdir(parents=True)
    (tmp_path / "docs" / "operators" / "new.md").write_text(page)
    return tmp_path


def only_command(page: str) -> Command:
    """The one command of a page's one block."""
    (block,) = fenced_blocks(page, "docs/operators/new.md")
    (found,) = commands(block)
    return found


def test_a_new_page_s_unchecked_command_fails_the_check(tmp_path):
    """A page added under docs/ is read without being listed anywhere, and a command in it
    that is neither run nor checked (curl) is named with its page and line."""
    root = site(tmp_path, f"# New\n\nText.\n\n```sh\noracode-provision plan x.csv\n{CURL}\n```\n")
    assert pages(root) == [root / "README.md", root / "docs" / "operators" / "new.md"]
    assert unchecked(command_blocks(root)) == [f"docs/operators/new.md:7: curl: {CURL}"]


def test_a_block_marked_as_needing_real_seam_passes(tmp_path):
    """The same block with the title ``Needs real Seam...`` on its fence passes; its
    ``oracode-provision`` command is still checked."""
    bogus = "oracode-provision plan x.csv --bogus"
    page = f'```sh title="Needs real Seam: your key"\n{bogus}\n{CURL}\n```\n'
    root = site(tmp_path, page)
    assert unchecked(command_blocks(root)) == []
    (cli,) = all_commands(Check.CLI, root)
    assert cli_problem(cli) == "oracode-provision: error: unrecognized arguments: --bogus"


def test_a_title_that_is_not_the_marker_does_not_pass(tmp_path):
    """Only a title that starts with ``Needs real Seam`` marks a block."""
    root = site(tmp_path, f'```sh title="needs Seam"\n{CURL}\n```\n')
    assert unchecked(command_blocks(root)) == [f"docs/operators/new.md:2: curl: {CURL}"]


def test_blocks_in_admonitions_and_tabs_are_checked(tmp_path):
    """A fence indented under an admonition or a content tab is a block too."""
    page = (
        f'!!! tip "Try"\n    ```bash\n    {CURL}\n    ```\n\n'
        '=== "A"\n\n    ~~~sh\n    wget x\n    ~~~\n'
    )
    problems = unchecked(command_blocks(site(tmp_path, page)))
    assert problems == [
        f"docs/operators/new.md:3: curl: {CURL}",
        "docs/operators/new.md:9: wget: wget x",
    ]


def test_a_console_block_s_commands_are_its_dollar_lines(tmp_path):
    """In a ``console`` block only what follows ``$ `` is a command (with its ``\\``
    continuation); the output lines are not."""
    page = "```console\n$ oracode-provision plan x.csv \\\n    --out p.csv\nwrote 3 rows\n```\n"
    command = only_command(page)
    assert command.program == "oracode-provision"
    assert command.words == ("plan", "x.csv", "--out", "p.csv")
    assert cli_problem(command) is None


def test_each_command_of_a_line_is_checked(tmp_path):
    """A line's commands are split at ``&&``, ``||``, ``;`` and ``|``: a known first one
    doesn't let an unknown second pass."""
    root = site(tmp_path, "```sh\ncreatedb x && curl -s y | jq .\n```\n")
    assert unchecked(command_blocks(root)) == [
        "docs/operators/new.md:2: curl: createdb x && curl -s y | jq .",
        "docs/operators/new.md:2: jq: createdb x && curl -s y | jq .",
    ]


def test_a_value_made_by_a_command_is_an_assignment():
    """``export X=$(head ... | base64)`` only sets a variable: the command making its value
    is part of the value."""
    command = only_command("```sh\nexport SECRET=whsec_$(head -c 24 /dev/urandom | base64)\n```\n")
    assert command.check is Check.ASSIGNMENT
    assert assignment_problem(command) is None


def test_a_line_the_shell_can_t_read_fails(tmp_path):
    """A line with an open quote is said as such."""
    root = site(tmp_path, "```sh\nexport X='open\n```\n")
    assert unchecked(command_blocks(root)) == [
        "docs/operators/new.md:1: can't be read as shell lines: No closing quotation"
    ]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (
            "oracode-provision apply x.csv --ledger",
            "oracode-provision apply: error: argument --ledger: expected one argument",
        ),
        ("oracode-provision apply FILE... [--no-such N]", "unknown options ['--no-such']"),
        ("oracode-provision nosuch [--out FILE]", "no command 'nosuch'"),
        ("python -m pipeline report --format table", None),
        ("oracode-provision report [--format table|csv|parquet|json] [--out PATH]", None),
    ],
)
def test_oracode_provision_lines_are_parsed(line, problem):
    """A concrete line is parsed as written; a synopsis may name only the options its
    command has."""
    command = only_command(f"```sh\n{line}\n```\n")
    assert cli_problem(command) == problem


def test_host_set_up_names_units_and_files_that_exist():
    """A unit that isn't in deploy/systemd, or a repository path that doesn't exist, is said."""
    enable = only_command("```sh\nsudo systemctl enable --now oracode-nightly-typo.timer\n```\n")
    install = only_command(
        "```sh\ninstall -m 0644 deploy/systemd/gone.service /etc/systemd/\n```\n"
    )
    good = only_command("```sh\njournalctl -u oracode-webhooks\n```\n")
    assert host_problems(enable) == ["no unit oracode-nightly-typo.timer in deploy/systemd"]
    assert host_problems(install) == ["no deploy/systemd/gone.service in the repository"]
    assert host_problems(good) == []


@pytest.mark.slow
def test_a_make_target_that_does_not_exist_is_said():
    """``make`` names a target the Makefile lacks: make's own line says so."""
    command = only_command("```sh\nmake no-such-target INPUT=x.csv\n```\n")
    assert "No rule to make target 'no-such-target'" in (make_problem(command) or "")
