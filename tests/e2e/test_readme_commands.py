"""The README's commands work as written, with those it moved into the guide (the commands'
synopses and make targets, the sandbox's page): every ``oracode-provision`` line parses (a
synopsis names only options its command has), every make target they name exists, and the
quick start's commands against the sandbox run from a fresh checkout's layout."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline.cli.parser import build_parser
from tests.paths import ROOT

# The README, and the pages of the guide that hold what it held before it became a landing
# page: the commands' synopses and make targets, the sandbox's synopsis and its plan line.
PAGES = [
    ROOT / "README.md",
    ROOT / "docs/operators/commands.md",
    ROOT / "docs/developers/sandbox.md",
]
TEXT = "\n".join(page.read_text() for page in PAGES)
ASSIGNMENT = re.compile(r"^[A-Z_]+=\S*$")


def code_blocks() -> list[list[str]]:
    """The lines of the pages' shell and plain code blocks (not their TOML ones)."""
    blocks: list[list[str]] = []
    fence: str | None = None  # the opening fence of the block we are in
    for line in TEXT.splitlines():
        if line.startswith("```"):
            if fence is None:
                fence = line
                blocks.append([])
            else:
                if fence not in ("```", "```sh"):
                    blocks.pop()
                fence = None
        elif fence is not None:
            blocks[-1].append(line)
    return blocks


def code_lines() -> list[str]:
    """The lines of the pages' code blocks, a line indented under another joined to it, and
    comments dropped."""
    lines: list[str] = []
    for block in code_blocks():
        for raw in block:
            text = "" if raw.lstrip().startswith("#") else raw.split(" #", 1)[0].rstrip()
            if raw.startswith(" ") and lines and text:
                lines[-1] += " " + text.strip()
            elif text:
                lines.append(text)
    return lines


def commands(program: str) -> list[list[str]]:
    """The pages' command lines that run ``program``: its arguments, after any VAR=value."""
    found = []
    for line in code_lines():
        words = line.split()
        while words and ASSIGNMENT.match(words[0]):
            words.pop(0)
        if words and words[0] in (program, f".venv/bin/{program}"):
            found.append(words[1:])
    return found


def subcommand(name: str) -> argparse.ArgumentParser:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def test_the_readme_quotes_commands():
    """The extraction finds the synopses and the concrete command lines."""
    assert {words[0] for words in commands("oracode-provision")} >= {
        "plan",
        "apply",
        "status",
        "report",
        "sandbox",
    }
    assert {words[0] for words in commands("make")} >= {"demo", "plan", "apply", "sandbox"}


@pytest.mark.parametrize("words", commands("oracode-provision"), ids=" ".join)
def test_every_quoted_command_line_parses(words):
    """A concrete line parses as written; a synopsis ([...], PLACEHOLDERS) names only options
    its command has."""
    text = " ".join(words)
    if "[" in text or "..." in text:
        known = {o for a in subcommand(words[0])._actions for o in a.option_strings}
        named = set(re.findall(r"--[a-z][a-z-]*", text))
        assert named <= known, named - known
    else:
        build_parser().parse_args(words)


@pytest.mark.slow
@pytest.mark.parametrize(
    "target",
    sorted({*re.findall(r"`make ([a-z][a-z-]*)", TEXT)} | {w[0] for w in commands("make")}),
)
def test_every_make_target_named_exists(target):
    """``make -n TARGET`` knows every target the pages name."""
    done = subprocess.run(
        ["make", "-n", target, "INPUT=x.csv"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fresh_checkout(tmp_path: Path) -> Path:
    """A folder laid out as a checkout after ``make install`` (the files linked, not copied;
    ``pyproject.toml`` copied with the virtualenv's own install time, so that make never
    reinstalls into the checkout's ``.venv`` whatever the checkout's files' times)."""
    for name in ("Makefile", "inputs", ".venv"):
        (tmp_path / name).symlink_to(ROOT / name)
    shutil.copyfile(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    installed = (ROOT / ".venv" / ".installed").stat().st_mtime_ns
    os.utime(tmp_path / "pyproject.toml", ns=(installed, installed))
    (tmp_path / "outputs").mkdir()
    return tmp_path


def start_make_sandbox(checkout: Path, env: dict[str, str]) -> tuple[int, subprocess.Popen]:
    """``make sandbox PORT=...`` on a free port, once it answers; on another port when the
    one picked was taken before the sandbox could bind it (tests run side by side)."""
    for _ in range(3):
        port = free_port()
        sandbox = subprocess.Popen(
            ["make", "sandbox", f"PORT={port}"],
            cwd=checkout,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while sandbox.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sandbox/stats", timeout=1):
                    return port, sandbox
            except OSError:
                assert time.monotonic() < deadline, "the sandbox did not start within a minute"
                time.sleep(0.2)
        assert sandbox.stderr is not None
        error = sandbox.stderr.read().decode()
        assert "address already in use" in error.lower(), error
    raise AssertionError("three free ports were all taken before the sandbox bound them")


@pytest.mark.slow
def test_the_quick_start_runs_against_the_sandbox(tmp_path):
    """``make sandbox`` in the background, then the quick start's plan and apply lines as written
    (on a free port): the sample's rejected rows make each exit 1, which make reports."""
    checkout = fresh_checkout(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAM_")}
    port, sandbox = start_make_sandbox(checkout, env)
    try:
        lines = [
            line.replace("8787", str(port))
            for line in code_lines()
            if "SEAM_ENDPOINT=http://127.0.0.1:8787" in line
        ]
        assert len(lines) == 3
        for line in lines:
            words = shlex.split(line)
            settings = dict(w.split("=", 1) for w in words if ASSIGNMENT.match(w))
            command = [
                w for w in words if w.split("=", 1)[0] not in ("SEAM_API_KEY", "SEAM_ENDPOINT")
            ]
            done = subprocess.run(
                command,
                cwd=checkout,
                env={**env, **{k: v for k, v in settings.items() if k.startswith("SEAM_")}},
                capture_output=True,
                text=True,
                timeout=120,
            )
            endpoint_line = f"info: talking to http://127.0.0.1:{port} (not Seam's production"
            assert endpoint_line in done.stderr, done.stderr
            if command[0] == "make":
                assert done.returncode == 2
                assert "Error 1" in done.stderr
            else:
                assert done.returncode == 1, done.stderr
                # The sample's 26 rows, and 5 on the lobby its config's [doors.also] adds.
                assert "wrote 31 rows to outputs/plan-" in done.stdout
    finally:
        os.killpg(sandbox.pid, signal.SIGTERM)
        sandbox.wait(timeout=10)
