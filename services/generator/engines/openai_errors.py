"""Sorting what the `openai` client raises into transient and permanent job failures."""

from __future__ import annotations

import email.utils
import time

import openai

from services.generator.failures import JobFailure, PermanentFailure, TransientFailure

_POLICY_CODES = {"content_policy_violation", "content_filter", "moderation_blocked", "safety_violation"}
_POLICY_WORDS = ("content policy", "safety system", "content_policy", "moderation", "not allowed by our safety")
MAX_RETRY_AFTER_SECONDS = 300.0


def retry_after_seconds(headers: object) -> float | None:
    """The server's `Retry-After` (or `retry-after-ms`) as seconds; None when absent or unreadable."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    millis = get("retry-after-ms")
    if millis:
        try:
            return min(max(float(millis) / 1000, 0.0), MAX_RETRY_AFTER_SECONDS)
        except ValueError:
            pass
    value = get("retry-after")
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_SECONDS)
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return min(max(email.utils.mktime_tz(parsed) - time.time(), 0.0), MAX_RETRY_AFTER_SECONDS)


def is_content_policy(exc: openai.APIStatusError) -> bool:
    text = (exc.message or "").lower()
    return (exc.code or "") in _POLICY_CODES or any(word in text for word in _POLICY_WORDS)


def failure_from(exc: openai.OpenAIError, what: str) -> JobFailure:
    """The job failure an `openai` exception stands for; `what` names the call ("text", "image")."""
    if isinstance(exc, openai.APITimeoutError):
        return TransientFailure(f"the {what} model did not answer in time", code="model_timeout")
    if isinstance(exc, openai.APIConnectionError):
        return TransientFailure(f"could not reach the {what} model server", code="model_unavailable")
    if isinstance(exc, openai.APIStatusError):
        status, detail = exc.status_code, _detail(exc)
        if status == 429:
            if exc.code == "insufficient_quota":
                return PermanentFailure(f"the {what} model's quota is used up: {detail}", code="model_quota")
            return TransientFailure(
                f"the {what} model is rate limited: {detail}",
                code="rate_limited",
                retry_after=retry_after_seconds(exc.response.headers),
            )
        if status >= 500 or status in (408, 409):
            return TransientFailure(
                f"the {what} model server failed ({status}): {detail}",
                code="model_unavailable",
                retry_after=retry_after_seconds(exc.response.headers),
            )
        if is_content_policy(exc):
            return PermanentFailure(f"the {what} model refused the request: {detail}", code="content_policy")
        if status in (401, 403):
            # The server's text may echo part of the key; say only what to check.
            return PermanentFailure(
                f"the {what} model server refused the API key ({status}); check OPENAI_API_KEY", code="model_auth"
            )
        if status == 404:
            return PermanentFailure(f"the {what} model was not found: {detail}", code="model_not_found")
        return PermanentFailure(f"the {what} model rejected the request ({status}): {detail}", code="model_rejected")
    if isinstance(exc, openai.APIError):
        # An error event inside a stream: the server gave up part-way, usually an overload.
        return TransientFailure(f"the {what} model stopped with an error: {exc.message}", code="model_unavailable")
    return PermanentFailure(f"the {what} model call failed: {type(exc).__name__}", code="model_error")


def _detail(exc: openai.APIStatusError) -> str:
    message = exc.message or ""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        message = body["message"]
    return " ".join(message.split())[:300]
