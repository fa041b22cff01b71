"""The pipeline's one exception tree.

    PipelineError                  base; ``exit_code`` is what the CLI exits with
    ├── UsageError                 exit 2: the input or the config can't be used
    │   ├── ConfigError            a settings value or the TOML file is wrong
    │   │   └── NoApiKey           no Seam credentials for a command that talks to Seam
    │   ├── InputFileError         a reservation file can't be read or lacks a column
    │   ├── DeviceDataError        device data is malformed (names the device)
    │   └── CorruptLedgerError     the ledger file isn't a ledger we can read (names what's wrong)
    ├── SeamError                  Seam answered with an error (type, message, status, request id)
    │   └── SeamUnavailableError   no usable answer: connection failed, timed out, 5xx
    ├── LedgerError                exit 3: the ledger can't be written (disk full, I/O error)
    └── RunStopped                 exit 3: apply had to stop (key refused, Seam unreachable)
        ├── RunLocked              exit 3: another run holds the ledger's lock
        └── Interrupted            exit 128 + the signal's number: stopped by SIGTERM or SIGINT

A row that can't be provisioned is *not* an exception: it becomes a result row with a reason
code. These exceptions are for problems that stop a whole command.
"""

from __future__ import annotations

from typing import Any


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """What is wrong and what to do, as the single line the CLI prints."""
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(PipelineError):
    """The command can't start with the input or config it was given."""

    exit_code = 2


class ConfigError(UsageError):
    """A setting from the environment or the TOML config file is missing or wrong."""


class NoApiKey(ConfigError):
    """No SEAM_API_KEY (nor a personal access token) for a command that talks to Seam."""


class InputFileError(UsageError):
    """A reservation file is unreadable, empty, or lacks a required column."""


class DeviceDataError(UsageError):
    """Device data (from Seam or a ``--devices`` file) is malformed."""


class CorruptLedgerError(UsageError):
    """The ledger file is damaged or holds another schema: no run can trust it (exit 2)."""


class SeamError(PipelineError):
    """Seam answered a request with an error.

    Carries Seam's error ``type`` and ``message``, the HTTP status and the ``seam-request-id``
    header, so that a person can quote the request to Seam's support.
    """

    exit_code = 3

    def __init__(
        self,
        message: str,
        *,
        error_type: str = "unknown",
        status: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        data: dict[str, Any] | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.error_type = error_type
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after
        self.data = data or {}

    def one_line(self) -> str:
        text = self.what()
        return f"{text} ({self.hint})" if self.hint else text

    def what(self) -> str:
        """The error without the hint: Seam's type and message, the status and request id."""
        context = [f"HTTP {self.status}"] if self.status is not None else []
        if self.request_id:
            context.append(f"seam-request-id {self.request_id}")
        text = f"Seam error {self.error_type}: {self.message}"
        return f"{text} [{', '.join(context)}]" if context else text


class SeamUnavailableError(SeamError):
    """No usable answer from Seam: connection failure, timeout, 5xx, or a body that isn't JSON."""


class LedgerError(PipelineError):
    """The ledger could not be written (disk full, I/O error): the run stops (exit 3).

    The transaction that failed was rolled back, so what the ledger held before it is intact;
    a code whose ``sending`` was not committed was not sent.
    """

    exit_code = 3


class RunStopped(PipelineError):
    """``apply`` stopped before finishing; what was done is in the ledger and the results."""

    exit_code = 3


class RunLocked(RunStopped):
    """Another run holds the ledger's lock (exit 3)."""


class Interrupted(RunStopped):
    """The operator stopped the run with a signal (exit 128 + its number)."""

    def __init__(self, signum: int, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = 128 + signum
