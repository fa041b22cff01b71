"""Five nights of the nightly job as cron runs it (``oracode-provision nightly`` in a process,
against the sandbox over HTTP), with the stays a property's export really has from night to
night: new, cancelled, moved, extended, and one the pipeline can't serve. After each night the
summary, ``pins`` and ``report`` are read as the people who message guests read them: every
guest accounted for, with what to do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from pipeline.sandbox import Faults
from tests.paths import SANDBOX_DEVICES
from tests.servers import environment, served

CONFIG = """
[changes]
reissue_changed = true   # a moved or extended stay gets its new code
[nightly]
out_dir = "nights"
"""
# Alpenhof's rooms (Europe/Berlin): dates only, so each stay takes the room's guest level.
BOOKED = {
    "A": ("Zimmer 1", "2027-03-10", "2027-03-13", "Anna Alt"),
    "B": ("Zimmer 2", "2027-03-10", "2027-03-12", "Ben Berg"),
    "C": ("Zimmer 3", "2027-03-11", "2027-03-14", "Cleo Chan"),
}
MOVED = {**BOOKED, "C": ("Zimmer 3", "2027-03-20", "2027-03-23", "Cleo Chan")}
NIGHTS = [
    BOOKED,  # 1: new stays
    {k: v for k, v in BOOKED.items() if k != "B"},  # 2: B cancelled (gone from the export)
    {k: v for k, v in MOVED.items() if k != "B"},  # 3: C moved to other dates
    # 4: A extended by two nights
    {"A": ("Zimmer 1", "2027-03-10", "2027-03-15", "Anna Alt"), "C": MOVED["C"]},
    # 5: a new stay on a room that doesn't exist
    {
        "A": ("Zimmer 1", "2027-03-10", "2027-03-15", "Anna Alt"),
        "C": MOVED["C"],
        "D": ("Zimmer 9", "2027-03-12", "2027-03-14", "Dora Dahl"),
    },
]


def command(*words: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", *words]


def run(folder: Path, env: dict[str, str], *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*words), cwd=folder, env=env, capture_output=True, text=True, timeout=300
    )


def export(folder: Path, night: int, stays: dict[str, tuple[str, str, str, str]]) -> Path:
    path = folder / f"export-{night}.csv"
    pl.DataFrame(
        [
            {
                "reservation_id": key,
                "site_name": "Alpenhof",
                "door_name": door,
                "check_in": check_in,
                "check_out": check_out,
                "guest_name": guest,
            }
            for key, (door, check_in, check_out, guest) in stays.items()
        ]
    ).write_csv(path)
    return path


@pytest.mark.slow
def test_five_nights_every_guest_accounted_for(tmp_path):
    """Night 1: three new stays, exit 0, all in pins, nobody needs a person. 2: B cancelled:
    exit 1 with B's orphan named (guest, door, window, next step), B gone from pins. 3: C moved:
    its new code in pins, its old one superseded (still valid until its end) in the summary
    and the report. 4: A extended: the same for A; C's old code still said. 5: D on a room that
    doesn't exist: exit 1 with D and the fix; pins lists D without a code, saying why."""
    (tmp_path / "pipeline.toml").write_text(CONFIG)
    _, server = served(json.loads(SANDBOX_DEVICES.read_text()), Faults())
    seen: list[dict] = []
    with server as url:
        env = environment(url)
        for number, stays in enumerate(NIGHTS, start=1):
            source = export(tmp_path, number, stays)
            nightly = run(tmp_path, env, "nightly", str(source), "--config", "pipeline.toml")
            pins_run = run(tmp_path, env, "pins", "--out", f"pins-{number}.csv")
            report_run = run(tmp_path, env, "report", "--format", "json")
            assert pins_run.returncode == 0, pins_run.stderr
            seen.append(
                {
                    "exit": nightly.returncode,
                    "lines": nightly.stdout.splitlines(),
                    "pins": pl.read_csv(tmp_path / f"pins-{number}.csv", infer_schema=False),
                    "report": json.loads(report_run.stdout),
                    "report_exit": report_run.returncode,
                }
            )
    first, cancelled, moved, extended, rejected = seen
    codes = dict(first["pins"].select("reservation_id", "access_code_id").rows())
    windows = {
        row["reservation_id"]: (row["check_in"], row["check_out"])
        for row in first["pins"].iter_rows(named=True)
    }

    # Night 1: new stays.
    assert first["exit"] == 0, first["lines"]
    assert first["lines"][1].startswith("tonight: 3 created,")
    assert first["lines"][-1] == "nightly exit 0: nothing new"
    assert first["pins"].select("reservation_id", "guest_name", "door_name").rows() == [
        ("A", "Anna Alt", "Zimmer 1"),
        ("B", "Ben Berg", "Zimmer 2"),
        ("C", "Cleo Chan", "Zimmer 3"),
    ]
    assert first["pins"]["check_in_local"].to_list() == [
        "Wed 10 Mar 2027 15:00",
        "Wed 10 Mar 2027 15:00",
        "Thu 11 Mar 2027 15:00",
    ]
    assert (first["report"]["needs_a_person"], first["report_exit"]) == ([], 0)

    # Night 2: B cancelled.
    b_in, b_out = windows["B"]
    orphan = (
        f"  new orphaned: B (Ben Berg) on Zimmer 2, {b_in} → {b_out}, code {codes['B']}: tell"
        " the guest their code no longer applies (the booking left the export, was cancelled,"
        f" or moved to another door); it stays valid until {b_out} (codes can't be deleted)"
    )
    assert cancelled["exit"] == 1
    assert orphan in cancelled["lines"]
    assert cancelled["pins"]["reservation_id"].to_list() == ["A", "C"]
    assert codes["B"] not in cancelled["pins"]["access_code_id"].to_list()
    people = [
        (row["problem"], row["reservation_id"]) for row in cancelled["report"]["needs_a_person"]
    ]
    assert (people, cancelled["report_exit"]) == ([("orphaned", "B")], 1)

    # Night 3: C moved: a new code, the old one still valid until its end.
    c_pins = moved["pins"].filter(pl.col("reservation_id") == "C").row(0, named=True)
    assert c_pins["access_code_id"] not in (None, codes["C"])
    assert c_pins["check_in_local"] == "Sat 20 Mar 2027 15:00"
    c_in, c_out = windows["C"]
    c_old = (
        f"C (Cleo Chan) on Zimmer 3, {c_in} → {c_out}, code {codes['C']}: the stay changed:"
        " tell the guest to use their new code (the pins file lists it) and that the old one no"
        f" longer applies; it stays valid until {c_out} (codes can't be deleted)"
    )
    assert moved["exit"] == 1
    assert f"  new superseded: {c_old}" in moved["lines"]
    assert f"  still valid, superseded: {c_old}" in moved["lines"]
    superseded = [
        row for row in moved["report"]["needs_a_person"] if row["problem"] == "superseded"
    ]
    assert [(row["reservation_id"], row["access_code_id"]) for row in superseded] == [
        ("C", codes["C"])
    ]
    assert superseded[0]["message"].startswith(f"code {codes['C']} still valid until {c_out};")
    assert "orphaned: B" not in " ".join(moved["lines"])  # known since last night

    # Night 4: A extended: the same for A; C's old code is still said.
    a_pins = extended["pins"].filter(pl.col("reservation_id") == "A").row(0, named=True)
    assert a_pins["access_code_id"] != codes["A"]
    assert a_pins["check_out_local"] == "Mon 15 Mar 2027 11:00"
    assert extended["exit"] == 1
    assert any(
        line.startswith("  new superseded: A (Anna Alt) on Zimmer 1,") for line in extended["lines"]
    )
    assert f"  still valid, superseded: {c_old}" in extended["lines"]
    assert extended["lines"][1].endswith(", 2 superseded but still valid (1 new)")
    assert extended["pins"]["reservation_id"].to_list() == ["A", "C"]

    # Night 5: D can't be served: named with the fix, and in pins without a code.
    assert rejected["exit"] == 1
    assert (
        "  new rejected: D on Zimmer 9: unknown_device (Dora Dahl): name the door as Seam does in"
        " the export, or add a [doors.aliases] entry"
    ) in rejected["lines"]
    d_pins = rejected["pins"].filter(pl.col("reservation_id") == "D").row(0, named=True)
    assert (d_pins["ready"], d_pins["code"], d_pins["guest_name"]) == ("false", None, "Dora Dahl")
    assert d_pins["why_not_ready"].startswith("rejected: unknown_device: ")
    assert d_pins["why_not_ready"].endswith(
        "; fix: name the door as Seam does in the export, or add a [doors.aliases] entry"
    )
    people = [
        (row["problem"], row["reservation_id"]) for row in rejected["report"]["needs_a_person"]
    ]
    assert people == [
        ("rejected", "D"),
        ("orphaned", "B"),
        ("superseded", "A"),
        ("superseded", "C"),
    ]
    assert rejected["report_exit"] == 1
    nights = sorted(path.name for path in (tmp_path / "nights").iterdir())
    assert len(nights) == 5 * 6  # each night's logs, results, status and report (JSON, page)
