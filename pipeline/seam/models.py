"""Pydantic models of the Seam objects the pipeline reads: device, access code, pagination.

Shapes follow Seam's OpenAPI document. Every model ignores fields it doesn't know, so a newer
Seam payload still parses; fields we rely on are typed, the rest pass through untouched.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

# A PIN as a lock takes it: digits only (Oracode's are six; other locks' four to ten). Anything
# else in a PIN's place (a formula, a word) is never recorded, nor handed to a guest.
_PIN = re.compile(r"[0-9]{4,10}")
PIN_RULE = "4 to 10 digits"


class SeamModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class TimeSlot(SeamModel):
    """A dormakaba Oracode user level ("time slot", "user prefix")."""

    name: str
    # The product pages spell the prefix `ext_dormakaba_oracode_user_level_prefix`, the OpenAPI
    # schema `dormakaba_oracode_user_level_prefix`; older payloads only carry `prefix`.
    prefix: int | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "prefix",
            "dormakaba_oracode_user_level_prefix",
            "ext_dormakaba_oracode_user_level_prefix",
        ),
    )
    check_in_time: str
    check_out_time: str
    is_24_hour: bool = False
    is_biweekly_mode: bool = False
    is_one_shot: bool = False
    is_master: bool = False
    dormakaba_oracode_user_level_id: str | None = None


class OracodeMetadata(SeamModel):
    door_id: int | float | None = None
    door_name: str | None = None
    device_id: int | float | str | None = None
    door_is_wireless: bool | None = None
    site_name: str | None = None
    site_id: int | float | None = None
    iana_timezone: str | None = None
    predefined_time_slots: list[TimeSlot] = Field(default_factory=list)


class DeviceProperties(SeamModel):
    name: str | None = None
    online: bool | None = None
    offline_access_codes_enabled: bool | None = None
    max_active_codes_supported: int | None = None
    dormakaba_oracode_metadata: OracodeMetadata | None = None


class Device(SeamModel):
    device_id: str
    device_type: str
    display_name: str | None = None
    can_program_offline_access_codes: bool | None = None
    properties: DeviceProperties

    @property
    def can_program_offline(self) -> bool:
        """Whether the door takes offline codes; older payloads only carry the property flag."""
        if self.can_program_offline_access_codes is not None:
            return self.can_program_offline_access_codes
        return bool(self.properties.offline_access_codes_enabled)


class CodeIssue(SeamModel):
    """An item of an access code's ``errors`` or ``warnings``."""

    error_code: str | None = None
    warning_code: str | None = None
    message: str = ""

    @property
    def code(self) -> str:
        return self.error_code or self.warning_code or "unknown"


class AccessCodeOracodeMetadata(SeamModel):
    stay_id: int | float | None = None
    user_level_id: str | None = None
    user_level_name: str | None = None
    site_name: str | None = None


def is_pin(value: object) -> bool:
    """Whether ``value`` is a PIN a lock takes (``PIN_RULE``)."""
    return isinstance(value, str) and _PIN.fullmatch(value) is not None


class AccessCode(SeamModel):
    """A Seam access code. ``code`` is its PIN, only ever one that ``is_pin``: another value
    in its place is dropped (never kept, never shown) and ``pin_unexpected`` says so."""

    access_code_id: str
    device_id: str
    name: str | None = None
    code: str | None = Field(default=None, repr=False)
    pin_unexpected: bool = False
    status: str
    type: str | None = None
    starts_at: str | None = None
    ends_at: str | None = None
    created_at: str | None = None
    is_offline_access_code: bool = False
    is_waiting_for_code_assignment: bool | None = None
    errors: list[CodeIssue] = Field(default_factory=list)
    warnings: list[CodeIssue] = Field(default_factory=list)
    dormakaba_oracode_metadata: AccessCodeOracodeMetadata | None = None

    @model_validator(mode="before")
    @classmethod
    def _only_a_pin(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("code") is not None and not is_pin(data["code"]):
            data = {**data, "code": None, "pin_unexpected": True}
        return data


class Pagination(SeamModel):
    has_next_page: bool = False
    next_page_cursor: str | None = None
