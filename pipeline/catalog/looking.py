"""Looking at the doors: one ``/access_codes/list`` per door says which codes exist on it.

Seam, not the ledger, is the truth about what exists: every code carries its idempotency tag in
its name, so one look at a door (every page) before its first create finds the codes that are
already there, whatever the ledger holds (new, lost, copied). Apply looks at each door with
work before sending to it; the budget stage counts what the same look found.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import anyio
import anyio.abc

from pipeline.common.errors import SeamError
from pipeline.common.tags import TAG_PATTERN
from pipeline.seam.client import SeamClient
from pipeline.seam.models import AccessCode

log = logging.getLogger(__name__)
# Doors listed at once (reads: Seam's per-door limit is on creates).
LIST_CONCURRENCY = 8
# An idempotency tag in a code's name (not followed by another digit: it is the whole tag).
TAG_IN_NAME = re.compile(rf"{TAG_PATTERN}(?!\d)")


@dataclass(frozen=True)
class DoorLook:
    """What one look at each door found: ``codes`` per door, when (the event loop's clock)
    each door was listed, and why each door that couldn't be listed wasn't (only when the
    look goes on past a failure: ``look_at_doors(..., each=True)``)."""

    codes: Mapping[str, list[AccessCode]]
    listed_at: Mapping[str, float]
    failed: Mapping[str, SeamError] = field(default_factory=dict)

    def all_codes(self) -> list[AccessCode]:
        return [code for codes in self.codes.values() for code in codes]


def find_tags(codes: Sequence[AccessCode], planned: Mapping[str, str]) -> dict[str, AccessCode]:
    """Each tag of ``planned`` (tag → device_id) that one of ``codes`` on its own door carries in
    its name, with that code (the earliest made, when there are several: the duplicates are
    ``apply.duplicates``' to record and say)."""
    found: dict[str, list[AccessCode]] = {}
    for code in codes:
        for tag in TAG_IN_NAME.findall(code.name or ""):
            if planned.get(tag) == code.device_id:
                found.setdefault(tag, []).append(code)
    return {
        tag: min(carriers, key=lambda code: code.created_at or "")
        for tag, carriers in found.items()
    }


async def look_at_doors(
    client: SeamClient, device_ids: Sequence[str], *, each: bool = False
) -> DoorLook:
    """Every code on the given doors: one ``/access_codes/list`` per door (all pages), a few
    doors at a time. Raises the first SeamError as itself (not in an exception group) after
    stopping the other listings; with ``each``, a door that can't be listed is left out
    (``DoorLook.failed`` says why) and the others are listed all the same."""
    codes: dict[str, list[AccessCode]] = {}
    listed_at: dict[str, float] = {}
    failed: dict[str, SeamError] = {}
    limiter = anyio.CapacityLimiter(LIST_CONCURRENCY)

    async def list_one(device_id: str, group: anyio.abc.TaskGroup) -> None:
        async with limiter:
            try:
                codes[device_id] = await client.list_access_codes(device_id)
            except SeamError as exc:
                failed[device_id] = exc
                if not each:
                    group.cancel_scope.cancel()
                return
            listed_at[device_id] = anyio.current_time()

    async with anyio.create_task_group() as group:
        for device_id in device_ids:
            group.start_soon(list_one, device_id, group)
    if failed and not each:
        raise next(iter(failed.values()))
    return DoorLook(codes, listed_at, failed)


async def list_door_codes(client: SeamClient, device_ids: Sequence[str]) -> list[AccessCode]:
    """Every code on the given doors: one ``/access_codes/list`` per door (all pages)."""
    return (await look_at_doors(client, device_ids)).all_codes()
