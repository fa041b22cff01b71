"""Seam's events: each one kept once (``seam_events``), and what it says of one of our codes.

An event is recorded once per event id, and a webhook delivery once per delivery id (Svix's
``svix-id``, the same on every retry): a repeated one changes nothing. An event whose
``access_code_id`` is none of the ledger's codes is kept too, as ``not_ours``, and touches no
code. An event is applied only when its ``device_id`` is its code's door and its
``occurred_at`` is a real instant, at most ``FUTURE_TOLERANCE`` ahead of this host's clock;
otherwise it is kept as ``not_applied``, with why, and changes nothing: a signed event that
contradicts the ledger is a fault to look into, not news.

A code never moves backwards. No event lowers its status along ``unset`` < ``setting`` <
``set`` < ``removed`` < ``deleted``: a ``scheduled_on_device`` that comes after
``set_on_device`` leaves the code ``set``, with its PIN. An event older than what the ledger
already knows of the code (the event that last moved its status, ``status_event_at``, or
``status``'s last look at Seam, ``status_checked_at``) moves it only further along that order:
it doesn't restate the same status, nor raise a setting problem (failure, delay) about it, and
a setting problem is moot once the code is ``set``. A PIN is taken from an event that carries
one while the ledger has none. A PIN that differs from the one the ledger has is never swapped
in: the code needs attention (``pin_changed``), the event's PIN is kept beside the recorded one
(``reported_code``) for the hand-off to show both, and ``status``, which asks Seam itself,
settles it. A PIN that isn't one a lock takes (``seam.models.is_pin``: 4 to 10 digits) is never
recorded: the code needs attention (``pin_unexpected``, naming the event) until Seam gives one
that is. The PIN goes to ``codes`` only: never to ``seam_events``, never to a log line.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from pipeline.common.instants import as_instant
from pipeline.ledger.commits import GroupCommits
from pipeline.ledger.dialects import Db
from pipeline.ledger.states import timestamp
from pipeline.seam.models import PIN_RULE, is_pin

# The order a code's status goes in; an event never moves a code down it. A status outside it
# (``removing``, ``unknown``, none yet) may be moved to any.
STATUS_RANK = {"unset": 0, "setting": 1, "set": 2, "removed": 3, "deleted": 4}
# The ``needs_attention`` reasons that a code being set on its door resolves (with the errors
# and warnings they were about).
RESOLVED_BY_SET = ("seam_error", "seam_warning", "not_set_in_time")

# What became of an event (``seam_events.outcome``; the last two are never stored: the
# event is there already).
APPLIED = "applied"  # it changed one of our codes
SUPERSEDED = "superseded"  # one of our codes, which the ledger knew newer of: nothing changed
RECORDED = "recorded"  # one of our codes, but the event says nothing the ledger keeps
NOT_OURS = "not_ours"  # no code of the ledger has its access_code_id (or it has none)
NOT_APPLIED = "not_applied"  # one of our codes, but another door, or no real occurred_at
REPLAYED = "replayed"  # this delivery id was recorded before
DUPLICATE = "duplicate"  # this event id was recorded before (from another delivery)
# How far ahead of this host's clock an event's occurred_at may be (clocks differ): Svix's own
# tolerance for a delivery's timestamp.
FUTURE_TOLERANCE = dt.timedelta(minutes=5)
# Why a code needs attention when an event gives it another PIN than the ledger's, and when
# Seam (an event, an answer) gives it something that isn't a PIN.
PIN_CHANGED = "pin_changed"
PIN_UNEXPECTED = "pin_unexpected"


def unexpected_pin(source: str) -> str:
    """The ``needs_attention`` of a code whose PIN from ``source`` (``Seam's event evt_1``)
    isn't one a lock takes: never the value itself."""
    return (
        f"{PIN_UNEXPECTED}: {source} gives this code a PIN that isn't {PIN_RULE}: it is not"
        " recorded, nor handed out, until Seam gives one that is (status asks)"
    )


@dataclass(frozen=True)
class SeamEvent:
    """A Seam event as the ledger keeps it, and what it says of its access code.

    ``status``: the code's status it reports (None: it reports none); ``pin``: the code it
    carries (never shown in a repr); ``attention``: the ``needs_attention`` it raises (``reason:
    message``), only while the code's window is open when ``attention_while_open``;
    ``code_errors`` / ``code_warnings``: Seam's errors or warnings it carries, as JSON.
    """

    event_id: str
    event_type: str
    occurred_at: str | None = None
    created_at: str | None = None
    access_code_id: str | None = None
    device_id: str | None = None
    status: str | None = None
    pin: str | None = field(default=None, repr=False)
    attention: str | None = None
    attention_while_open: bool = False
    code_errors: str | None = None
    code_warnings: str | None = None

    @property
    def happened_at(self) -> dt.datetime | None:
        """When it happened by Seam's clock (``occurred_at``, else ``created_at``), or None."""
        return as_instant(self.occurred_at) or as_instant(self.created_at)

    @property
    def says_anything(self) -> bool:
        return any(v is not None for v in (self.status, self.pin, self.attention))


@dataclass(frozen=True)
class EventOutcome:
    """What recording an event did: ``outcome`` (see the constants above), the tags of the
    codes it changed, and for each ``(tag, status before, status after)``."""

    outcome: str
    changed: tuple[tuple[str, str | None, str | None], ...] = ()


class SeamEvents(GroupCommits):
    """The ledger's ``seam_events`` table and what events do to ``codes``."""

    async def record_seam_event(
        self, event: SeamEvent, *, delivery_id: str | None = None
    ) -> EventOutcome:
        """Record ``event`` (delivered as ``delivery_id``) and apply it to its code, once.

        Returns REPLAYED or DUPLICATE, changing nothing, when the delivery or the event was
        recorded before. Committed when it returns; raises LedgerError when the ledger can't
        be written (nothing of it is then recorded).
        """
        return await self.write(lambda db: _record(db, event, delivery_id))


def _record(db: Db, event: SeamEvent, delivery_id: str | None) -> EventOutcome:
    if (
        delivery_id is not None
        and db.execute("SELECT 1 FROM seam_events WHERE delivery_id = ?", (delivery_id,)).fetchone()
    ):
        return EventOutcome(REPLAYED)
    if db.execute("SELECT 1 FROM seam_events WHERE event_id = ?", (event.event_id,)).fetchone():
        return EventOutcome(DUPLICATE)
    codes: list[dict[str, Any]] = []
    if event.access_code_id is not None:
        cursor = db.execute(
            "SELECT idempotency_tag, device_id, code, code_status, code_errors, code_warnings,"
            " needs_attention, status_event_at, status_checked_at, ends_at FROM codes"
            " WHERE access_code_id = ?",
            (event.access_code_id,),
        )
        names = [description[0] for description in cursor.description]
        codes = [dict(zip(names, row, strict=True)) for row in cursor]
    changed: list[tuple[str, str | None, str | None]] = []
    details: list[dict[str, Any]] = []
    refusal = _refusal(codes, event)
    if refusal is not None:
        details.append({"not_applied": refusal})
        codes_to_change: list[dict[str, Any]] = []
    else:
        codes_to_change = codes
    for code in codes_to_change:
        update = _update(code, event)
        if update:
            db.execute(
                f"UPDATE codes SET {', '.join(f'{name} = ?' for name in update)}, updated_at = ?"
                " WHERE idempotency_tag = ?",
                (*update.values(), timestamp(), code["idempotency_tag"]),
            )
            after = update.get("code_status", code["code_status"])
            changed.append((code["idempotency_tag"], code["code_status"], after))
            details.append(_detail(code, update))
    if not codes:
        outcome = NOT_OURS
    elif refusal is not None:
        outcome = NOT_APPLIED
    elif changed:
        outcome = APPLIED
    else:
        outcome = SUPERSEDED if event.says_anything else RECORDED
    db.execute(
        "INSERT INTO seam_events (event_id, event_type, access_code_id, device_id,"
        " occurred_at, created_at, delivery_id, received_at, outcome, detail)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            event.event_id,
            event.event_type,
            event.access_code_id,
            event.device_id,
            event.occurred_at,
            event.created_at,
            delivery_id,
            timestamp(),
            outcome,
            json.dumps(details) if details else None,
        ),
    )
    return EventOutcome(outcome, tuple(changed))


