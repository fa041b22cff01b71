"""Which Chromium the HTML report's browser tests and ``make report-screenshot`` drive: one
place says it (``tests/report/chromium.py``), ``CHROMIUM`` overrides it for both."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.paths import ROOT
from tests.report.chromium import DEBIAN_CHROMIUM, chromium_path


def test_the_tests_chromium_is_the_environments_else_debians():
    """$CHROMIUM when set (and not empty), else /usr/bin/chromium."""
    assert chromium_path({"CHROMIUM": "/opt/chromium/chrome"}) == Path("/opt/chromium/chrome")
    assert chromium_path({"CHROMIUM": ""}) == DEBIAN_CHROMIUM == Path("/usr/bin/chromium")
    assert chromium_path({}) == DEBIAN_CHROMIUM


def dry_run(*args: str, chromium: str | None) -> str:
    """What make would run for ``args`` (nothing is run), with CHROMIUM set or not."""
    environ = {key: value for key, value in os.environ.items() if key != "CHROMIUM"}
    if chromium is not None:
        environ["CHROMIUM"] = chromium
    return subprocess.run(
        ["make", "-C", str(ROOT), "-n", *args],
        capture_output=True,
        text=True,
        check=True,
        env=environ,
    ).stdout


@pytest.mark.slow
def test_make_chromium_and_the_screenshot_use_the_chromium_the_tests_use():
    """make chromium and make report-screenshot drive $CHROMIUM (from the environment or
    make's command line), else Debian's; the screenshot's page is made with report --as-of,
    the machine's clock left alone."""
    for shown, path in (
        (dry_run("chromium", "report-screenshot", chromium="/opt/chrome"), "/opt/chrome"),
        (
            dry_run("chromium", "report-screenshot", "CHROMIUM=/opt/other", chromium=None),
            "/opt/other",
        ),
        (dry_run("chromium", "report-screenshot", chromium=None), "/usr/bin/chromium"),
    ):
        assert f'test -x "{path}"' in shown  # make chromium installs only when it is missing
        assert f'"{path}" --headless' in shown  # the screenshot
        if path != "/usr/bin/chromium":
            assert "/usr/bin/chromium" not in shown
    screenshot = dry_run("report-screenshot", chromium=None)
    assert "--as-of '2027-03-08T09:00:00+00:00'" in screenshot
    assert "clock_shim" not in screenshot
    assert "CLOCK_OFFSET" not in screenshot
