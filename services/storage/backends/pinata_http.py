"""Talking HTTP to Pinata: bounded retries with backoff, `Retry-After`, the `data` envelope, error mapping.

Everything here knows HTTP and Pinata's conventions but nothing of groups or
files; `pinata.py` builds the Files API on top of it. Every failure leaves as a
`services.common.errors` exception whose message names the call that failed
and never contains the JWT.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from services.common.config import Secret
from services.common.errors import (
    DeadlineExceeded,
    DreamForgeError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

# Transport failures after which the request certainly never reached Pinata's application.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Transport failures worth another try for a request that is safe to repeat.
_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_ERROR_TEXT_LIMIT = 300


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before giving up: attempts in all, exponential backoff with jitter, a cap on waits."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 20.0
    # A `Retry-After` longer than this is cut down to it: a request should not hang for minutes.
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("delays must not be negative")

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (1-based): half fixed, half random ("equal jitter")."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date); None if absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def error_text(response: httpx.Response) -> str:
    """Pinata's own words for an error, read defensively from whichever body shape it sent."""
    raw = response.text.strip()
    text = raw
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error", body.get("message"))
        if isinstance(error, str):
            text = error
        elif isinstance(error, dict):
            reason = error.get("reason") or error.get("code")
            details = error.get("details") or error.get("message")
            text = ": ".join(str(part) for part in (reason, details) if part) or raw
        elif isinstance(body.get("details"), str):
            text = body["details"]
    text = " ".join(text.split())
    if len(text) > _ERROR_TEXT_LIMIT:
        text = text[: _ERROR_TEXT_LIMIT - 1] + "…"
    return text or f"HTTP {response.status_code} with an empty body"


def unwrap(response: httpx.Response, what: str) -> Any:
    """The JSON payload inside Pinata's `{"data": ...}` envelope (or the bare body when a route sends none)."""
    try:
        body = response.json()
    except ValueError:
        raise Unavailable(f"Pinata answered {what} with a body that is not JSON") from None
    if isinstance(body, dict) and "data" in body:
        return body["data"]
    return body


