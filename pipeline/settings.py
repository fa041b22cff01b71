"""Settings: Seam credentials from the environment, everything else from an optional TOML file.

The API key is read only from the environment (the official SDKs' variables) and is held as a
``SecretStr``, so it never lands in a repr, a log line or a file. A config file that carries a
key is refused.
"""

from __future__ import annotations

import string
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.errors import ConfigError
from pipeline.models import first_problem

DEFAULT_ENDPOINT = "https://connect.getseam.com"

CANONICAL_COLUMNS = (
    "reservation_id",
    "device_id",
    "door_name",
    "site_name",
    "check_in",
    "check_out",
    "guest_name",
    "user_level",
)

# What makes two rows with the same reservation_id the same reservation: all but the id.
CONTENT_COLUMNS = CANONICAL_COLUMNS[1:]

# Fields a code name template may use; `tag` is mandatory because apply finds codes by it.
NAME_FIELDS = frozenset(
    {"tag", "reservation_id", "guest_name", "door_name", "site_name", "user_level_name"}
)
DEFAULT_NAME_TEMPLATE = "{reservation_id} {guest_name} [{tag}]"


class SeamCredentials(BaseSettings):
    """Credentials and endpoint, named as Seam's official SDKs name them."""

    model_config = SettingsConfigDict(env_prefix="SEAM_", extra="ignore")

    api_key: SecretStr | None = None
    personal_access_token: SecretStr | None = None
    workspace_id: str | None = None
    endpoint: str = DEFAULT_ENDPOINT

    def auth_headers(self) -> dict[str, str]:
        """The headers that authenticate a request; raises ConfigError when none can be built."""
        if self.api_key and self.personal_access_token:
            raise ConfigError(
                "both SEAM_API_KEY and SEAM_PERSONAL_ACCESS_TOKEN are set",
                hint="unset one of them",
            )
        if self.api_key:
            return {"Authorization": f"Bearer {self.api_key.get_secret_value()}"}
        if self.personal_access_token:
            if not self.workspace_id:
                raise ConfigError(
                    "SEAM_PERSONAL_ACCESS_TOKEN needs SEAM_WORKSPACE_ID",
                    hint="set SEAM_WORKSPACE_ID to the workspace the token should act in",
                )
            return {
                "Authorization": f"Bearer {self.personal_access_token.get_secret_value()}",
                "seam-workspace": self.workspace_id,
            }
        raise ConfigError(
            "no Seam API key: this command talks to the Seam API",
            hint="set SEAM_API_KEY (or pass --devices FILE to plan offline)",
        )


def _check_template(template: str) -> str:
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    if "tag" not in fields:
        raise ValueError("must contain {tag}: apply finds already-created codes by it")
    unknown = fields - NAME_FIELDS
    if unknown:
        raise ValueError(f"unknown field(s) {sorted(unknown)}; allowed: {sorted(NAME_FIELDS)}")
    return template


class UserLevelDefaults(BaseModel):
    """Which user level a dates-only reservation gets, by door (device_id or name) or by site."""

    model_config = ConfigDict(extra="forbid")

    doors: dict[str, str] = Field(default_factory=dict)
    sites: dict[str, str] = Field(default_factory=dict)


BudgetMode = Literal["lifetime", "concurrent"]
OnBudgetExceeded = Literal["reject-rows", "skip-door", "abort"]


class BudgetConfig(BaseModel):
    """How many codes a door may hold (``[budgets]``): a default per door, overrides per site
    and per door (device_id or door name), a reserve kept free, the counting mode, and what to
    do with rows past the budget."""

    model_config = ConfigDict(extra="forbid")

    mode: BudgetMode = "lifetime"
    per_door: Annotated[int, Field(ge=0)] | None = None
    reserve: Annotated[int, Field(ge=0)] = 0
    on_exceeded: OnBudgetExceeded = "reject-rows"
    sites: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    doors: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)


class Config(BaseModel):
    """The TOML config file. Unknown keys are refused so a typo can't be silently ignored."""

    model_config = ConfigDict(extra="forbid")

    columns: dict[str, str] = Field(default_factory=dict)
    user_levels: UserLevelDefaults = Field(default_factory=UserLevelDefaults)
    budgets: BudgetConfig = Field(default_factory=BudgetConfig)
    name_template: Annotated[str, AfterValidator(_check_template)] = DEFAULT_NAME_TEMPLATE
    endpoint: str | None = None

    @field_validator("columns")
    @classmethod
    def _targets_are_canonical(cls, value: dict[str, str]) -> dict[str, str]:
        for source, target in value.items():
            if target not in CANONICAL_COLUMNS:
                raise ValueError(
                    f"{source!r} maps to {target!r}, which is not one of {list(CANONICAL_COLUMNS)}"
                )
        return value


def load_config(path: Path | None) -> Config:
    """Read the TOML config at ``path`` (or the defaults when None); raises ConfigError."""
    if path is None:
        return Config()
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist", hint="check --config") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} can't be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    if any(key in raw for key in ("api_key", "personal_access_token")):
        raise ConfigError(
            f"config file {path} holds an API key",
            hint="remove it and set SEAM_API_KEY in the environment instead",
        )
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"config file {path}: {first_problem(exc)}") from exc


@dataclass(frozen=True)
class BudgetOptions:
    """The command line's budget options, laid over the config's ``[budgets]``."""

    per_door: int | None = None
    mode: BudgetMode | None = None
    on_exceeded: OnBudgetExceeded | None = None

    def apply(self, config: Config) -> Config:
        given = {
            key: value
            for key, value in (
                ("per_door", self.per_door),
                ("mode", self.mode),
                ("on_exceeded", self.on_exceeded),
            )
            if value is not None
        }
        if not given:
            return config
        if self.per_door is not None and self.per_door < 0:
            raise ConfigError("--budget-per-door must be 0 or more")
        try:
            budgets = BudgetConfig.model_validate(config.budgets.model_dump() | given)
        except ValidationError as exc:
            raise ConfigError(f"budget option: {first_problem(exc)}") from exc
        return config.model_copy(update={"budgets": budgets})


def load_credentials(config: Config) -> SeamCredentials:
    """Credentials from the environment; the config endpoint applies unless SEAM_ENDPOINT is set."""
    credentials = SeamCredentials()
    if config.endpoint and "endpoint" not in credentials.model_fields_set:
        credentials = credentials.model_copy(update={"endpoint": config.endpoint})
    return credentials
