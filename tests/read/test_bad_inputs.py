"""Input files that aren't files and outputs that can't be written: exit 2 and one line saying
what the path is, before anything is read from or sent to Seam; never a hang or a traceback."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from pipeline.cli import main
from tests.paths import ROOT, SANDBOX_DEVICES

SAMPLE = ROOT / "inputs" / "reservations-sample.csv"
SAMPLE_CONFIG = ROOT / "inputs" / "pipeline.toml"
OUTPUT_HINT = "(give an output path in a folder you can write to)"


def plan(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, list[str]]:
    """``plan`` offline (``--devices``): its exit code and its lines on stderr."""
    offline = ["--devices", str(SANDBOX_DEVICES), "--config", str(SAMPLE_CONFIG)]
    code = main(["plan", *map(str, args), *offline])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder nobody may write in, and the reason the system gives: a read-only tmpfs for
    root (who ignores permissions), mode 0555 for others; skipped when neither works."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder, "Permission denied"
        folder.chmod(0o755)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"can't mount a read-only tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder, "Read-only file system"
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


# -- input files --------------------------------------------------------------------------------


def test_a_directory_as_input_says_so(tmp_path, capsys):
    """A folder given as a reservation file: exit 2, 'is a directory'."""
    folder = tmp_path / "stays.csv"
    folder.mkdir()
    assert plan(capsys, folder, "--out", tmp_path / "plan.csv") == (
        2,
        [f"error: reservation file {folder} is a directory (give a CSV, Parquet or workbook file)"],
    )


def test_a_symlink_loop_as_input_says_so(tmp_path, capsys):
    """Two links pointing at each other: exit 2, 'is a symlink loop'."""
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.symlink_to(second)
    second.symlink_to(first)
    assert plan(capsys, first, "--out", tmp_path / "plan.csv") == (
        2,
        [
            f"error: reservation file {first} is a symlink loop"
            " (check the path, and that tonight's export was written)"
        ],
    )


def test_a_broken_symlink_as_input_names_its_target(tmp_path, capsys):
    """A link to nothing: exit 2, the link and its missing target named."""
    link = tmp_path / "stays.csv"
    link.symlink_to(tmp_path / "gone.csv")
    assert plan(capsys, link, "--out", tmp_path / "plan.csv") == (
        2,
        [
            f"error: reservation file {link} is a symlink to {tmp_path}/gone.csv,"
            " which does not exist (check the path, and that tonight's export was written)"
        ],
    )


@pytest.mark.timeout(20)
def test_a_fifo_as_input_says_so_without_waiting(tmp_path, capsys):
    """A named pipe with no writer: exit 2 at once, 'is a FIFO', the reader never blocks."""
    fifo = tmp_path / "stays.csv"
    os.mkfifo(fifo)
    assert plan(capsys, fifo, "--out", tmp_path / "plan.csv") == (
        2,
        [
            f"error: reservation file {fifo} is a FIFO, not a file"
            " (give a CSV, Parquet or workbook file)"
        ],
    )


def test_a_file_name_that_isnt_utf8_is_named_and_printed(tmp_path, capsys):
    """An input whose name isn't UTF-8: exit 2, one line that prints (the byte escaped)."""
    path = Path(os.fsdecode(os.fsencode(tmp_path) + b"/stays-\xff.csv"))
    path.write_bytes(SAMPLE.read_bytes())
    assert plan(capsys, path, "--out", tmp_path / "plan.csv") == (
        2,
        [
            f"error: reservation file {tmp_path}/stays-\\udcff.csv has a name that isn't UTF-8"
            " (rename it, or link it under a UTF-8 name)"
        ],
    )


def sample_parquet(path: Path, **columns: pl.Series) -> Path:
    frame = pl.read_csv(SAMPLE, infer_schema=False).head(3)
    frame.with_columns(**columns).write_parquet(path)
    return path


@pytest.mark.parametrize(
    ("series", "kind"),
    [
        (pl.Series([["Ann"], ["Bo"], ["Cy"]]), "List(String)"),
        (pl.Series([b"Ann", b"Bo", b"Cy"]), "Binary"),
    ],
)
def test_a_parquet_column_that_isnt_text_is_named(tmp_path, capsys, series, kind):
    """A used Parquet column of lists or bytes: exit 2, a Parquet message naming the column
    and its type (not the CSV quoting hint)."""
    path = sample_parquet(tmp_path / "stays.parquet", Guest=series)
    assert plan(capsys, path, "--out", tmp_path / "plan.csv") == (
        2,
        [
            f"error: reservation file {path}: column Guest has type {kind}; the input needs"
            " text, date or number columns (export that column as text)"
        ],
    )


