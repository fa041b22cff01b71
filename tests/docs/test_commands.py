"""Every command block of the README and of every page of the guide is run or checked as
written, or marked as needing real Seam (``tests/docs/commands.py`` says how each command is)."""

from __future__ import annotations

import os
import subprocess
import urllib.request
from collections.abc import Iterator

import pytest

from pipeline.sandbox.server import build_sandbox, serve_in_thread
from tests.docs.commands import (
    Block,
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
from tests.e2e.test_readme_commands import fresh_checkout
from tests.paths import ROOT, SANDBOX_DEVICES

BLOCKS = command_blocks()


def named(commands: list[Command]) -> list[object]:
    return [pytest.param(c, id=f"{c.where} {c.line[:70]}") for c in commands]


def test_the_readme_and_every_page_are_read():
    """The README and each page under docs/ are read, and every kind of check has commands
    to check there (so that none of the tests below runs on nothing)."""
    read = {str(path.relative_to(ROOT)) for path in pages()}
    on_disk = {str(path.relative_to(ROOT)) for path in (ROOT / "docs").rglob("*.md")}
    assert read == {"README.md", *on_disk}
    assert {"README.md", "docs/operators/nightly-job.md"} <= {block.page for block in BLOCKS}
    assert all(all_commands(check) for check in Check)
    assert [c for c in all_commands(Check.MAKE) if c.runs_against_the_sandbox]


def test_every_command_block_is_run_checked_or_marked():
    """No command block holds a command that is neither run nor checked, unless its fence is
    marked as needing real Seam."""
    assert unchecked(BLOCKS) == []


def test_every_fence_of_the_guide_names_its_language():
    """A fence on a page of the guide says its language (``sh``, ``text``, ``ini``...): a
    command block can't pass unseen as a block of no language."""
    bare = [
        block.where
        for path in pages()[1:]
        for block in fenced_blocks(path.read_text(), str(path.relative_to(ROOT)))
        if not block.language
    ]
    assert bare == []


@pytest.mark.parametrize("command", named(all_commands(Check.CLI)))
def test_every_oracode_provision_command_parses(command):
    """A concrete ``oracode-provision`` line parses as written; a synopsis names a command the
    CLI has and only its options."""
    assert cli_problem(command) is None


@pytest.mark.parametrize("command", named(all_commands(Check.ASSIGNMENT)))
def test_every_assignment_line_only_sets_variables(command):
    """An ``export`` line sets variables and runs nothing else."""
    assert assignment_problem(command) is None


@pytest.mark.parametrize("command", named(all_commands(Check.HOST)))
def test_every_host_set_up_names_units_and_files_that_exist(command):
    """``systemctl``, ``journalctl``, ``install``...: each unit named is in deploy/systemd,
    each relative path exists in the repository."""
    assert host_problems(command) == []


@pytest.mark.slow
@pytest.mark.parametrize("command", named(all_commands(Check.MAKE)))
def test_every_make_target_named_exists(command):
    """``make -n TARGET`` knows every target a ``make`` command names."""
    assert make_problem(command) is None


def postgres_blocks() -> list[object]:
    found = {c.block: None for c in all_commands(Check.POSTGRES)}
    return [pytest.param(block, id=block.where) for block in found]


@pytest.fixture
def own_postgres_server() -> Iterator[dict[str, str]]:
    """A server of this test's own (a block may create roles, which are the whole server's),
    as the environment libpq's programs read."""
    from tests.postgres import remove_server, start_server

    server = start_server()
    try:
        yield {
            "PGHOST": server.host,
            "PGPORT": str(server.port),
            "PGUSER": server.user,
            "PGPASSWORD": server.password,
        }
    finally:
        remove_server(server)


@pytest.mark.slow
@pytest.mark.parametrize("block", postgres_blocks())
def test_postgres_lines_run_as_written(block: Block, own_postgres_server, tmp_path):
    """A block's PostgreSQL lines (createdb, createuser, psql) run as written, in the block's
    order, against a fresh server: each ends with exit 0."""
    lines = list(dict.fromkeys(c.line for c in commands(block) if c.check is Check.POSTGRES))
    for line in lines:
        assert {c.check for c in commands(block) if c.line == line} == {Check.POSTGRES}, line
        done = subprocess.run(
            ["bash", "-c", line],
            cwd=tmp_path,
            env={**os.environ, **own_postgres_server},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{block.where}: {line}: {done.stderr}"


def sandbox_blocks() -> list[object]:
    found = {
        c.block: None
        for c in all_commands(Check.MAKE) + all_commands(Check.CLI)
        if c.runs_against_the_sandbox
    }
    return [pytest.param(block, id=block.where) for block in found]


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    """One sandbox on a free port for every block of the module (each block empties it)."""
    _, app = build_sandbox(SANDBOX_DEVICES)
    with serve_in_thread(app) as url:
        yield url


def empty(sandbox_url: str) -> None:
    """The sandbox as it starts: no codes, no rate windows, no events."""
    request = urllib.request.Request(f"{sandbox_url}/_sandbox/reset", data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


@pytest.mark.slow
@pytest.mark.parametrize("block", sandbox_blocks())
def test_every_block_against_the_sandbox_runs(block: Block, sandbox_url: str, tmp_path):
    """A block's lines that set ``SEAM_ENDPOINT=http://127.0.0.1:8787`` run as written (the
    port the sandbox's), in the block's order, from one checkout's layout, against the
    sandbox emptied first: each says it talks to the sandbox and ends as a finished run does
    (exit 0 or 1; under make, 0 or make's 2 for the command's 1)."""
    empty(sandbox_url)
    checkout = fresh_checkout(tmp_path)
    runnable = (Check.MAKE, Check.CLI)
    found = [c for c in commands(block) if c.runs_against_the_sandbox and c.check in runnable]
    programs = {c.line: c.program for c in found}
    assert programs
    for line, program in programs.items():
        done = subprocess.run(
            ["bash", "-c", line.replace("http://127.0.0.1:8787", sandbox_url)],
            cwd=checkout,
            capture_output=True,
            text=True,
            timeout=120,
        )
        said = f"info: talking to {sandbox_url} (not Seam's production"
        assert said in done.stderr, f"{block.where}: {line}: {done.stderr}"
        if program == "make":
            assert done.returncode == 0 or (done.returncode == 2 and "Error 1" in done.stderr)
        else:
            assert done.returncode in (0, 1), f"{block.where}: {line}: {done.stderr}"
