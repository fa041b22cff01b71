"""The log lines on standard error, as text or JSON lines, and which libraries' lines show."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's extra fields."""

    STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in self.STANDARD})
        return json.dumps(entry, default=str)


class TextLogFormatter(logging.Formatter):
    """``LEVEL message key=value ...``: the extra fields after the message."""

    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(
            f"{k}={v}" for k, v in record.__dict__.items() if k not in JsonLogFormatter.STANDARD
        )
        return f"{record.levelname.lower()}: {record.getMessage()} {extra}".rstrip()


# The libraries whose log lines only ``--verbose`` shows: stamina's ``retry_scheduled`` on
# every read retry (the pipeline says itself when a read gives up), httpx's and httpcore's
# request and connection events, uvicorn's server lines.
LIBRARY_LOGGERS = ("stamina", "httpx", "httpcore", "uvicorn")


def configure_logging(log_format: str, *, verbose: bool = False) -> None:
    """The pipeline's info, warning and error lines to stderr, as text or JSON lines.

    The libraries' lines (``LIBRARY_LOGGERS``) go the same way, all of them with ``verbose``;
    without it only their errors, so that a retried read doesn't print stamina's warning.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter() if log_format == "json" else TextLogFormatter())
    levels = {"pipeline": logging.INFO} | {
        name: logging.DEBUG if verbose else logging.ERROR for name in LIBRARY_LOGGERS
    }
    for name, level in levels.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
