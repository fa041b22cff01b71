"""The command blocks of the README and the guide (``docs/**/*.md``), and how each of their
commands is run or checked by ``tests/docs/test_commands.py``.

A command block is a fenced block in ``sh``, ``bash``, ``shell`` or ``console`` (in ``console``
only the lines after ``$ `` are commands). Each command in it is a *simple command* (a line is
split at ``&&``, ``||``, ``;`` and ``|``), and each must have a check, chosen by its program:

- ``oracode-provision`` (any path to it, or ``python -m pipeline``): parsed by the CLI's own
  parser; a synopsis (a line with ``[`` or ``...``) names only options its command has;
- ``make``: the target exists;
- a line that only sets variables (``export NAME=value``): nothing runs, nothing to check;
- host set-up (``systemctl``, ``journalctl``, ``install``, ``useradd``, ``systemd-tmpfiles``):
  every unit it names is one of ``deploy/systemd``'s, every relative path exists in the
  repository;
- PostgreSQL's client programs (``createdb``, ``createuser``, ``psql``): run, in the block's
  order, against a throwaway PostgreSQL server;
- and a command that sets ``SEAM_ENDPOINT=http://127.0.0.1:8787`` itself is also run as written
  against a sandbox on a free port, from a checkout's layout.

A block whose program has no check (``curl``, a real Seam account's steps) must be marked as
needing real Seam: its fence carries the title ``Needs real Seam`` (```` ```sh title="Needs
real Seam: ..." ````, which the guide shows above the block). The commands of a marked block
that have a check are still checked; the others are left alone.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from pipeline.cli.parser import build_parser
from tests.paths import ROOT

NEEDS_REAL_SEAM = "Needs real Seam"
COMMAND_LANGUAGES = frozenset({"sh", "bash", "shell", "console"})
SANDBOX_ENDPOINT = "SEAM_ENDPOINT=http://127.0.0.1:8787"
UNITS = ROOT / "deploy" / "systemd"

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
ATTRIBUTE = re.compile(r'(?P<key>[A-Za-z_][\w-]*)="(?P<value>[^"]*)"')
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
OPERATORS = frozenset({"&&", "||", ";", "|", "&"})


class Check(Enum):
    """How a command is run or checked (the module's docstring says what each does)."""

    CLI = "parsed by the CLI"
    MAKE = "make target exists"
    ASSIGNMENT = "only sets variables"
    HOST = "units and repository paths exist"
    POSTGRES = "run against a throwaway PostgreSQL server"


PROGRAMS = {
    "oracode-provision": Check.CLI,
    "make": Check.MAKE,
    "export": Check.ASSIGNMENT,
    "systemctl": Check.HOST,
    "journalctl": Check.HOST,
    "install": Check.HOST,
    "useradd": Check.HOST,
    "systemd-tmpfiles": Check.HOST,
    "createdb": Check.POSTGRES,
    "createuser": Check.POSTGRES,
    "psql": Check.POSTGRES,
}


@dataclass(frozen=True)
class Block:
    """One fenced block of a page: where it opens, its language and title, its lines."""

    page: str
    line: int
    language: str
    title: str
    lines: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def needs_real_seam(self) -> bool:
        return self.title.startswith(NEEDS_REAL_SEAM)

    @property
    def is_commands(self) -> bool:
        return self.language in COMMAND_LANGUAGES


@dataclass(frozen=True)
class Command:
    """One simple command of a block, as written, with its program's words."""

    block: Block
    number: int  # the line on its page
    line: str
    words: tuple[str, ...]  # the program's arguments, without assignments, sudo or its path
    program: str
    is_synopsis: bool

    @property
    def check(self) -> Check | None:
        return PROGRAMS.get(self.program)

    @property
    def runs_against_the_sandbox(self) -> bool:
        return SANDBOX_ENDPOINT in self.line and not self.block.needs_real_seam

    @property
    def where(self) -> str:
        return f"{self.block.page}:{self.number}"


def pages(root: Path = ROOT) -> list[Path]:
    """The README and every page of the guide: a page added under docs/ is found here."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def fenced_blocks(text: str, page: str) -> list[Block]:
    """Every fenced block of a Markdown text (``` or ~~~, at any indentation, as in
    admonitions and content tabs), its lines relative to the fence's indentation."""
    blocks: list[Block] = []
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        opening = FENCE.match(lines[number])
        number += 1
        if opening is None:
            continue
        indent, fence, info = opening["indent"], opening["fence"], opening["info"].strip()
        start, body = number, []
        while number < len(lines):
            line = lines[number]
            number += 1
            stripped = line.strip()
            if stripped.startswith(fence) and not stripped.strip(fence[0]):
                break
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
        language = info.split(maxsplit=1)[0].lstrip("{.").rstrip("}") if info else ""
        title = next((m["value"] for m in ATTRIBUTE.finditer(info) if m["key"] == "title"), "")
        blocks.append(Block(page, start, language, title, tuple(body)))
    return blocks


def command_blocks(root: Path = ROOT) -> list[Block]:
    """The command blocks of every page."""
    return [
        block
        for path in pages(root)
        for block in fenced_blocks(path.read_text(encoding="utf-8"), str(path.relative_to(root)))
        if block.is_commands
    ]


def logical_lines(block: Block) -> list[tuple[int, str]]:
    """The block's command lines, each with its line number on the page: ``\\`` and an
    indented line continue the line before (synopses wrap so), comment lines are dropped; in
    ``console`` only ``$ `` lines count."""
    found: list[tuple[int, str]] = []
    continued = False
    for number, raw in enumerate(block.lines, start=block.line + 1):
        if block.language == "console":
            if not continued and not raw.startswith("$ "):
                continue
            raw = raw.removeprefix("$ ")
        text = raw.strip()
        joins = continued or (raw[:1].isspace() and bool(found))
        continued = text.endswith("\\")
        text = text.removesuffix("\\").strip()
        if not text or text.startswith("#"):
            continue
        if joins:
            found[-1] = (found[-1][0], f"{found[-1][1]} {text}")
        else:
            found.append((number, text))
    return found


def commands(block: Block) -> Iterator[Command]:
    """The block's simple commands. A synopsis is one command (its ``|`` separates choices)."""
    for number, line in logical_lines(block):
        is_synopsis = "[" in line or "..." in line
        for words in _split(line, at_operators=not is_synopsis):
            program, arguments = _program(words)
            yield Command(block, number, line, tuple(arguments), program, is_synopsis)


def _split(line: str, *, at_operators: bool) -> Iterator[list[str]]:
    """The line's words, in simple commands; a ``$(...)`` or ``(...)`` stays in its word's
    command. Raises ValueError for a line the shell couldn't read (an open quote)."""
    if not at_operators:
        yield shlex.split(line, comments=True)
        return
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words: list[str] = []
    depth = 0
    for token in lexer:
        depth += token.count("(") - token.count(")") if set(token) <= set("()") else 0
        if depth == 0 and token in OPERATORS:
            if words:
                yield words
            words = []
        elif depth == 0 and token != ")":
            words.append(token)
    if words:
        yield words


def _program(words: list[str]) -> tuple[str, list[str]]:
    """The program a command runs (a path's last part) and its arguments, after leading
    assignments, ``sudo`` and its options, and ``exec``; ``export`` for assignments alone."""
    rest = list(words)
    while rest and ASSIGNMENT.match(rest[0]):
        rest.pop(0)
    if rest[:1] == ["sudo"]:
        rest.pop(0)
        while rest and rest[0].startswith("-"):
            if rest.pop(0) in ("-u", "-g"):
                rest.pop(0)
    if rest[:1] == ["exec"]:
        rest.pop(0)
    if not rest:
        return "export", []
    name = Path(rest[0]).name
    if re.fullmatch(r"python[0-9.]*", name) and rest[1:3] == ["-m", "pipeline"]:
        return "oracode-provision", rest[3:]
    return name, rest[1:]


def unchecked(blocks: list[Block]) -> list[str]:
    """What makes each unmarked block neither run nor checked: a command whose program has no
    check, or a line the shell couldn't read; ``page:line: program: line`` each."""
    problems = []
    for block in blocks:
        try:
            found = list(commands(block))
        except ValueError as exc:
            problems.append(f"{block.where}: can't be read as shell lines: {exc}")
            continue
        if block.needs_real_seam:
            continue
        problems += [f"{c.where}: {c.program}: {c.line}" for c in found if c.check is None]
    return problems


def all_commands(check: Check, root: Path = ROOT) -> list[Command]:
    """Every command of every page that ``check`` runs or checks."""
    return [c for block in command_blocks(root) for c in commands(block) if c.check is check]


def cli_problem(command: Command) -> str | None:
    """Why an ``oracode-provision`` command isn't right, or None: a concrete line is parsed by
    the CLI's parser as written; a synopsis names a command the CLI has (or a placeholder for
    any) and only options that command has."""
    parser = build_parser()
    if not command.is_synopsis:
        message = io.StringIO()
        with contextlib.redirect_stderr(message), contextlib.suppress(SystemExit):
            parser.parse_args(command.words)
            return None
        return message.getvalue().strip().splitlines()[-1]
    choices = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    name = command.words[0] if command.words else "..."
    if name not in choices:
        is_placeholder = name.startswith(("[", "-")) or "..." in name or name.isupper()
        return None if is_placeholder else f"no command {name!r}"
    known = {o for a in choices[name]._actions for o in a.option_strings}
    named = set(re.findall(r"--[a-z][a-z-]*", " ".join(command.words)))
    return f"unknown options {sorted(named - known)}" if named - known else None


def make_targets(command: Command) -> list[str]:
    """The targets a ``make`` command names (not its options, variables or ``[...]``)."""
    words, targets = list(command.words), []
    while words:
        word = words.pop(0)
        if word in ("-C", "-f"):
            words.pop(0)
        elif not word.startswith(("-", "[")) and not ASSIGNMENT.match(word):
            targets.append(word)
    return targets


def make_problem(command: Command, root: Path = ROOT) -> str | None:
    """Why a ``make`` command isn't right, or None: each target it names exists (``make -n``,
    which runs nothing)."""
    for target in make_targets(command):
        done = subprocess.run(
            ["make", "-n", target, "INPUT=x.csv"], cwd=root, capture_output=True, text=True
        )
        if done.returncode != 0:
            return done.stderr.strip()
    return None


def assignment_problem(command: Command) -> str | None:
    """Why a line meant only to set variables does more, or None."""
    others = [w for w in command.words if not re.fullmatch(r"[A-Za-z_]\w*(=.*)?", w)]
    return f"not an assignment: {others}" if others else None


def host_problems(command: Command, root: Path = ROOT) -> list[str]:
    """The units a host set-up command names that aren't in ``deploy/systemd``, and its
    relative paths that aren't in the repository."""
    units = {p.name for p in UNITS.glob("*.service")} | {p.name for p in UNITS.glob("*.timer")}
    problems = []
    for word in command.words:
        if word.startswith("-") or word.startswith("/"):
            continue
        if re.fullmatch(r"[\w@.-]+\.(service|timer)", word):
            if word not in units:
                problems.append(f"no unit {word} in deploy/systemd")
        elif word.startswith("oracode-") and "/" not in word:
            if not {f"{word}.service", f"{word}.timer"} & units:
                problems.append(f"no unit {word} in deploy/systemd")
        elif "/" in word and not (root / word).exists():
            problems.append(f"no {word} in the repository")
    return problems
