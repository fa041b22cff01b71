"""Where the headless Chromium is that the HTML report's tests and ``make report-screenshot``
drive: ``$CHROMIUM`` when set (``make test CHROMIUM=/opt/chromium/chrome`` sets it too), else
Debian's ``/usr/bin/chromium`` (``make chromium`` installs it). The one place that says so: the
tests import it, the Makefile runs it (``python3 tests/report/chromium.py`` prints the path).
Standard library only: the Makefile runs it before the virtualenv exists."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

VARIABLE = "CHROMIUM"
DEBIAN_CHROMIUM = Path("/usr/bin/chromium")


def chromium_path(environ: Mapping[str, str] = os.environ) -> Path:
    """``$CHROMIUM``, else Debian's Chromium."""
    return Path(environ.get(VARIABLE) or DEBIAN_CHROMIUM)


if __name__ == "__main__":
    print(chromium_path())
