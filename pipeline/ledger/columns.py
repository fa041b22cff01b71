"""The columns the ledger keeps of a code and gives back: what a planned row is stored as, what a
person reads a code by (its stay), what apply needs, and a code's result row."""

from __future__ import annotations

from dataclasses import dataclass

# What the ledger keeps of a planned row, besides its state.
CODE_COLUMNS = (
    "idempotency_tag",
    "reservation_id",
    "device_id",
    "door_name",
    "site_name",
    "user_level_name",
    "starts_at",
    "ends_at",
    "max_time_rounding",
    "name",
)


# What a code is for, as a person reads it: the reservation, its door and its window.
STAY_COLUMNS = ("reservation_id", "device_id", "door_name", "site_name", "starts_at", "ends_at")


LEDGER_CODE_COLUMNS = (
    "idempotency_tag",
    "device_id",
    "name",
    "state",
    "access_code_id",
    "attempts",
    "sent_at",
)


RESULT_COLUMNS = (
    "idempotency_tag",
    "state",
    "reason",
    "message",
    "access_code_id",
    "code",
    "code_status",
    "attempts",
    "seam_request_id",
    "last_run_id",
)


@dataclass(frozen=True)
class LedgerCode:
    """A ``codes`` row as the apply stage needs it."""

    idempotency_tag: str
    device_id: str
    name: str
    state: str
    access_code_id: str | None
    attempts: int
    sent_at: str | None = None
