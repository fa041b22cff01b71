"""The Seam API client: the one module that knows HTTP.

Every call is ``POST <path>`` with a JSON body. Reads (``list``, ``get``) are retried on 429,
5xx and connection errors, honouring ``Retry-After``; errors become ``SeamError`` carrying
Seam's error type and message, the HTTP status and the ``seam-request-id``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Self

import httpx
import stamina

from pipeline.errors import SeamError, SeamUnavailableError
from pipeline.models import Device, Pagination
from pipeline.settings import SeamCredentials

ORACODE_FILTERS = {"device_type": "dormakaba_oracode_door", "manufacturer": "dormakaba_oracode"}
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# Callers pass an in-process transport (tests, sandbox) without importing httpx themselves.
Transport = httpx.AsyncBaseTransport


class RetryableRead(Exception):
    """Internal: a read that may succeed when sent again (429, 5xx, connection trouble)."""

    def __init__(self, error: SeamError, retry_after: float | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after


def _backoff(exc: Exception) -> bool | float:
    """stamina hook: retry retryable reads, waiting ``Retry-After`` seconds when Seam sent it."""
    if isinstance(exc, RetryableRead):
        return exc.retry_after if exc.retry_after is not None else True
    return False


class SeamClient:
    """An async Seam API client over one keep-alive ``httpx.AsyncClient``.

    ``transport`` lets tests drive an in-process server (``httpx.ASGITransport``).
    """

    def __init__(
        self,
        credentials: SeamCredentials,
        *,
        transport: Transport | None = None,
        timeout: float = 30.0,
        read_attempts: int = 6,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=credentials.endpoint,
            headers=credentials.auth_headers(),
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=10.0),
        )
        self._read_attempts = read_attempts

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.aclose()

    async def read(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a read-only request, retried on 429/5xx/connection errors; raises SeamError."""
        try:
            async for attempt in stamina.retry_context(
                on=_backoff, attempts=self._read_attempts, wait_max=60.0
            ):
                with attempt:
                    return await self._send_read(path, body)
        except RetryableRead as exc:
            raise exc.error from exc
        raise AssertionError("unreachable: stamina either returns or raises")

    async def _send_read(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.post(path, body)
        except SeamError as exc:
            if isinstance(exc, SeamUnavailableError) or exc.status in RETRYABLE_STATUS:
                raise RetryableRead(exc, exc.retry_after) from exc
            raise

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST once; returns the JSON body or raises SeamError / SeamUnavailableError."""
        try:
            response = await self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise SeamUnavailableError(
                f"no answer from {self._http.base_url}{path}: {type(exc).__name__}",
                error_type="connection_error",
            ) from exc
        return parse_response(response)

    async def list_devices(self, **filters: Any) -> AsyncIterator[Device]:
        """Every dormakaba Oracode door, following ``/devices/list`` cursor pagination."""
        body: dict[str, Any] = {**ORACODE_FILTERS, **filters}
        while True:
            page = await self.read("/devices/list", body)
            for raw in page.get("devices", []):
                yield Device.model_validate(raw)
            pagination = Pagination.model_validate(page.get("pagination") or {})
            if not (pagination.has_next_page and pagination.next_page_cursor):
                return
            body = {**body, "page_cursor": pagination.next_page_cursor}


def parse_response(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a 200, or the SeamError its error body describes."""
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
        error_type=str(error.get("type") or f"http_{response.status_code}"),
        status=response.status_code,
        request_id=request_id,
        retry_after=_retry_after(response),
    )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
