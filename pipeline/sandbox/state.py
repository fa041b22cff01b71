"""The sandbox's memory: devices, codes, action attempts, rate-limit windows, clock, counters,
and the events each code's lifecycle records (``events``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import math
import random
import time
import uuid
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from pipeline.common.rates import SEAM_DOOR_RATE, Rate
from pipeline.sandbox.events import CREATED, FAILED_TO_SET, SCHEDULED, SET, EventLog
from pipeline.sandbox.rules import Slot, read_slots

WORKSPACE_ID = "00000000-0000-4000-8000-00000000a001"

# Offline codes stay `unset` until close to starts_at, then `setting`, then `set` with a PIN.
SETTING_LEAD = dt.timedelta(days=1)
SET_LEAD = dt.timedelta(hours=1)


@dataclass
class Faults:
    """Failure injection: a share of requests answered 503 before acting (``fail_before``), a
    share of successful creates whose answer is lost after the code exists (``drop_after``),
    a share of creates answered 504 at once and carried out ``late_after`` seconds later
    (``late``), how long a new code stays out of ``/access_codes/list`` (``list_lag``
    seconds), a latency range in milliseconds, and keys revoked while the sandbox runs (401).

    Raises ``ValueError`` when a share is outside 0..1 or a duration is negative."""

    fail_before: float = 0.0
    drop_after: float = 0.0
    late: float = 0.0
    late_after: float = 30.0
    list_lag: float = 0.0
    latency_ms: tuple[float, float] = (0.0, 0.0)
    revoked_keys: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        for name in ("fail_before", "drop_after", "late"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a share between 0 and 1")
        for name in ("late_after", "list_lag"):
            if not 0.0 <= getattr(self, name) < math.inf:
                raise ValueError(f"{name} must be a number of seconds, 0 or more")


class SandboxClock:
    """Real time plus an offset that tests move forward (``advance``) instead of sleeping.

    Rate windows use the event loop's clock when there is one (the same time base as
    ``time.monotonic`` under uvicorn), so a test loop with virtual time drives them too.
    """

    def __init__(self) -> None:
        self.offset = 0.0

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.offset)

    def monotonic(self) -> float:
        try:
            base = asyncio.get_running_loop().time()
        except RuntimeError:
            base = time.monotonic()
        return base + self.offset


class SlidingWindow:
    """At most ``limit`` events per ``period`` seconds; says how long until the next fits."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit, self.period = limit, period
        self.events: deque[float] = deque()

    def wait_needed(self, now: float) -> float:
        while self.events and self.events[0] <= now - self.period:
            self.events.popleft()
        if len(self.events) < self.limit:
            return 0.0
        return self.events[0] + self.period - now

    def record(self, now: float) -> None:
        self.events.append(now)


@dataclass
class Code:
    """One access code; ``public`` is what Seam would show for it at a given time."""

    access_code_id: str
    device_id: str
    name: str | None
    starts_at: dt.datetime
    ends_at: dt.datetime
    slot: Slot
    site_name: str | None
    pin: str
    created_at: dt.datetime
    rounded_by_s: float
    max_time_rounding: str
    is_stuck: bool = False
    created_monotonic: float = 0.0

    def status(self, now: dt.datetime) -> str:
        if self.is_stuck or now < self.starts_at - SETTING_LEAD:
            return "unset"
        return "set" if now >= self.starts_at - SET_LEAD else "setting"

    def set_error(self) -> dict[str, Any]:
        """The error a stuck code shows from the moment it should have become ``setting``."""
        return {
            "error_code": "failed_to_set_on_device",
            "message": "The code could not be set on the device; Seam keeps retrying.",
            "is_access_code_error": True,
            "created_at": _iso(self.starts_at - SETTING_LEAD),
        }

    def public(self, now: dt.datetime, workspace_id: str) -> dict[str, Any]:
        status = self.status(now)
        errors = []
        if self.is_stuck and now >= self.starts_at - SETTING_LEAD:
            errors.append(self.set_error())
        return {
            "access_code_id": self.access_code_id,
            "device_id": self.device_id,
            "workspace_id": workspace_id,
            "name": self.name,
            "code": self.pin if status == "set" else None,
            "common_code_key": None,
            "type": "time_bound",
            "status": status,
            "starts_at": _iso(self.starts_at),
            "ends_at": _iso(self.ends_at),
            "created_at": _iso(self.created_at),
            "errors": errors,
            "warnings": [],
            "is_managed": True,
            "is_offline_access_code": True,
            "is_one_time_use": False,
            "is_backup_access_code_available": False,
            "is_external_modification_allowed": False,
            "is_scheduled_on_device": status == "set",
            "is_waiting_for_code_assignment": status != "set",
            "pending_mutations": [],
            "dormakaba_oracode_metadata": {
                "stay_id": int(uuid.UUID(self.access_code_id).int % 10**8),
                "user_level_id": self.slot.raw.get("dormakaba_oracode_user_level_id"),
                "user_level_name": self.slot.name,
                "site_name": self.site_name,
                "is_cancellable": False,
                "is_extendable": False,
                "is_early_checkin_able": False,
                "is_overridable": False,
            },
        }


