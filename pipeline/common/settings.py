"""Settings: Seam credentials from the environment, everything else from an optional TOML file.

The API key is read only from the environment (the official SDKs' variables) and is held as a
``SecretStr``, so it never lands in a repr, a log line or a file. A config file that carries a
key is refused. The webhook receiver's signing secret (``SEAM_WEBHOOK_SECRET``) is read and
held the same way.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import string
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

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

from pipeline.common.columns import CANONICAL_COLUMNS, SPLIT_COLUMNS
from pipeline.common.endpoints import check_endpoint
from pipeline.common.errors import ConfigError, NoApiKey
from pipeline.common.input_settings import (
    InputConfig,
    SourceConfig,
    columns_section,
    read_settings_problem,
    source_section,
)
from pipeline.common.job_settings import ChangesConfig, NightlyConfig, PinsConfig

DEFAULT_ENDPOINT = "https://connect.getseam.com"

# Fields a code name template may use; `tag` is mandatory because apply finds codes by it.
NAME_FIELDS = frozenset(
    {"tag", "reservation_id", "guest_name", "door_name", "site_name", "user_level_name"}
)
DEFAULT_NAME_TEMPLATE = "{reservation_id} {guest_name} [{tag}]"


def first_problem(exc: ValidationError) -> str:
    """``where: what`` for the first error pydantic found, for a one-line message."""
    first = exc.errors()[0]
    # A validator's own message says what is wrong; pydantic's prefix adds nothing to it.
    what = first["msg"].removeprefix("Value error, ")
    return f"{'.'.join(str(part) for part in first['loc'])}: {what}"


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
            return {"Authorization": f"Bearer {_header_value(self.api_key, 'SEAM_API_KEY')}"}
        if self.personal_access_token:
            if not self.workspace_id:
                raise ConfigError(
                    "SEAM_PERSONAL_ACCESS_TOKEN needs SEAM_WORKSPACE_ID",
                    hint="set SEAM_WORKSPACE_ID to the workspace the token should act in",
                )
            token = _header_value(self.personal_access_token, "SEAM_PERSONAL_ACCESS_TOKEN")
            return {
                "Authorization": f"Bearer {token}",
                "seam-workspace": _header_value(SecretStr(self.workspace_id), "SEAM_WORKSPACE_ID"),
            }
        raise NoApiKey(
            "no Seam API key: this command talks to the Seam API", hint="set SEAM_API_KEY"
        )


class ReceiverSecret(BaseSettings):
    """The secret Seam signs its webhook deliveries with (``whsec_`` and base64, as Seam's
    webhook page shows it)."""

    model_config = SettingsConfigDict(env_prefix="SEAM_", extra="ignore")

    webhook_secret: SecretStr | None = None


WEBHOOK_SECRET_PREFIX = "whsec_"


def load_webhook_secret() -> SecretStr:
    """``SEAM_WEBHOOK_SECRET`` from the environment, checked to be a ``whsec_<base64>`` secret.

    Raises ConfigError (exit 2) when it is missing or malformed; the message says what is
    wrong, never the value.
    """
    secret = ReceiverSecret().webhook_secret
    if secret is None or not secret.get_secret_value():
        raise ConfigError(
            "no SEAM_WEBHOOK_SECRET: the receiver checks every delivery's signature with it",
            hint="set it to the whsec_... secret Seam shows for this webhook",
        )
    value = secret.get_secret_value()
    problem = None
    if not value.startswith(WEBHOOK_SECRET_PREFIX):
        problem = f"it doesn't start with {WEBHOOK_SECRET_PREFIX}"
    else:
        encoded = value.removeprefix(WEBHOOK_SECRET_PREFIX)
        try:
            # Svix's secrets may come without base64's padding; its verifier adds it.
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not key:
            problem = f"what follows {WEBHOOK_SECRET_PREFIX} isn't base64"
    if problem is not None:
        raise ConfigError(
            f"SEAM_WEBHOOK_SECRET looks malformed ({problem})",
            hint="set it again to the secret exactly as Seam's webhook page shows it",
        )
    return secret


def _header_value(secret: SecretStr, variable: str) -> str:
    """The secret's text for an HTTP header; ConfigError (exit 2) when it can't be one.

    A key pasted with its line break, a space or a typographic character would otherwise leave
    on every request and fail as a network error, retried until the run gives up. The message
    says what is wrong, never the value.
    """
    value = secret.get_secret_value()
    problem = None
    if value != value.rstrip("\r\n"):
        problem = "it ends with a line break"
    elif value != value.strip():
        problem = "it starts or ends with whitespace"
    elif any(character.isspace() for character in value):
        problem = "it holds whitespace"
    elif not value.isascii():
        problem = "it holds a character that isn't ASCII"
    elif not value.isprintable():
        problem = "it holds a control character"
    if problem is None:
        return value
    raise ConfigError(
        f"{variable} looks malformed ({problem})",
        hint=f"set {variable} again to the value exactly as Seam shows it",
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


class DoorsConfig(BaseModel):
    """``[doors]``: ``aliases`` maps a door name as the export writes it to the door's name or
    device_id in Seam (e.g. ``"Unit 101" = "Room 101"``); ``also`` maps a door (name, alias or
    device_id) or a site name to the doors every stay there also needs a code on (e.g.
    ``"Harbor View" = ["Harbor Lobby"]``: a building entrance, a pool)."""

    model_config = ConfigDict(extra="forbid")

    aliases: dict[str, str] = Field(default_factory=dict)
    also: dict[str, list[Annotated[str, Field(min_length=1)]]] = Field(default_factory=dict)


# Seam rounds an Oracode booking's times to a user level when that takes at most one hour
# ("an error if max_time_rounding is 1hour and the necessary rounding amount exceeds one
# hour"): a booking further off is refused, so no tolerance beyond it can be right.
MAX_SLOT_TOLERANCE_MINUTES = 60


class PlanConfig(BaseModel):
    """``[plan]``: ``slot_tolerance_minutes``, how far each end of a booking may be from a user
    level's time for the stay to be planned on that level (0: exact times only; at most 60)."""

    model_config = ConfigDict(extra="forbid")

    slot_tolerance_minutes: Annotated[int, Field(strict=True)] = MAX_SLOT_TOLERANCE_MINUTES

    @field_validator("slot_tolerance_minutes")
    @classmethod
    def _within_seams_rounding(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"{value} is negative: give 0 (exact times only) up to 60")
        if value > MAX_SLOT_TOLERANCE_MINUTES:
            raise ValueError(
                f"{value} is over {MAX_SLOT_TOLERANCE_MINUTES}: Seam rounds a booking to a user"
                f" level by at most one hour and refuses creates that need more; give 0 to 60"
            )
        return value


