"""The guide builds with ``mkdocs build --strict`` and says nothing while it does, and a block
marked as needing real Seam shows its mark as the block's title."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.paths import ROOT

# Material's notice of its own end of life, printed at every start, says nothing of the guide.
QUIET = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        cwd=config.parent,
        env=QUIET,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_the_guide_builds_strict_without_a_warning(tmp_path):
    """``mkdocs build --strict`` builds every page of the nav, and logs nothing above INFO."""
    done = build(ROOT / "mkdocs.yml", tmp_path / "site")
    logged = [line for line in done.stderr.splitlines() if not line.startswith("INFO")]
    assert (done.returncode, logged) == (0, [])
    assert (tmp_path / "site" / "operators" / "nightly-job.html").is_file()


@pytest.mark.slow
def test_a_block_marked_as_needing_real_seam_shows_its_mark(tmp_path):
    """With the guide's settings, ``sh title="Needs real Seam: ..."`` builds without a
    warning into a shell block titled with the mark."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    config.update(docs_dir="docs", nav=["index.md"])
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text(
        '# Try\n\n```sh title="Needs real Seam: your key"\ncurl https://x\n```\n'
    )
    done = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    page = (tmp_path / "site" / "index.html").read_text()
    assert (done.returncode, done.stderr.count("WARNING")) == (0, 0), done.stderr
    assert '<span class="filename">Needs real Seam: your key</span>' in page
    assert 'class="language-sh highlight"' in page