class PinataHttp:
    """One httpx client plus the retry and error rules every Pinata call shares."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        jwt: Secret,
        *,
        retry: RetryPolicy,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not jwt:
            raise ValueError("a Pinata JWT is required")
        self.client = client
        self._jwt = jwt
        self.retry = retry
        self._sleep = sleep
        self.clock = clock
        # When Pinata last answered an API call with success (clock time); health checks lean on it.
        self.last_success = -math.inf

    def __repr__(self) -> str:
        return f"PinataHttp(jwt={self._jwt!r}, retry={self.retry!r})"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._jwt.reveal()}"}

    def scrub(self, text: str) -> str:
        """`text` with the JWT masked, in case an upstream error message ever echoes it."""
        secret = self._jwt.reveal()
        return text.replace(secret, "**********") if secret else text

    async def call(
        self,
        method: str,
        url: str,
        what: str,
        *,
        repeatable: bool = True,
        attempts: int | None = None,
        not_found: str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        build_files: Callable[[], dict[str, Any]] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one API request, retrying what is safe to retry, and return the 2xx response.

        `what` names the call in messages ("POST /v3/groups/public"). `repeatable=False`
        marks a request that creates something (an upload, a new group): it is retried
        only when Pinata certainly never processed it (429, or no connection made),
        because repeating it after a 5xx or a dropped connection may create a duplicate.
        `build_files` is called once per attempt so a file body is sent from its start again.
        """
        request_headers = {**(headers or {}), **self.auth_headers()}
        limit = attempts or self.retry.max_attempts
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self.client.request(
                    method,
                    url,
                    headers=request_headers,
                    params=params,
                    json=json_body,
                    files=build_files() if build_files else None,
                    data=form,
                )
            except httpx.TransportError as exc:
                retryable = isinstance(exc, _NOT_SENT) or (repeatable and isinstance(exc, _TRANSIENT))
                if not retryable or attempt >= limit:
                    raise self.transport_failure(exc, what, attempt, repeatable) from exc
                await self._wait(attempt, what, _describe(exc), None)
                continue
            if response.is_success:
                self.last_success = self.clock()
                return response
            status = response.status_code
            retryable = status == 429 or (repeatable and status >= 500)
            if not retryable or attempt >= limit:
                raise self.status_failure(response, what, attempt, repeatable, not_found)
            await self._wait(attempt, what, f"HTTP {status}", response.headers.get("Retry-After"))

    @asynccontextmanager
    async def open_stream(
        self,
        url: str,
        what: str,
        *,
        headers: Mapping[str, str],
        not_found: str,
        refused: Callable[[httpx.Response], Exception] | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """A streaming GET (no auth header: gateways), retried until the response headers arrive.

        The body is left unread for the caller to iterate; 401/403 become `refused(response)`
        when given, so the caller can say which gateway setting to check.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                request = self.client.build_request("GET", url, headers=dict(headers))
                response = await self.client.send(request, stream=True)
            except httpx.TransportError as exc:
                if not isinstance(exc, _TRANSIENT) or attempt >= self.retry.max_attempts:
                    raise self.transport_failure(exc, what, attempt, True) from exc
                await self._wait(attempt, what, _describe(exc), None)
                continue
            try:
                if response.is_success or response.status_code == 416:
                    yield response
                    return
                await response.aread()
            finally:
                await response.aclose()
            status = response.status_code
            if (status != 429 and status < 500) or attempt >= self.retry.max_attempts:
                if status in (401, 403) and refused is not None:
                    raise refused(response)
                raise self.status_failure(response, what, attempt, True, not_found)
            await self._wait(attempt, what, f"HTTP {status}", response.headers.get("Retry-After"))

    async def _wait(self, attempt: int, what: str, reason: str, retry_after: str | None) -> None:
        asked = parse_retry_after(retry_after)
        delay = min(asked, self.retry.max_retry_after) if asked is not None else self.retry.backoff(attempt)
        logger.warning(
            "Pinata %s failed (%s); attempt %d of %d, retrying in %.2f s%s",
            what,
            reason,
            attempt,
            self.retry.max_attempts,
            delay,
            " as Retry-After asks" if asked is not None else "",
        )
        await self._sleep(delay)

    def transport_failure(self, exc: httpx.TransportError, what: str, attempt: int, repeatable: bool) -> Exception:
        tries = _attempts(attempt)
        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            return DeadlineExceeded(self.scrub(f"Pinata did not answer {what} in time ({_describe(exc)}; {tries})"))
        if not repeatable and not isinstance(exc, _NOT_SENT):
            return Unavailable(
                self.scrub(
                    f"the connection to Pinata broke during {what} ({_describe(exc)}); not retried because "
                    "Pinata may have stored it already and a repeat could create a duplicate"
                )
            )
        return Unavailable(self.scrub(f"could not reach Pinata for {what} ({_describe(exc)}; {tries})"))

    def status_failure(
        self,
        response: httpx.Response,
        what: str,
        attempt: int,
        repeatable: bool,
        not_found: str | None,
    ) -> DreamForgeError:
        status = response.status_code
        detail = self.scrub(error_text(response))
        if status == 401:
            return Unauthenticated(
                f"Pinata refused the JWT ({what} answered 401: {detail}); check PINATA_JWT: it must be the JWT "
                "of an API key that exists and is not revoked"
            )
        if status == 403:
            return PermissionDenied(
                f"Pinata refused {what} (403: {detail}); the API key in PINATA_JWT lacks a permission: it needs "
                "the scopes org:files:read, org:files:write, org:groups:read and org:groups:write (or admin), "
                "and the private network needs a plan that includes it"
            )
        if status == 404:
            return NotFound(not_found or f"Pinata has nothing at {what} ({detail})")
        if status == 429:
            return Unavailable(f"Pinata kept rate-limiting {what} (429: {detail}; {_attempts(attempt)})")
        if status >= 500:
            if not repeatable:
                return Unavailable(
                    f"Pinata failed {what} ({status}: {detail}); not retried because Pinata may have stored it "
                    "already and a repeat could create a duplicate"
                )
            return Unavailable(f"Pinata failed {what} ({status}: {detail}; {_attempts(attempt)})")
        if status in (400, 413, 414, 422):
            return InvalidArgument(f"Pinata rejected {what} ({status}: {detail})")
        return FailedPrecondition(f"Pinata refused {what} ({status}: {detail})")


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"


def _describe(exc: httpx.TransportError) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
