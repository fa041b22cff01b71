"""What the ledger tests share: planned rows, access codes, reading the committed file."""

from __future__ import annotations

import sqlite3
from typing import Any

from pipeline.ledger.store import Ledger
from pipeline.seam.models import AccessCode


def planned(tag: str, device_id: str = "device-1") -> dict[str, Any]:
    """A planned row as ``register`` takes it."""
    return {
        "idempotency_tag": tag,
        "reservation_id": f"res-{tag}",
        "device_id": device_id,
        "door_name": "Room 101",
        "site_name": "Hotel",
        "user_level_name": "Guest",
        "starts_at": "2026-12-01T15:00:00Z",
        "ends_at": "2026-12-03T11:00:00Z",
        "max_time_rounding": "1h",
        "name": f"Guest {tag}",
    }


def access_code(code_id: str = "ac-1") -> AccessCode:
    return AccessCode(access_code_id=code_id, device_id="device-1", code="123456", status="set")


def rows(ledger: Ledger, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Read the committed file through a second connection (WAL lets it read alongside)."""
    with sqlite3.connect(ledger.path) as db:
        return db.execute(sql, args).fetchall()
