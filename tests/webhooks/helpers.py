"""What the webhook tests share: the secret, deliveries signed as Seam (Svix) signs them, Seam's
event objects, and reading the ledger's rows."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

from pipeline.ledger.location import LedgerLocation
from tests.ledger.helpers import dict_rows, insertion_order

SECRET = "whsec_" + base64.b64encode(b"oracode-webhook-test-secret-24").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"somebody-else-s-secret-xyz").decode()
PIN = "482915"
# The ledger's codes (tests.webhooks.conftest): Seam's access code ids and their tags.
CODES = {"ac-1": "tag-1", "ac-2": "tag-2"}


def sign(body: bytes, delivery_id: str, timestamp: int, secret: str = SECRET) -> str:
    """Svix's documented scheme: base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}`` with the
    base64-decoded secret, sent as ``v1,<signature>``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def delivery(
    event: dict[str, Any],
    *,
    delivery_id: str | None = None,
    timestamp: int | None = None,
    secret: str = SECRET,
    prefix: str = "svix-",
) -> tuple[bytes, dict[str, str]]:
    """A delivery of ``event``: its body and headers, signed with ``secret``."""
    body = json.dumps(event).encode()
    delivery_id = delivery_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    return body, {
        f"{prefix}id": delivery_id,
        f"{prefix}timestamp": str(timestamp),
        f"{prefix}signature": sign(body, delivery_id, timestamp, secret),
        "content-type": "application/json",
    }


def event(
    event_type: str,
    access_code_id: str = "ac-1",
    *,
    occurred_at: str = "2026-12-01T12:00:00.000Z",
    **fields: Any,
) -> dict[str, Any]:
    """An ``access_code.*`` event object as Seam posts it."""
    return {
        "event_id": f"evt_{uuid.uuid4().hex}",
        "event_type": f"access_code.{event_type}",
        "access_code_id": access_code_id,
        "device_id": "device-1",
        "workspace_id": "ws-1",
        "created_at": occurred_at,
        "occurred_at": occurred_at,
        **fields,
    }


def code_rows(path: LedgerLocation) -> dict[str, dict[str, Any]]:
    """The ledger's codes by access_code_id (status, PIN, attention), as committed."""
    return {
        row["access_code_id"]: row
        for row in dict_rows(
            path,
            "SELECT access_code_id, code, code_status, needs_attention, code_errors FROM codes",
        )
    }


def event_rows(path: LedgerLocation) -> list[dict[str, Any]]:
    """The ledger's ``seam_events`` rows, oldest first."""
    return dict_rows(path, f"SELECT * FROM seam_events {insertion_order(path)}")
