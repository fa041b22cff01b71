"""Where the repository's sample inputs are."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SANDBOX_DEVICES = ROOT / "inputs" / "sandbox-devices.json"
# The guide's page whose worked examples (a PMS export, two systems in one night) tests run.
EXPORTS_PAGE = ROOT / "docs" / "operators" / "exports.md"