def _refusal(codes: list[dict[str, Any]], event: SeamEvent) -> str | None:
    """Why ``event`` may not be applied to ``codes`` (its code's ledger rows), or None."""
    if not codes:
        return None
    doors = {code["device_id"] for code in codes}
    if event.device_id not in doors:
        door = "no device_id" if event.device_id is None else f"device_id {event.device_id!r}"
        return f"the event names {door[:120]}, not its code's door {sorted(doors)[0]}"
    happened = as_instant(event.occurred_at)
    if happened is None:
        return f"its occurred_at {str(event.occurred_at)[:60]!r} is not an instant"
    if happened > dt.datetime.now(dt.UTC) + FUTURE_TOLERANCE:
        # Applied, it would be the code's newest news for good: no real event could move it.
        return (
            f"its occurred_at {str(event.occurred_at)[:60]!r} is more than"
            f" {FUTURE_TOLERANCE.total_seconds() / 60:g} minutes ahead of this host's clock:"
            " it hasn't happened yet"
        )
    return None


def _update(code: dict[str, Any], event: SeamEvent) -> dict[str, Any]:
    """The columns ``event`` changes on ``code`` (a ``codes`` row), by the rules above."""
    update = _changes(code, event)
    if event.pin is not None and not is_pin(event.pin):
        # Never recorded, never shown: a formula or a word where a PIN should be.
        update["needs_attention"] = unexpected_pin(f"Seam's event {event.event_id[:100]}")
    return _without_unchanged(update, code)


