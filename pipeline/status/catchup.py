"""Catching up from Seam's events: the PINs of codes set on their doors since ``status`` last
knew every unfinished code's status, in fewer requests than asking for every code.

Refreshing by ids costs one ``/access_codes/list`` per ``REFRESH_BATCH`` codes. Since the
ledger's ``status_cursor`` (the instant of the last full refresh), every code that got its PIN
on its door has an ``access_code.set_on_device`` event, which carries the PIN; a page of
``/events/list`` holds up to ``EVENTS_PER_PAGE`` of them. Such a code is settled (``set``, its
PIN, no error): nothing more to ask. Every other code (no PIN yet, an error, no event seen) is
still asked for by id, so events only ever save requests: an event missed (an undocumented
order, a page boundary, retention) costs a request, never a wrong status.

The events may cost at most a tenth of the batches they replace (``event_page_budget``), so
the worst case (no code was set meanwhile) is 110 requests for 10,000 codes, the best
(every code set) 20.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Collection

from pipeline.common.errors import SeamError
from pipeline.common.instants import parse_instant
from pipeline.seam.client import SeamClient
from pipeline.seam.models import is_pin

log = logging.getLogger(__name__)

# Codes asked for in one `/access_codes/list` (Seam documents no maximum for
# `access_code_ids`; its other id filters take at most 100, so this stays there).
REFRESH_BATCH = 100
# Seam's `/events/list` answers at most this many events per call (its default `limit`).
EVENTS_PER_PAGE = 500
SETTLING_EVENT = "access_code.set_on_device"
# Events are asked for from this long before the cursor: our clock and Seam's may differ, and
# applying an event twice changes nothing.
CURSOR_OVERLAP = dt.timedelta(minutes=5)


def event_page_budget(codes: int) -> int:
    """``/events/list`` calls worth trying for ``codes`` unfinished codes: a tenth of the
    batches by id (at least one), none when one batch asks for them all."""
    batches = math.ceil(codes / REFRESH_BATCH)
    return 0 if batches < 2 else max(1, batches // 10)


async def pins_from_events(
    client: SeamClient, known_until: str, wanted: Collection[str], *, budget: int
) -> dict[str, str]:
    """``access_code_id → PIN`` of the ``wanted`` codes that Seam set on their doors since
    ``known_until`` (less ``CURSOR_OVERLAP``), in at most ``budget`` requests. A failing
    ``/events/list`` is logged and gives what was found so far (the rest is asked by id)."""
    since = parse_instant(known_until) - CURSOR_OVERLAP
    seen: set[str] = set()
    pins: dict[str, str] = {}
    for _ in range(budget):
        try:
            page = await client.list_events(
                since=since.isoformat(), event_types=[SETTLING_EVENT], limit=EVENTS_PER_PAGE
            )
        except SeamError as exc:
            log.warning(
                "could not catch up from Seam's events; asking for the codes by id instead",
                extra={"error": exc.one_line()},
            )
            break
        new = [event for event in page if str(event.get("event_id")) not in seen]
        for event in new:
            seen.add(str(event.get("event_id")))
            code_id, pin = event.get("access_code_id"), event.get("code")
            is_settling = event.get("event_type") == SETTLING_EVENT and code_id in wanted
            # A value that isn't a PIN settles nothing: the code is asked for by id.
            if is_settling and is_pin(pin):
                pins[str(code_id)] = str(pin)
        if len(page) < EVENTS_PER_PAGE or not new:
            break
        # No cursor and no documented order: the next page starts at the newest event seen.
        # Oldest first (as the sandbox answers), that walks the whole window; events that share
        # that very instant beyond the page, or a newest-first answer, only leave codes to be
        # asked for by id. An event that comes twice is skipped by its id.
        newest = max(
            (parse_instant(str(event["occurred_at"])) for event in new if event.get("occurred_at")),
            default=None,
        )
        if newest is None:
            break
        since = newest
    return pins
