"""The Seam API client: the one module that sends HTTP (what the answers mean is ``answers``).

Every call is ``POST <path>`` with a JSON body. Reads (``list``, ``get``) are retried on 429,
5xx and connection errors, honouring ``Retry-After`` up to ``MAX_WAIT_SECONDS`` (and, in an
apply run, up to what is left before it gives up); errors become
``SeamError`` carrying Seam's error type and message, the HTTP status and the
``seam-request-id``.

Every request ends: it has a total deadline (``request_timeout``, sending and the whole answer,
however slowly the bytes come), no wait Seam asks for is longer than ``MAX_WAIT_SECONDS``, and a
listing stops on a page cursor it has already followed or after ``MAX_PAGES`` pages.

A create is sent exactly once per call and never retried here: Seam has no idempotency key,
so only the caller (who can look for the code first) may decide to send it again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Self

import anyio
import httpx
import stamina
from pydantic import ValidationError

from pipeline import __version__
from pipeline.common.endpoints import check_endpoint
from pipeline.common.errors import SeamError, SeamUnavailableError
from pipeline.common.settings import DEFAULT_ENDPOINT, SeamCredentials, first_problem
from pipeline.seam.answers import (
    MAX_WAIT_SECONDS,
    READ_WAIT_MAX,
    CreatedCode,
    Exchange,
    PageCursors,
    Patience,
    RetryableRead,
    clamp_wait,
    parse_response,
    read_retry_wait,
)
from pipeline.seam.models import AccessCode, Device

# Names other modules import from here (the answers' types live in ``answers``).
__all__ = [
    "DEFAULT_REQUEST_TIMEOUT",
    "MAX_WAIT_SECONDS",
    "CreatedCode",
    "Exchange",
    "SeamClient",
    "Transport",
    "clamp_wait",
    "parse_response",
]

log = logging.getLogger(__name__)
ORACODE_FILTERS = {"device_type": "dormakaba_oracode_door", "manufacturer": "dormakaba_oracode"}
PRODUCTION_HOST = httpx.URL(DEFAULT_ENDPOINT).host
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# What a read is for, in the line that says it failed (the doors' listing is how every
# command that talks to Seam starts).
READS = {
    "/devices/list": "the doors could not be listed",
    "/access_codes/list": "the doors' codes could not be listed",
    "/events/list": "Seam's events could not be listed",
    "/workspaces/get": "the API key's workspace could not be asked for",
}
# A request's answer must be complete within this (``--request-timeout``), not merely keep
# trickling: a body sent one byte every 20 s never trips a per-read timeout.
DEFAULT_REQUEST_TIMEOUT = 30.0
# Callers pass an in-process transport (tests, sandbox) without importing httpx themselves.
Transport = httpx.AsyncBaseTransport


def talking_to(endpoint: httpx.URL) -> str:
    """The line that says where a client's requests go: Seam's production API, or another
    endpoint (the sandbox, a proxy). Never holds credentials: an endpoint with any is refused."""
    if endpoint.host == PRODUCTION_HOST:
        return f"talking to Seam at {endpoint}"
    return f"talking to {endpoint} (not Seam's production endpoint)"


class SeamClient:
    """An async Seam API client over one keep-alive ``httpx`` connection pool.

    Requests go straight to the transport: the client layer of ``httpx.AsyncClient`` (cookies,
    redirects, auth flows, URL merging) does nothing Seam needs and costs a quarter of each
    request's CPU. ``transport`` lets tests drive an in-process server (``httpx.ASGITransport``).

    ``timeout`` bounds each connect, write and read; ``request_timeout`` bounds a whole request
    (waiting for a connection, sending, and reading the answer to its last byte);
    ``patience`` (an apply run's) counts a read that keeps failing as no progress, bounds
    each wait before a read's next attempt by what is left before the run gives up, and
    stops the read (RunStopped) rather than send it again once nothing is left. Raises
    ConfigError for credentials that can't make a request (a malformed key, an endpoint that
    holds a user name or password).
    """

    def __init__(
        self,
        credentials: SeamCredentials,
        *,
        transport: Transport | None = None,
        timeout: float = 30.0,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        read_attempts: int = 6,
        max_connections: int = 8,
        pace: Callable[[], Awaitable[None]] | None = None,
        observe: Callable[[Exchange], None] | None = None,
        patience: Patience | None = None,
    ) -> None:
        self._headers = {
            **credentials.auth_headers(),
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": f"oracode-pipeline/{__version__}",
        }
        check_endpoint(credentials.endpoint, "the Seam endpoint")
        self._endpoint = httpx.URL(credentials.endpoint)
        # Only a client on the network says where it goes: an in-process transport goes nowhere.
        self._says_where = transport is None
        self._urls: dict[str, httpx.URL] = {}
        self._transport = transport or httpx.AsyncHTTPTransport(
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            )
        )
        self._timeout = httpx.Timeout(timeout, connect=10.0).as_dict()
        self._request_timeout = request_timeout
        self._read_attempts = read_attempts
        self._pace = pace
        self._observe = observe
        self._patience = patience
        self.requests = 0  # requests sent (each read attempt counts)

    @property
    def endpoint(self) -> str:
        """Where the requests go (``SEAM_ENDPOINT``'s URL; never holds credentials)."""
        return str(self._endpoint)

    async def __aenter__(self) -> Self:
        if self._says_where:
            log.info(talking_to(self._endpoint))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._transport.aclose()

    async def read(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a read-only request, retried on 429/5xx/connection errors; raises SeamError.

        Once the attempts are spent, the last error is raised with a hint that says how many
        were made (the run stops on it: exit 3).
        """
        attempts = 0
        patience = self._patience

        def retry_on(exc: Exception) -> bool | float:
            return read_retry_wait(exc, attempt=attempts, patience=patience)

        try:
            async for attempt in stamina.retry_context(
                on=retry_on, attempts=self._read_attempts, wait_max=READ_WAIT_MAX
            ):
                with attempt:
                    attempts += 1
                    if attempts > 1 and patience is not None:
                        patience.check_before_send()
                    answer = await self._send_read(path, body)
                    if patience is not None:
                        patience.read_answered()
                    return answer
        except RetryableRead as exc:
            error = exc.error
            raise type(error)(
                error.message,
                error_type=error.error_type,
                status=error.status,
                request_id=error.request_id,
                retry_after=error.retry_after,
                data=error.data,
                hint=self._read_hint(path, attempts, error),
            ) from exc
        raise AssertionError("unreachable: stamina either returns or raises")

    def _read_hint(self, path: str, attempts: int, error: SeamError) -> str:
        """What to do about a read that failed ``attempts`` times: a connection never made
        (nothing listening, an unknown host) is most often a wrong endpoint."""
        if error.error_type == "connect_failed":
            what = READS.get(path, f"{path} could not be sent")
            return (
                f"{what}: {attempts} attempts in a row found no connection; check SEAM_ENDPOINT"
                f" (now {self._endpoint}) and the network, then rerun"
            )
        return f"{path} failed {attempts} times in a row; rerun later"

    async def _send_read(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.post(path, body)
        except SeamError as exc:
            if isinstance(exc, SeamUnavailableError) or exc.status in RETRYABLE_STATUS:
                raise RetryableRead(exc, exc.retry_after, path) from exc
            raise

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST once; returns the JSON body or raises SeamError / SeamUnavailableError."""
        payload, _ = await self._exchange(path, body)
        return payload

    async def _exchange(
        self,
        path: str,
        body: dict[str, Any],
        *,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[dict[str, Any], str | None]:
        if self._pace is not None:
            await self._pace()
        if before_send is not None:
            await before_send()
        started = time.perf_counter()
        self.requests += 1
        try:
            url = self._url(path)
            try:
                with anyio.fail_after(self._request_timeout):
                    response = await self._send(url, body)
            except TimeoutError as exc:
                # The request may have been read and acted on: an unknown outcome.
                raise SeamUnavailableError(
                    f"no whole answer from {url} within {self._request_timeout:g} s",
                    error_type="timeout",
                ) from exc
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # A connection that was never made carried no request: that outcome is known.
                # The OS's reason (refused, unknown host) is what tells a wrong SEAM_ENDPOINT.
                raise SeamUnavailableError(
                    f"could not connect to {url}: {exc or type(exc).__name__}",
                    error_type="connect_failed",
                ) from exc
            except httpx.HTTPError as exc:
                raise SeamUnavailableError(
                    f"no answer from {url}: {type(exc).__name__}", error_type="connection_error"
                ) from exc
            payload = parse_response(response, path=path, endpoint=str(self._endpoint))
        except SeamError as exc:
            self._record(path, body, started, exc.status, exc.request_id, exc)
            raise
        request_id = response.headers.get("seam-request-id")
        self._record(path, body, started, response.status_code, request_id, None)
        return payload, request_id

    def _url(self, path: str) -> httpx.URL:
        """The endpoint with ``path`` appended (after any path the endpoint has)."""
        url = self._urls.get(path)
        if url is None:
            url = self._endpoint.copy_with(path=self._endpoint.path.rstrip("/") + path)
            self._urls[path] = url
        return url

    async def _send(self, url: httpx.URL, body: dict[str, Any]) -> httpx.Response:
        """POST ``body`` as JSON through the transport; the answer's body read in full."""
        request = httpx.Request(
            "POST",
            url,
            headers=self._headers,
            content=json.dumps(body).encode(),
            extensions={"timeout": self._timeout},
        )
        response = await self._transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    def _record(
        self,
        path: str,
        body: dict[str, Any],
        started: float,
        status: int | None,
        request_id: str | None,
        error: SeamError | None,
    ) -> None:
        if self._observe is None:
            return
        self._observe(
            Exchange(
                path=path,
                body=body,
                status=status,
                request_id=request_id,
                error_type=error.error_type if error else None,
                message=error.message if error else None,
                seconds=time.perf_counter() - started,
            )
        )

    async def create_access_code(
        self,
        body: dict[str, Any],
        *,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> CreatedCode:
        """Send one ``/access_codes/create``, once: never retried, whatever happens.
        ``before_send`` is awaited once the global pace lets the request go, just before it
        leaves (the moment its outcome may start to exist).

        Raises SeamUnavailableError when the outcome is unknown (timeout, connection lost, 5xx,
        an answer that isn't the expected JSON): the code may or may not exist. Raises SeamError
        for Seam's refusals (4xx, including 429), after which no code exists.
        """
        payload, request_id = await self._exchange(
            "/access_codes/create", body, before_send=before_send
        )
        try:
            code = AccessCode.model_validate(payload.get("access_code"))
        except ValidationError as exc:
            raise SeamUnavailableError(
                f"/access_codes/create answered 200 without a usable access_code: "
                f"{first_problem(exc)}",
                error_type="malformed_answer",
                status=200,
                request_id=request_id,
            ) from exc
        return CreatedCode(access_code=code, request_id=request_id)

    async def workspace_id(self) -> str:
        """The Seam workspace the key acts in (``/workspaces/get``). Raises SeamError, and
        SeamUnavailableError for an answer that names none."""
        answer = await self.read("/workspaces/get", {})
        workspace = answer.get("workspace")
        workspace_id = workspace.get("workspace_id") if isinstance(workspace, dict) else None
        if not isinstance(workspace_id, str) or not workspace_id.strip():
            raise SeamUnavailableError(
                "/workspaces/get answered 200 without a workspace_id",
                error_type="malformed_answer",
                status=200,
                hint="rerun later; if it happens again, pass this line on to Seam support",
            )
        return workspace_id

    async def list_access_codes(
        self, device_id: str, *, search: str | None = None
    ) -> list[AccessCode]:
        """Every code on a door (``search``: partial match on name, code or id), all pages."""
        body: dict[str, Any] = {"device_id": device_id}
        if search is not None:
            body["search"] = search
        return [
            AccessCode.model_validate(raw)
            async for raw in self._pages("/access_codes/list", body, "access_codes")
        ]

    async def list_access_codes_by_ids(self, access_code_ids: Sequence[str]) -> list[AccessCode]:
        """The codes with these ids, on whatever doors (all pages of one list); a code Seam
        doesn't have is simply not in the answer."""
        body: dict[str, Any] = {"access_code_ids": list(access_code_ids)}
        return [
            AccessCode.model_validate(raw)
            async for raw in self._pages("/access_codes/list", body, "access_codes")
        ]

    async def list_events(
        self,
        *,
        since: str,
        event_types: Sequence[str] | None = None,
        access_code_ids: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """One ``/events/list``: the events after ``since`` (an ISO instant), at most ``limit``
        (Seam's default: 500), as Seam sends them (``event_id``, ``event_type``,
        ``access_code_id``, ``occurred_at``, and per type more, e.g. ``code``). Seam gives this
        list no cursor and documents no order: a caller that wants more moves ``since``.
        ``access_code_ids`` takes at most 100 ids (Seam's limit on that filter)."""
        body: dict[str, Any] = {"since": since}
        if event_types is not None:
            body["event_types"] = list(event_types)
        if access_code_ids is not None:
            body["access_code_ids"] = list(access_code_ids)
        if limit is not None:
            body["limit"] = limit
        page = await self.read("/events/list", body)
        events = page.get("events")
        return (
            [event for event in events if isinstance(event, dict)]
            if isinstance(events, list)
            else []
        )

    async def list_devices(self, **filters: Any) -> AsyncIterator[Device]:
        """Every dormakaba Oracode door, following ``/devices/list`` cursor pagination."""
        async for raw in self._pages("/devices/list", {**ORACODE_FILTERS, **filters}, "devices"):
            yield Device.model_validate(raw)

    async def _pages(
        self, path: str, body: dict[str, Any], key: str
    ) -> AsyncIterator[dict[str, Any]]:
        """The items under ``key`` of every page of a cursor-paginated list.

        Raises SeamError when the listing would not end: a cursor it has already followed, or
        more than ``MAX_PAGES`` pages.
        """
        cursors = PageCursors(path)
        while True:
            page = await self.read(path, body)
            for raw in page.get(key, []):
                yield raw
            cursor = cursors.follow(page)
            if cursor is None:
                return
            body = {**body, "page_cursor": cursor}