def _changes(code: dict[str, Any], event: SeamEvent) -> dict[str, Any]:
    """What ``event`` says of ``code`` but for a PIN that isn't one (``_update``)."""
    update: dict[str, Any] = {}
    happened = event.happened_at
    known = [t for t in map(as_instant, (code["status_event_at"], code["status_checked_at"])) if t]
    is_older = happened is not None and any(happened < t for t in known)
    current = STATUS_RANK.get(code["code_status"], -1)
    pin = event.pin if is_pin(event.pin) else None  # another value is ``_update``'s to say
    if pin is not None and code["code"] is None:
        update["code"] = pin
    elif pin is not None and pin != code["code"]:
        # Never a silent swap: the guest may have the recorded PIN already.
        return _without_unchanged(
            {
                "needs_attention": f"{PIN_CHANGED}: Seam's event of {event.occurred_at} gives"
                " this code another PIN than the one recorded, which stays until status asks"
                " Seam (pins shows both)",
                "reported_code": pin,
            },
            code,
        )
    if event.status is not None:
        rank = STATUS_RANK[event.status]
        # A later status is later whenever its event arrives; the same status (or one from
        # outside the order) is only taken from newer news.
        if not (rank > current >= 0 or (rank >= current and not is_older)):
            return _without_unchanged(update, code)
        update["code_status"] = event.status
        if event.occurred_at or event.created_at:
            update["status_event_at"] = event.occurred_at or event.created_at
        reason = (code["needs_attention"] or "").partition(":")[0]
        if event.status == "set" and reason in RESOLVED_BY_SET:
            # Set on its door: Seam's errors and warnings about setting it are past too.
            update |= {"needs_attention": None, "code_errors": "[]", "code_warnings": "[]"}
    elif event.attention is not None and (is_older or current >= STATUS_RANK["set"]):
        return _without_unchanged(update, code)  # news of setting it, about a code set since
    ends = as_instant(code["ends_at"])
    if event.attention is not None and (
        not event.attention_while_open or happened is None or ends is None or happened < ends
    ):
        update["needs_attention"] = event.attention
        if event.code_errors is not None:
            update["code_errors"] = event.code_errors
        if event.code_warnings is not None:
            update["code_warnings"] = event.code_warnings
    return _without_unchanged(update, code)


def _without_unchanged(update: dict[str, Any], code: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in update.items() if code.get(name, ...) != value}


def _detail(code: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """What an event changed on a code, for ``seam_events.detail``: never the PIN itself."""
    detail: dict[str, Any] = {"idempotency_tag": code["idempotency_tag"]}
    if "code_status" in update:
        detail |= {"from": code["code_status"], "to": update["code_status"]}
    if "code" in update:
        detail["pin"] = "recorded"
    if (update.get("needs_attention") or "").startswith(PIN_UNEXPECTED):
        detail["pin"] = f"not a PIN ({PIN_RULE}): not recorded"
    if "reported_code" in update:
        detail["pin"] = "another PIN reported: kept beside the recorded one"
    if "needs_attention" in update:
        detail["needs_attention"] = update["needs_attention"]
    return detail