@dataclass(order=True)
class LateCreate:
    """A create answered 504 whose body the backend carries out at ``due`` (sandbox monotonic
    time; ``due_at`` is the same instant on the sandbox's wall clock). Ordered by due time,
    then by arrival (``seq``)."""

    due: float
    seq: int
    due_at: dt.datetime = field(compare=False)
    body: dict[str, Any] = field(compare=False)


def _iso(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class SandboxState:
    """Everything the sandbox remembers; reset() forgets codes, attempts and counters."""

    devices: dict[str, dict[str, Any]]
    slots: dict[str, list[Slot]]
    code_limits: dict[str, int]
    stuck_devices: set[str]
    door_rate: Rate | None
    global_rate: float | None
    seed: int
    clock: SandboxClock = field(default_factory=SandboxClock)
    codes: dict[str, Code] = field(default_factory=dict)
    codes_by_device: dict[str, list[Code]] = field(default_factory=lambda: defaultdict(list))
    attempts: dict[str, str] = field(default_factory=dict)
    requests: Counter[tuple[str, int]] = field(default_factory=Counter)
    door_windows: dict[str, SlidingWindow] = field(default_factory=dict)
    global_window: SlidingWindow | None = None
    late_creates: list[LateCreate] = field(default_factory=list)
    late_counts: Counter[str] = field(default_factory=Counter)
    late_refusals: Counter[str] = field(default_factory=Counter)
    events: EventLog = field(default_factory=EventLog)
    _door_event_fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    rng: random.Random = field(init=False)
    ids: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.reset()

    @classmethod
    def from_payload(
        cls,
        payload: dict[str, Any],
        *,
        door_rate: Rate | None = SEAM_DOOR_RATE,
        global_rate: float | None = None,
        seed: int = 0,
    ) -> SandboxState:
        """From a ``/devices/list`` response, with an optional ``sandbox`` section:
        ``code_limits`` (device_id → codes the door holds; defaults to the device's
        ``max_active_codes_supported``) and ``stuck_devices`` (codes never get set)."""
        devices = {device["device_id"]: device for device in payload["devices"]}
        extra = payload.get("sandbox", {})
        limits = {
            device_id: int(limit)
            for device_id, device in devices.items()
            if (limit := device.get("properties", {}).get("max_active_codes_supported"))
        }
        limits.update({key: int(value) for key, value in extra.get("code_limits", {}).items()})
        slots = {
            device_id: read_slots(device)
            for device_id, device in devices.items()
            if device.get("properties", {}).get("dormakaba_oracode_metadata")
        }
        return cls(
            devices=devices,
            slots=slots,
            code_limits=limits,
            stuck_devices=set(extra.get("stuck_devices", [])),
            door_rate=door_rate,
            global_rate=global_rate,
            seed=seed,
        )

    def reset(self) -> None:
        self.rng = random.Random(self.seed)
        self.ids = random.Random(self.seed + 1)
        self.codes = {}
        self.codes_by_device = defaultdict(list)
        self.attempts = {}
        self.requests = Counter()
        self.door_windows = {}
        self.global_window = None
        self.late_creates = []
        self.late_counts = Counter()
        self.late_refusals = Counter()
        self.events.clear()
        if self.global_rate:
            # N per second as a sliding window; below 1/s, one request per 1/N seconds.
            per = max(1, math.floor(self.global_rate))
            self.global_window = SlidingWindow(per, per / self.global_rate)

    def add_code(self, code: Code) -> None:
        """Hold a new code (created, carried out late or seeded) and record its events:
        ``access_code.created`` now, the rest when the clock reaches them (``events.py``)."""
        self.codes[code.access_code_id] = code
        self.codes_by_device[code.device_id].append(code)
        common = self._event_fields(code.device_id)
        now = self.clock.now()
        log = self.events
        log.record(
            CREATED,
            code.access_code_id,
            code.device_id,
            occurred_at=code.created_at,
            now=now,
            details=common,
        )
        ids = (code.access_code_id, code.device_id)
        setting_at, set_at = code.starts_at - SETTING_LEAD, code.starts_at - SET_LEAD
        if code.is_stuck:
            failure = {
                **common,
                "access_code_errors": [code.set_error()],
                "access_code_warnings": [],
                "device_errors": [],
                "device_warnings": [],
                "connected_account_errors": [],
                "connected_account_warnings": [],
            }
            log.schedule(
                setting_at, FAILED_TO_SET, *ids, not_before=code.created_at, details=failure
            )
        else:
            log.schedule(setting_at, SCHEDULED, *ids, not_before=code.created_at, details=common)
            log.schedule(
                set_at,
                SET,
                *ids,
                not_before=code.created_at,
                details={**common, "code": code.pin},
            )
        self.record_due_events(now)

    def _event_fields(self, device_id: str) -> dict[str, Any]:
        """The fields every event of a door's codes carries (one dict per door, never changed)."""
        if device_id not in self._door_event_fields:
            account = self.devices[device_id].get("connected_account_id")
            self._door_event_fields[device_id] = {"connected_account_id": account}
        return self._door_event_fields[device_id]

    def record_due_events(self, now: dt.datetime | None = None) -> int:
        """Record the lifecycle events the clock (or ``now``) has reached, skipping codes no
        longer held; returns how many."""
        now = self.clock.now() if now is None else now
        return self.events.record_due(now, self.codes.__contains__)

    def queue_late_create(self, body: dict[str, Any], after: float) -> None:
        """Keep a create's body to carry out ``after`` seconds from now (sandbox clock)."""
        late = LateCreate(
            due=self.clock.monotonic() + after,
            seq=self.late_counts["answered_504"],
            due_at=self.clock.now() + dt.timedelta(seconds=after),
            body=body,
        )
        heapq.heappush(self.late_creates, late)
        self.late_counts["answered_504"] += 1

    def pop_due_late_creates(self) -> list[LateCreate]:
        """The queued creates whose time has come, earliest first, removed from the queue."""
        now = self.clock.monotonic()
        due = []
        while self.late_creates and self.late_creates[0].due <= now:
            due.append(heapq.heappop(self.late_creates))
        return due

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.ids.getrandbits(128), version=4))

    def door_window(self, device_id: str) -> SlidingWindow | None:
        if self.door_rate is None:
            return None
        if device_id not in self.door_windows:
            self.door_windows[device_id] = SlidingWindow(*self.door_rate)
        return self.door_windows[device_id]

    def new_pin(self, device_id: str, prefix: int) -> str:
        """Six digits that begin with the user level's prefix, unique on the door."""
        head = str(prefix)
        taken = {code.pin for code in self.codes_by_device[device_id]}
        while True:
            tail = "".join(str(self.ids.randrange(10)) for _ in range(6 - len(head)))
            if head + tail not in taken:
                return head + tail
