"""Seam's ``access_code.*`` events for the sandbox's codes: recorded as each code's lifecycle
passes on the sandbox clock, listed by ``/events/list``, handed to the webhook sender.

When each is recorded (a code's status is ``state.Code.status``):

- ``access_code.created``: when the code is created (a late create: when it is carried out;
  a seeded code: when it is seeded);
- ``access_code.scheduled_on_device``: when the code becomes ``setting`` (``SETTING_LEAD``
  before ``starts_at``): Seam has handed it to the door;
- ``access_code.set_on_device``, with ``code`` (the PIN): when it becomes ``set``
  (``SET_LEAD`` before ``starts_at``), the moment ``/access_codes/get`` shows the PIN;
- ``access_code.failed_to_set_on_device``, with the errors: on a stuck door, instead of the
  two above, when the code's ``failed_to_set_on_device`` error appears (``SETTING_LEAD``
  before ``starts_at``).

A moment already past when the code is created is recorded at its creation, in that order.
An event's ``occurred_at`` is that moment (milliseconds), its ``created_at`` when the sandbox
recorded it; both are on the sandbox clock.
"""

from __future__ import annotations

import bisect
import datetime as dt
import heapq
import itertools
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.common.instants import as_instant

CREATED = "access_code.created"
SCHEDULED = "access_code.scheduled_on_device"
SET = "access_code.set_on_device"
FAILED_TO_SET = "access_code.failed_to_set_on_device"

# Seam: at most 100 values in each of /events/list's id and type filters.
MAX_FILTER_VALUES = 100
DEFAULT_LIMIT = 500


def iso_ms(instant: dt.datetime) -> str:
    """``2027-03-12T23:30:00.250Z``: Seam's instants, to the millisecond."""
    return instant.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _to_ms(instant: dt.datetime) -> dt.datetime:
    return instant.replace(microsecond=instant.microsecond // 1000 * 1000)


@dataclass(order=True, slots=True)
class Event:
    """One recorded event, ordered by ``occurred_at`` then by the order it was recorded."""

    occurred_at: dt.datetime
    seq: int
    event_id: str = field(compare=False)
    event_type: str = field(compare=False)
    access_code_id: str = field(compare=False)
    device_id: str = field(compare=False)
    created_at: dt.datetime = field(compare=False)
    details: dict[str, Any] = field(compare=False)

    def public(self, workspace_id: str) -> dict[str, Any]:
        """The event object as Seam shows it (and posts it as a webhook's body)."""
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "workspace_id": workspace_id,
            "access_code_id": self.access_code_id,
            "device_id": self.device_id,
            **self.details,
            "created_at": iso_ms(self.created_at),
            "occurred_at": iso_ms(self.occurred_at),
        }


@dataclass(slots=True)
class _Due:
    """An event that happens at its moment (not before ``not_before``, the code's creation)."""

    event_type: str
    access_code_id: str
    device_id: str
    not_before: dt.datetime
    details: dict[str, Any]


