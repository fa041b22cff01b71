"""Where the repository's sample inputs are."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SANDBOX_DEVICES = ROOT / "inputs" / "sandbox-devices.json"
