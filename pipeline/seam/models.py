"""Pydantic models of the Seam objects the pipeline reads: device, access code, pagination.

Shapes follow Seam's OpenAPI document. Every model ignores fields it doesn't know, so a newer
Seam payload still parses; fields we rely on are typed, the rest pass through untouched.
"""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field


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


class AccessCode(SeamModel):
    access_code_id: str
    device_id: str
    name: str | None = None
    code: str | None = None
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


class Pagination(SeamModel):
    has_next_page: bool = False
    next_page_cursor: str | None = None