class BadQuery(Exception):
    """An ``/events/list`` body this API refuses: becomes a 400 naming ``field``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class EventQuery:
    """What ``/events/list`` asks for: ``occurred_at`` from ``since`` on (inclusive), or
    strictly between the two instants of ``between``; each filter None when not given."""

    since: dt.datetime | None
    between: tuple[dt.datetime, dt.datetime] | None
    event_types: frozenset[str] | None
    access_code_ids: frozenset[str] | None
    device_ids: frozenset[str] | None
    limit: int

    def matches(self, event: Event) -> bool:
        return (
            (self.event_types is None or event.event_type in self.event_types)
            and (self.access_code_ids is None or event.access_code_id in self.access_code_ids)
            and (self.device_ids is None or event.device_id in self.device_ids)
        )


def read_query(body: dict[str, Any]) -> EventQuery:
    """The checked query of an ``/events/list`` body; raises BadQuery.

    Needs ``since`` or ``between`` (not both); ``event_type``/``event_types``,
    ``access_code_id``/``access_code_ids``, ``device_id``/``device_ids`` are each the union of
    the single value and the list (at most 100 values); ``limit`` a positive integer (500)."""
    since, between = body.get("since"), body.get("between")
    if (since is None) == (between is None):
        raise BadQuery("since", "send since or between (one of them)")
    window = None
    if between is not None:
        if not isinstance(between, list) or len(between) != 2:
            raise BadQuery("between", "must be a list of two instants")
        window = (_instant(between[0], "between"), _instant(between[1], "between"))
    limit = body.get("limit", DEFAULT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise BadQuery("limit", "must be a positive integer")
    return EventQuery(
        since=None if since is None else _instant(since, "since"),
        between=window,
        event_types=_values(body, "event_type", "event_types"),
        access_code_ids=_values(body, "access_code_id", "access_code_ids"),
        device_ids=_values(body, "device_id", "device_ids"),
        limit=limit,
    )


def _instant(value: Any, name: str) -> dt.datetime:
    if (instant := as_instant(value)) is not None:
        return instant
    raise BadQuery(name, f"{value!r} is not an ISO 8601 instant with an offset (or Z)")


def _values(body: dict[str, Any], one: str, many: str) -> frozenset[str] | None:
    values = body.get(many)
    if values is not None and (
        not isinstance(values, list) or not all(isinstance(v, str) for v in values)
    ):
        raise BadQuery(many, "must be a list of strings")
    if values is not None and len(values) > MAX_FILTER_VALUES:
        raise BadQuery(many, f"at most {MAX_FILTER_VALUES} values ({len(values)} given)")
    single = body.get(one)
    if single is not None and not isinstance(single, str):
        raise BadQuery(one, "must be a string")
    if values is None and single is None:
        return None
    return frozenset(values or []) | ({single} if single is not None else set())


class EventLog:
    """Every event recorded, in ``occurred_at`` order, and the lifecycle moments still to
    come. ``on_record`` (when set) is called with each event as it is recorded."""

    def __init__(self) -> None:
        self.on_record: Callable[[Event], None] | None = None
        self.clear()

    def clear(self) -> None:
        """Forget the events and the moments to come (``on_record`` stays)."""
        self.events: list[Event] = []
        self.counts: Counter[str] = Counter()
        # (moment, order scheduled, what): plain tuples keep the heap's comparisons cheap.
        self._due: list[tuple[dt.datetime, int, _Due]] = []
        self._seq = itertools.count()
        # A UUID 4 whose last 12 hex digits count: unique here, and random across runs (not
        # from the sandbox's seed: a rerun must not repeat the ids a receiver has seen, it
        # would take the new events for redeliveries).
        self._id_prefix = str(uuid.uuid4())[:24]

    def record(
        self,
        event_type: str,
        access_code_id: str,
        device_id: str,
        *,
        occurred_at: dt.datetime,
        now: dt.datetime,
        details: dict[str, Any],
    ) -> Event:
        seq = next(self._seq)
        event = Event(
            occurred_at=_to_ms(occurred_at),
            seq=seq,
            event_id=f"{self._id_prefix}{seq:012x}",
            event_type=event_type,
            access_code_id=access_code_id,
            device_id=device_id,
            created_at=_to_ms(max(now, occurred_at)),
            details=details,
        )
        if self.events and event < self.events[-1]:
            bisect.insort(self.events, event)  # a moment the clock jumped past
        else:
            self.events.append(event)
        self.counts[event_type] += 1
        if self.on_record is not None:
            self.on_record(event)
        return event

    def schedule(
        self,
        at: dt.datetime,
        event_type: str,
        access_code_id: str,
        device_id: str,
        *,
        not_before: dt.datetime,
        details: dict[str, Any],
    ) -> None:
        """Record this event once the clock reaches ``at`` (``record_due``)."""
        due = _Due(event_type, access_code_id, device_id, not_before, details)
        heapq.heappush(self._due, (at, next(self._seq), due))

    def record_due(self, now: dt.datetime, is_held: Callable[[str], bool]) -> int:
        """Record every scheduled event whose moment is ``now`` or earlier, earliest first,
        skipping codes that ``is_held`` says are gone; returns how many were recorded."""
        recorded = 0
        while self._due and self._due[0][0] <= now:
            at, _, due = heapq.heappop(self._due)
            if not is_held(due.access_code_id):
                continue
            self.record(
                due.event_type,
                due.access_code_id,
                due.device_id,
                occurred_at=max(at, due.not_before),
                now=now,
                details=due.details,
            )
            recorded += 1
        return recorded

    def query(self, query: EventQuery) -> list[Event]:
        """The events the query asks for, ``occurred_at`` ascending, at most ``limit``."""
        if query.between is not None:
            after, before = query.between
            start = bisect.bisect_right(self.events, after, key=lambda e: e.occurred_at)
        else:
            assert query.since is not None
            before = None
            start = bisect.bisect_left(self.events, query.since, key=lambda e: e.occurred_at)
        found: list[Event] = []
        for index in range(start, len(self.events)):
            event = self.events[index]
            if before is not None and event.occurred_at >= before:
                break
            if query.matches(event):
                found.append(event)
                if len(found) == query.limit:
                    break
        return found
