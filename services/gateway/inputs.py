"""Checking what clients send before any gRPC call: JSON bodies, ids, asset names, query parameters."""

from __future__ import annotations

import functools
import json
import re
import sys
import unicodedata
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from services.common.ids import is_id
from services.gateway.errors import ApiError, invalid
from services.gateway.middleware import payload_too_large

MAX_PROMPT_CHARS = 2000
MAX_PARTS = 8
MAX_STYLE_CHARS = 80
MAX_QUERY_CHARS = 200
MAX_CURSOR_CHARS = 1000
MAX_IDEMPOTENCY_KEY_CHARS = 200

# What storage accepts as a file name (1-200 characters, no path separators, no NUL), kept a little
# stricter here so a name is always safe in a URL and a header.
_ASSET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$")
# Job event ids are Redis stream ids, e.g. `1700000000000-0`; checked here so a bad one is a 400
# before the event stream starts, not an error in the middle of it.
EVENT_ID_PATTERN = r"^[0-9]{1,20}-[0-9]{1,20}$"
_EVENT_ID = re.compile(EVENT_ID_PATTERN)
_VISIBLE_ASCII = re.compile(r"^[\x21-\x7e]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def is_blank(char: str) -> bool:
    """Whitespace, control, format and separator characters: what the generator calls blank."""
    category = unicodedata.category(char)
    return char.isspace() or category in ("Cc", "Cf") or category.startswith("Z")


@functools.lru_cache(maxsize=1)
def blank_ranges() -> tuple[tuple[int, int], ...]:
    """Every blank code point as inclusive ranges (computed once: it scans all of Unicode)."""
    ranges: list[tuple[int, int]] = []
    start: int | None = None
    for code in range(sys.maxunicode + 2):
        blank = code <= sys.maxunicode and is_blank(chr(code))
        if blank and start is None:
            start = code
        elif not blank and start is not None:
            ranges.append((start, code - 1))
            start = None
    return tuple(ranges)


@dataclass(frozen=True)
class StoryRequest:
    prompt: str
    parts: int  # 0: the generator's default
    style: str  # "": the generator's default


def _is_json_media_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def read_json_object(request: Request, max_bytes: int) -> dict[str, Any]:
    """The body as a JSON object: 415 unless it is declared JSON, 413 when too large, 400 when malformed."""
    content_type = request.headers.get("content-type", "")
    if not _is_json_media_type(content_type):
        raise ApiError(
            415, "unsupported_media_type", "Content-Type must be application/json (send the body as a JSON object)"
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise payload_too_large(max_bytes)
    try:
        value = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise invalid("body", "is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise invalid("body", f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(value, dict):
        raise invalid("body", "must be a JSON object")
    return value


def story_request(body: dict[str, Any], *, allow_extra: bool = False) -> StoryRequest:
    """``{"prompt": str, "parts"?: int, "style"?: str}``, each field checked, unknown fields refused (v1)."""
    if not allow_extra:
        for name in body:
            if name not in ("prompt", "parts", "style"):
                raise invalid(name, "unknown field (allowed: prompt, parts, style)")
    if "prompt" not in body or body["prompt"] is None:
        raise invalid("prompt", "is required")
    prompt = body["prompt"]
    if not isinstance(prompt, str):
        raise invalid("prompt", "must be a string")
    # Lengths are checked as sent (as the OpenAPI schema states them), then blanks are trimmed.
    if len(prompt) > MAX_PROMPT_CHARS:
        raise invalid("prompt", f"must be at most {MAX_PROMPT_CHARS} characters")
    if all(is_blank(char) for char in prompt):
        raise invalid("prompt", "must have words, not only blanks or control characters")
    prompt = prompt.strip()
    # An absent field takes the generator's default; an explicit null is a mistake, not a default.
    parts = 0
    if "parts" in body:
        given = body["parts"]
        if isinstance(given, float) and given.is_integer():
            given = int(given)  # JSON has one number type: 3.0 is the integer 3
        if isinstance(given, bool) or not isinstance(given, int):
            raise invalid("parts", f"must be a whole number from 1 to {MAX_PARTS}")
        parts = given
        if not 1 <= parts <= MAX_PARTS:
            raise invalid("parts", f"must be from 1 to {MAX_PARTS}")
    style = body.get("style", "")
    if not isinstance(style, str):
        raise invalid("style", "must be a string")
    if len(style) > MAX_STYLE_CHARS:
        raise invalid("style", f"must be at most {MAX_STYLE_CHARS} characters")
    if _CONTROL.search(style):
        raise invalid("style", "must not contain control characters")
    return StoryRequest(prompt=prompt, parts=parts, style=style.strip())


def idempotency_key(request: Request) -> str:
    if "idempotency-key" not in request.headers:
        return ""
    key = request.headers["idempotency-key"]
    if len(key) > MAX_IDEMPOTENCY_KEY_CHARS or not _VISIBLE_ASCII.match(key):
        raise invalid("Idempotency-Key", f"must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters")
    return key


def checked_id(value: str, field: str) -> str:
    if not is_id(value):
        raise invalid(field, "must be a lowercase UUID such as 0193c8f2-7d1e-7c3a-9b2e-3f4a5b6c7d8e")
    return value


def checked_asset_name(value: str) -> str:
    if not _ASSET_NAME.match(value) or ".." in value:
        raise invalid("name", "must be a file name such as text_0, image_0 or story.json")
    return value


def checked_event_id(value: str, field: str) -> str:
    if not _EVENT_ID.match(value):
        raise invalid(field, "must be an event id from this stream, such as 1700000000000-0")
    return value


def query_int(request: Request, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,6}", raw):
        raise invalid(name, f"must be a whole number from {minimum} to {maximum}")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise invalid(name, f"must be from {minimum} to {maximum}")
    return value


def query_text(request: Request, name: str, max_chars: int) -> str:
    value = request.query_params.get(name, "")
    if len(value) > max_chars:
        raise invalid(name, f"must be at most {max_chars} characters")
    if "\x00" in value:
        raise invalid(name, "must not contain NUL")
    return value
