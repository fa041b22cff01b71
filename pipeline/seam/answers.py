"""What Seam's answers mean: the body of a 200 or the SeamError an error body describes, how
long a ``Retry-After`` may make us wait (and, ``read_retry_wait``, how long a failed read waits
before its next attempt, within an apply run's patience), the guard that makes every listing
end, and the records of a request the client hands back (``Exchange``, ``CreatedCode``). No
HTTP is sent here; ``pipeline.seam.client`` sends it.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from pipeline.common.errors import SeamError, SeamUnavailableError
from pipeline.seam.models import AccessCode, Pagination

log = logging.getLogger(__name__)
# The longest single wait Seam can make us take (``Retry-After``). Seam documents no
# Retry-After at all and its only documented limits are per minute (10 creates per door), so a
# wait over two of those windows says nothing about the limits and would stall a nightly run:
# after 120 s we ask again (and a read gives up after its attempts).
MAX_WAIT_SECONDS = 120.0
# A listing longer than this is broken, not big: at /devices/list's default 500 per page it
# is 5 million doors, and /access_codes/list pages hold up to 55,000 codes.
MAX_PAGES = 10_000
# Seam refuses a request it can't authenticate or authorise; what to check then.
KEY_REFUSED_STATUS = frozenset({401, 403})
KEY_HINT = "check SEAM_API_KEY (or SEAM_PERSONAL_ACCESS_TOKEN and SEAM_WORKSPACE_ID)"
# The ``what``s clamp_wait has warned about, and whether the give-up time cut them (once each
# per process).
_clamped: set[tuple[str, bool]] = set()


@dataclass(frozen=True)
class Exchange:
    """One request and its answer, as the event log keeps it (never any header: no secrets)."""

    path: str
    body: dict[str, Any]
    status: int | None
    request_id: str | None
    error_type: str | None
    message: str | None
    seconds: float


@dataclass(frozen=True)
class CreatedCode:
    """A successful ``/access_codes/create``: the code and the request that made it."""

    access_code: AccessCode
    request_id: str | None


class RetryableRead(Exception):
    """Internal: a read of ``path`` that may succeed when sent again (429, 5xx, connection
    trouble); ``retry_after`` as Seam sent it."""

    def __init__(self, error: SeamError, retry_after: float | None, path: str = "a read") -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after
        self.path = path


def clamp_wait(seconds: float | None, *, what: str, most: float | None = None) -> float | None:
    """``seconds`` capped to ``MAX_WAIT_SECONDS``, and to ``most`` when given (what is left
    before an apply run gives up); None stays None: no wait was asked for.

    ``what`` names the wait in the warning that is logged the first time a wait of that name is
    cut in this process (once, not on every 429 of a long run), saying the real bound.
    """
    cap = MAX_WAIT_SECONDS if most is None else min(MAX_WAIT_SECONDS, max(0.0, most))
    if seconds is None or seconds <= cap:
        return seconds
    by_give_up = cap < MAX_WAIT_SECONDS
    if (what, by_give_up) not in _clamped:
        _clamped.add((what, by_give_up))
        then = "; then the run gives up (--give-up-after)" if by_give_up else ""
        log.warning(
            f"{what} asked for a wait of {seconds:g} s; waiting {cap:g} s at most{then}",
            extra={"asked": seconds, "cap": cap},
        )
    return cap


@dataclass
class PageCursors:
    """The page cursors one listing (``path``) has followed; ``follow`` refuses the one that
    would make it never end."""

    path: str
    followed: set[str] = field(default_factory=set)

    def follow(self, page: dict[str, Any]) -> str | None:
        """The cursor of the page after ``page``, None when it is the last.

        Raises SeamError when the listing would not end: a cursor it has already followed, or
        more than ``MAX_PAGES`` pages.
        """
        pagination = Pagination.model_validate(page.get("pagination") or {})
        cursor = pagination.next_page_cursor
        if not (pagination.has_next_page and cursor):
            return None
        pages = len(self.followed) + 1
        if cursor in self.followed:
            shown = cursor if len(cursor) <= 40 else cursor[:37] + "..."
            raise SeamError(
                f"{self.path} sent page cursor {shown!r} a second time after {pages} pages:"
                " the listing would never end",
                error_type="repeated_page_cursor",
                hint="rerun later; if it happens again, pass this line on to Seam support",
            )
        if pages >= MAX_PAGES:
            raise SeamError(
                f"{self.path} still had a next page after {MAX_PAGES:,} pages: the listing"
                " would never end",
                error_type="too_many_pages",
                hint="rerun later; if it happens again, pass this line on to Seam support",
            )
        self.followed.add(cursor)
        return cursor


def parse_response(
    response: httpx.Response, *, path: str = "", endpoint: str = ""
) -> dict[str, Any]:
    """The JSON body of a 200, or the SeamError its error body describes (its ``retry_after``
    as Seam sent it: whoever waits clamps it, ``clamp_wait``, knowing how long it may wait;
    ``path`` names the request in the warning; ``endpoint``, where it was sent, in the hint of
    a refusal that isn't Seam's)."""
    request_id = response.headers.get("seam-request-id")
    try:
        payload = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        payload = None
    if response.status_code == 200 and isinstance(payload, dict):
        return payload
    error = payload.get("error") if isinstance(payload, dict) else None
    error = error if isinstance(error, dict) else {}
    kind = SeamUnavailableError if response.status_code >= 500 or payload is None else SeamError
    raise kind(
        str(error.get("message") or f"HTTP {response.status_code} without a Seam error body"),
        hint=_refusal_hint(response.status_code, endpoint, is_seams=bool(error)),
        error_type=str(error.get("type") or f"http_{response.status_code}"),
        status=response.status_code,
        request_id=request_id,
        retry_after=_retry_after(response),
        data=error.get("data") if isinstance(error.get("data"), dict) else None,
    )


def _refusal_hint(status: int, endpoint: str, *, is_seams: bool) -> str | None:
    """What to check when a request is refused (401, 403): the key, when Seam's own error body
    says so; else first the endpoint, which may not be Seam's API at all (a proxy's login
    page, another service on that port). None for other answers."""
    if status not in KEY_REFUSED_STATUS:
        return None
    if is_seams:
        return KEY_HINT
    return (
        f"an answer {status} without Seam's error body may not come from Seam's API: check"
        f" SEAM_ENDPOINT (now {endpoint}), then SEAM_API_KEY"
    )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


# stamina's longest backoff between two attempts of a read (seconds), and its first.
READ_WAIT_MAX = 60.0
READ_WAIT_INITIAL = 0.1


class Patience(Protocol):
    """How long an apply run may still wait (``pipeline.apply.policy.ProgressWatch``): a read
    that keeps failing is no progress, and no wait outlasts what is left before it gives up."""

    def remaining(self) -> float:
        """Seconds left before the run gives up."""
        ...

    def bound(self, wait: float) -> float:
        """``wait`` cut to what is left."""
        ...

    def read_failed(self, exc: SeamError) -> None:
        """A read got no usable answer: no progress since, unless the stall began earlier."""
        ...

    def read_answered(self) -> None:
        """A read got its answer: a stall that only reads made is over."""
        ...

    def check_before_send(self) -> None:
        """Raise RunStopped when the run must give up rather than send again: nothing is left
        before it gives up (a wait cut to what was left has just ended)."""
        ...


def read_retry_wait(
    exc: Exception, *, attempt: int = 1, patience: Patience | None = None
) -> bool | float:
    """stamina hook: retry retryable reads, waiting ``Retry-After`` seconds when Seam sent it.

    stamina does not cap a wait the hook returns by its ``wait_max``, so the wait is clamped
    here: ``Retry-After: 86400`` must not stop a read for a day. With a ``patience`` (an
    apply run's), the failed read is no progress, and no wait is longer than what is left
    before the run gives up: stamina's own backoff after ``attempt`` attempts, when it could
    be longer, is computed here to be cut.
    """
    if not isinstance(exc, RetryableRead):
        return False
    what = f"Seam's Retry-After on {exc.path}"
    if patience is None:
        wait = clamp_wait(exc.retry_after, what=what)
        return wait if wait is not None else True
    patience.read_failed(exc.error)
    most = patience.remaining()
    if exc.retry_after is not None:
        clamp_wait(exc.retry_after, what=what, most=most)  # says the real bound, once
        return patience.bound(min(exc.retry_after, MAX_WAIT_SECONDS))
    if most >= READ_WAIT_MAX:
        return True  # stamina's own backoff, never longer than READ_WAIT_MAX
    return patience.bound(
        min(READ_WAIT_MAX, READ_WAIT_INITIAL * 2 ** (attempt - 1) + random.random())
    )
