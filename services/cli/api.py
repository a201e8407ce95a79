"""A small client for the gateway's REST API (v1), used by the `dreamforge` command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx


class ApiError(Exception):
    """The gateway answered with an error, or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class ServerEvent:
    """One Server-Sent Event: its type, id and parsed JSON data."""

    event: str
    id: str
    data: dict[str, Any]


class DreamForgeApi:
    def __init__(self, base_url: str, *, timeout: float = 30.0, transport: httpx.BaseTransport | None = None) -> None:
        self._base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self._base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> DreamForgeApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise ApiError(f"cannot reach DreamForge at {self._base_url} (is `make up` running?)") from None
        except httpx.TimeoutException:
            raise ApiError(f"DreamForge at {self._base_url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise ApiError(f"request to {self._base_url} failed: {exc}") from None
        if response.status_code >= 400:
            raise _error_from(response)
        return response

    def submit(self, prompt: str, *, parts: int | None, style: str | None, idempotency_key: str | None) -> Any:
        body: dict[str, Any] = {"prompt": prompt}
        if parts is not None:
            body["parts"] = parts
        if style is not None:
            body["style"] = style
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._request("POST", "/api/v1/stories", json=body, headers=headers).json()["job"]

    def job(self, job_id: str) -> Any:
        return self._request("GET", f"/api/v1/jobs/{job_id}").json()

    def cancel(self, job_id: str) -> Any:
        response = self._request("DELETE", f"/api/v1/jobs/{job_id}")
        return response.json() if response.content else {}

    def stories(self, *, limit: int = 20, cursor: str | None = None, query: str | None = None) -> Any:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        if query:
            params["q"] = query
        return self._request("GET", "/api/v1/stories", params=params).json()

    def story(self, story_id: str) -> Any:
        return self._request("GET", f"/api/v1/stories/{story_id}").json()

    def asset(self, url: str) -> tuple[bytes, str]:
        """The bytes and content type of an asset, by the URL the API gave for it."""
        response = self._request("GET", url)
        return response.content, response.headers.get("content-type", "application/octet-stream")

    def delete_story(self, story_id: str) -> None:
        self._request("DELETE", f"/api/v1/stories/{story_id}")

    def reindex(self) -> Any:
        return self._request("POST", "/api/v1/admin/reindex").json()

    def events(self, job_id: str, *, last_event_id: str | None = None) -> Iterator[ServerEvent]:
        """The job's events as they happen; ends after `done` or `failed` (or when the server closes)."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        try:
            with self._client.stream(
                "GET", f"/api/v1/jobs/{job_id}/events", headers=headers, timeout=httpx.Timeout(30.0, read=120.0)
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error_from(response)
                yield from _parse_sse(response.iter_lines())
        except httpx.ConnectError:
            raise ApiError(f"cannot reach DreamForge at {self._base_url} (is `make up` running?)") from None
        except httpx.TimeoutException:
            raise ApiError("the event stream went quiet for too long") from None


def _parse_sse(lines: Iterator[str]) -> Iterator[ServerEvent]:
    event, event_id, data = "message", "", list[str]()
    for line in lines:
        if line == "":
            if data:
                text = "\n".join(data)
                try:
                    parsed = json.loads(text)
                except ValueError:
                    parsed = {"text": text}
                yield ServerEvent(event, event_id, parsed if isinstance(parsed, dict) else {"value": parsed})
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue  # a heartbeat comment
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "id":
            event_id = value
        elif name == "data":
            data.append(value)


def _error_from(response: httpx.Response) -> ApiError:
    message = f"HTTP {response.status_code}"
    code = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = str(error.get("message") or message)
            code = str(error.get("code") or "")
        elif "message" in body:
            message = str(body["message"])
    return ApiError(message, status=response.status_code, code=code)