def test_an_unused_parquet_list_column_is_ignored(tmp_path, capsys):
    """A list column the pipeline doesn't use doesn't stop the file being read."""
    path = sample_parquet(tmp_path / "stays.parquet", tags=pl.Series([["a"], [], ["b", "c"]]))
    code, _ = plan(capsys, path, "--out", tmp_path / "plan.csv")
    assert code in (0, 1)
    # One row per input row, besides the sample config's [doors.also] rows on the lobby.
    assert pl.read_csv(tmp_path / "plan.csv").filter(pl.col("also_for").is_null()).height == 3


# -- outputs ------------------------------------------------------------------------------------


def test_an_output_path_that_is_a_folder_is_refused(tmp_path, capsys):
    """--out names an existing folder: exit 2 before the input is read."""
    out = tmp_path / "plan.csv"
    out.mkdir()
    assert plan(capsys, SAMPLE, "--out", out) == (
        2,
        [f"error: output file {out} is a folder (give the path of a file)"],
    )


def test_an_output_under_a_file_is_refused(tmp_path, capsys):
    """--out's folder is a file: exit 2, 'a file is in the way'."""
    blocker = tmp_path / "results"
    blocker.write_text("")
    assert plan(capsys, SAMPLE, "--out", blocker / "plan.csv") == (
        2,
        [f"error: output folder {blocker} can't be created: a file is in the way {OUTPUT_HINT}"],
    )


def test_a_missing_output_folder_is_created(tmp_path, capsys):
    """--out in folders that don't exist yet: they are made and the plan is written."""
    out = tmp_path / "new" / "deeper" / "plan.csv"
    code, _ = plan(capsys, SAMPLE, "--out", out)
    assert code == 1  # the sample has rows meant to be rejected
    assert out.is_file()
    assert sorted(path.name for path in out.parent.iterdir()) == ["plan.csv"]


def test_a_read_only_output_folder_is_refused(read_only, capsys):
    """--out in a folder that can't be written: exit 2 with the system's reason."""
    folder, reason = read_only
    assert plan(capsys, SAMPLE, "--out", folder / "plan.csv") == (
        2,
        [f"error: output folder {folder} can't be written: {reason} {OUTPUT_HINT}"],
    )


def test_a_read_only_working_directory_refuses_the_default_outputs(read_only, monkeypatch, capsys):
    """No --out and a working directory that can't be written: exit 2 naming outputs/."""
    folder, reason = read_only
    monkeypatch.chdir(folder)
    assert plan(capsys, SAMPLE) == (
        2,
        [f"error: output folder outputs can't be created: {reason} {OUTPUT_HINT}"],
    )


@pytest.mark.parametrize("command", ["apply", "status"])
def test_apply_and_status_check_their_results_before_the_ledger(
    read_only, tmp_path, monkeypatch, capsys, command
):
    """apply and status with --results in a read-only folder: exit 2, no ledger made, nothing
    sent (the endpoint is closed: a request would fail differently)."""
    folder, reason = read_only
    monkeypatch.setenv("SEAM_API_KEY", "seam_test_key")
    monkeypatch.setenv("SEAM_ENDPOINT", "http://127.0.0.1:9")
    ledger = tmp_path / "ledger.sqlite"
    inputs = [str(SAMPLE)] if command == "apply" else []
    results = folder / "results.csv"
    code = main([command, *inputs, "--ledger", str(ledger), "--results", str(results)])
    assert (code, capsys.readouterr().err.strip().splitlines()) == (
        2,
        [f"error: output folder {folder} can't be written: {reason} {OUTPUT_HINT}"],
    )
    assert not ledger.exists()


def test_report_checks_its_default_folder_before_the_ledger(read_only, monkeypatch, capsys):
    """report --format csv with no --out in a read-only working directory: exit 2 on the
    outputs folder, before the ledger is looked at."""
    folder, reason = read_only
    monkeypatch.chdir(folder)
    code = main(["report", "--format", "csv", "--ledger", "missing.sqlite"])
    assert (code, capsys.readouterr().err.strip().splitlines()) == (
        2,
        [f"error: output folder outputs can't be created: {reason} {OUTPUT_HINT}"],
    )


def test_an_output_name_that_isnt_utf8_is_printed_escaped(tmp_path, capsys):
    """--out whose name isn't UTF-8: the plan is written there and the summary line that
    names it prints (the byte escaped) instead of failing."""
    out = Path(os.fsdecode(os.fsencode(tmp_path) + b"/plan-\xff.csv"))
    offline = ["--devices", str(SANDBOX_DEVICES), "--config", str(SAMPLE_CONFIG)]
    code = main(["plan", str(SAMPLE), "--out", str(out), *offline])
    assert code == 1
    assert out.is_file()
    assert f"to {tmp_path}/plan-\\udcff.csv" in capsys.readouterr().out.replace("\n", "")
