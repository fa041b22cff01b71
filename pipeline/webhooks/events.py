"""What each Seam event says of its access code, as the ledger keeps it (``SeamEvent``).

    access_code.set_on_device              status ``set``, and the PIN (``code``)
    access_code.scheduled_on_device        status ``unset``: on its door, waiting for its window
    access_code.failed_to_set_on_device    needs attention: ``seam_error: <Seam's errors>``
    access_code.delay_in_setting_on_device needs attention: ``seam_warning: <Seam's warnings>``
    access_code.removed_from_device        status ``removed``; needs attention
                                           (``removed_from_device``) if its window was still open
    access_code.deleted                    status ``deleted``; needs attention (``missing_on_seam``)
    access_code.deleted_external_to_seam   if its window was still open (a code we made is gone)
    any other event                        kept, changing no code (``changed``, ``created``, ...)

Whether the change is taken (a late or repeated event never moves a code back) is the ledger's
rule: ``pipeline.ledger.events``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pipeline.ledger.events import SeamEvent
from pipeline.webhooks.verify import Refused


@dataclass(frozen=True)
class Effect:
    """What one event type does to its code: the status it reports, the ``needs_attention``
    reason it raises (with ``fallback`` as the message when Seam gives none), only while the
    window is open when ``while_open``, and which of Seam's lists it carries (``errors`` or
    ``warnings``)."""

    status: str | None = None
    attention: str | None = None
    fallback: str = ""
    while_open: bool = False
    issues: str | None = None


EFFECTS = {
    "access_code.set_on_device": Effect(status="set"),
    "access_code.scheduled_on_device": Effect(status="unset"),
    "access_code.failed_to_set_on_device": Effect(
        attention="seam_error",
        fallback="failed_to_set_on_device: Seam could not set the code on its door",
        issues="errors",
    ),
    "access_code.delay_in_setting_on_device": Effect(
        attention="seam_warning",
        fallback="delay_in_setting_on_device: setting the code on its door is taking longer"
        " than usual",
        issues="warnings",
    ),
    "access_code.removed_from_device": Effect(
        status="removed",
        attention="removed_from_device",
        fallback="Seam removed the code from its door before its window ended",
        while_open=True,
    ),
    "access_code.deleted": Effect(
        status="deleted",
        attention="missing_on_seam",
        fallback="Seam deleted the code before its window ended",
        while_open=True,
    ),
    "access_code.deleted_external_to_seam": Effect(
        status="deleted",
        attention="missing_on_seam",
        fallback="the code was deleted outside Seam (at the lock or in its app) before its"
        " window ended",
        while_open=True,
    ),
}
# Events that may carry the code's PIN (``code``): Seam's set_on_device always does.
CARRY_PIN = frozenset({"set", "unset"})


def read_event(payload: dict[str, Any]) -> SeamEvent:
    """The ``SeamEvent`` of a delivered event object (Seam's fields at its top level; an
    older shape's ``payload`` object is read too). Raises Refused (400) when it has no
    ``event_id`` or ``event_type``."""
    nested = payload.get("payload")
    fields = {**nested, **payload} if isinstance(nested, dict) else payload
    event_id, event_type = fields.get("event_id"), fields.get("event_type")
    if not (isinstance(event_id, str) and event_id and isinstance(event_type, str)):
        raise Refused(400, "signed, but not a Seam event (no event_id or event_type)")
    effect = EFFECTS.get(event_type, Effect())
    pin = fields.get("code") if effect.status in CARRY_PIN else None
    attention = issues = None
    if effect.attention is not None:
        listed = _issues(fields, effect.issues)
        said = "; ".join(f"{code}: {message}" for code, message in listed)
        said = said or _text(fields.get("error_message")) or effect.fallback
        attention = f"{effect.attention}: {said}"
        if effect.issues is not None:
            key = "error_code" if effect.issues == "errors" else "warning_code"
            issues = json.dumps([{key: code, "message": message} for code, message in listed])
    return SeamEvent(
        event_id=event_id,
        event_type=event_type,
        occurred_at=_text(fields.get("occurred_at")),
        created_at=_text(fields.get("created_at")),
        access_code_id=_text(fields.get("access_code_id")),
        device_id=_text(fields.get("device_id")),
        status=effect.status,
        pin=_text(pin),
        attention=attention,
        attention_while_open=effect.while_open,
        code_errors=issues if effect.issues == "errors" else None,
        code_warnings=issues if effect.issues == "warnings" else None,
    )


def _issues(fields: dict[str, Any], kind: str | None) -> list[tuple[str, str]]:
    """Seam's errors (or warnings) on the code and on its device, as ``(code, message)``."""
    if kind is None:
        return []
    key = "error_code" if kind == "errors" else "warning_code"
    found: list[tuple[str, str]] = []
    for listed in (fields.get(f"access_code_{kind}"), fields.get(f"device_{kind}")):
        for issue in listed if isinstance(listed, list) else []:
            if isinstance(issue, dict):
                code = _text(issue.get(key)) or kind[:-1]
                found.append((code, _text(issue.get("message")) or ""))
    return found


def _text(value: Any) -> str | None:
    """A field's text (a number as its digits: a PIN sent as a number), else None."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None
