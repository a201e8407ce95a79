"""Checking a story request before it is queued: every message says what is wrong and what is allowed."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from services.common.errors import InvalidArgument

MAX_PROMPT_CHARS = 2000
MIN_PARTS = 1
MAX_PARTS = 8
MAX_STYLE_CHARS = 80
MAX_IDEMPOTENCY_KEY_CHARS = 200


@dataclass(frozen=True)
class StoryRequest:
    """A validated request: trimmed prompt, a part count in range, a style."""

    prompt: str
    parts: int
    style: str


def _is_blank(char: str) -> bool:
    # Control (Cc), format (Cf) and separator (Z*) characters carry no meaning on their own.
    category = unicodedata.category(char)
    return char.isspace() or category in ("Cc", "Cf") or category.startswith("Z")


def validate_request(prompt: str, parts: int, style: str, *, default_parts: int, default_style: str) -> StoryRequest:
    """The request with defaults applied, or `InvalidArgument` naming the field and the rule."""
    trimmed = prompt.strip()
    if not trimmed:
        raise InvalidArgument("prompt is empty: describe the story in 1 to 2000 characters")
    if all(_is_blank(char) for char in trimmed):
        raise InvalidArgument("prompt has only whitespace or control characters: describe the story in words")
    if len(trimmed) > MAX_PROMPT_CHARS:
        raise InvalidArgument(f"prompt is {len(trimmed)} characters long; at most {MAX_PROMPT_CHARS} are allowed")
    if parts == 0:
        parts = default_parts
    if not MIN_PARTS <= parts <= MAX_PARTS:
        raise InvalidArgument(f"parts must be between {MIN_PARTS} and {MAX_PARTS}, got {parts}")
    style = style.strip() or default_style
    if len(style) > MAX_STYLE_CHARS:
        raise InvalidArgument(f"style is {len(style)} characters long; at most {MAX_STYLE_CHARS} are allowed")
    if any(unicodedata.category(char) == "Cc" for char in style):
        raise InvalidArgument("style must not contain control characters")
    return StoryRequest(prompt=trimmed, parts=parts, style=style)


def validate_idempotency_key(key: str) -> str:
    """The key as given (empty for none), or `InvalidArgument` when it is too long or not printable."""
    if len(key) > MAX_IDEMPOTENCY_KEY_CHARS:
        raise InvalidArgument(f"idempotency_key is {len(key)} characters long; at most {MAX_IDEMPOTENCY_KEY_CHARS}")
    if any(not char.isprintable() for char in key):
        raise InvalidArgument("idempotency_key must contain printable characters only")
    return key