class Config(BaseModel):
    """The TOML config file. Unknown keys are refused so a typo can't be silently ignored."""

    model_config = ConfigDict(extra="forbid")

    input: InputConfig = Field(default_factory=InputConfig)
    doors: DoorsConfig = Field(default_factory=DoorsConfig)
    plan: PlanConfig = Field(default_factory=PlanConfig)
    columns: dict[str, str] = Field(default_factory=dict)
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    user_levels: UserLevelDefaults = Field(default_factory=UserLevelDefaults)
    budgets: BudgetConfig = Field(default_factory=BudgetConfig)
    pins: PinsConfig = Field(default_factory=PinsConfig)
    changes: ChangesConfig = Field(default_factory=ChangesConfig)
    nightly: NightlyConfig = Field(default_factory=NightlyConfig)
    name_template: Annotated[str, AfterValidator(_check_template)] = DEFAULT_NAME_TEMPLATE
    endpoint: str | None = None

    @field_validator("columns")
    @classmethod
    def _targets_are_canonical(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_column_targets(value)

    @field_validator("sources")
    @classmethod
    def _source_targets_are_canonical(
        cls, value: dict[str, SourceConfig]
    ) -> dict[str, SourceConfig]:
        for name, source in value.items():
            _check_column_targets(source.columns, f"{columns_section(source_section(name))} ")
        return value


def _check_column_targets(columns: dict[str, str], where: str = "") -> dict[str, str]:
    known = (*CANONICAL_COLUMNS, *SPLIT_COLUMNS)
    for source, target in columns.items():
        if target not in known:
            close = difflib.get_close_matches(target.strip().lower(), known, n=1)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"{where}{source!r} maps to {target!r}, which is not one of {list(known)}{guess}"
            )
    return columns


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
        if (unknown := _unknown_key(exc) or read_settings_problem(exc)) is not None:
            raise ConfigError(f"config file {path}: {unknown[0]}", hint=unknown[1]) from exc
        raise ConfigError(f"config file {path}: {first_problem(exc)}") from exc


def _unknown_key(exc: ValidationError) -> tuple[str, str | None] | None:
    """For pydantic's "Extra inputs are not permitted": ``unknown key X in [section] (known:
    a, b)`` and a hint naming the closest known key (None: no such error)."""
    extra = next((error for error in exc.errors() if error["type"] == "extra_forbidden"), None)
    if extra is None:
        return None
    *section, key = (str(part) for part in extra["loc"])
    model: type[BaseModel] = Config
    parts = iter(section)
    for part in parts:
        annotation = model.model_fields[part].annotation
        if get_origin(annotation) is dict:
            # A table of tables ([sources.NAME]): the next part is the name.
            annotation = get_args(annotation)[1]
            next(parts, None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    known = list(model.model_fields)
    where = f"in [{'.'.join(section)}]" if section else "at the top level"
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]}?" if close else None
    return f"unknown key {key} {where} (known: {', '.join(known)})", hint


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
    """Credentials from the environment; the config endpoint applies unless SEAM_ENDPOINT is set.

    Raises ConfigError for an endpoint that isn't an http(s) URL or holds credentials (named
    by its setting, never showing them).
    """
    credentials = SeamCredentials()
    setting = "SEAM_ENDPOINT"
    if config.endpoint and "endpoint" not in credentials.model_fields_set:
        credentials = credentials.model_copy(update={"endpoint": config.endpoint})
        setting = "the config's endpoint"
    check_endpoint(credentials.endpoint, setting)
    return credentials
