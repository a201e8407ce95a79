"""What callers may name things: story ids, titles, asset names, content types, client tokens.

Every check raises `InvalidArgument` with a message that says what is wrong, so the
gateway can show it as is.
"""

from __future__ import annotations

import re

from services.common.errors import InvalidArgument
from services.common.ids import is_id

MANIFEST_NAME = "story.json"
MAX_TITLE_CHARS = 200
MAX_ASSET_NAME_CHARS = 200
MAX_CONTENT_TYPE_CHARS = 200
MAX_CLIENT_TOKEN_CHARS = 200
MAX_QUERY_CHARS = 200
DEFAULT_CONTENT_TYPE = "application/octet-stream"

# The original app's part files: `text_0`, `image_0`, ...
_PART_FILE = re.compile(r"^(text|image)_(\d{1,6})$")
_CONTENT_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+(\s*;.*)?$")


def _has_control(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def check_story_id(story_id: str) -> str:
    """The canonical (lowercase) form of a story id; `InvalidArgument` unless it is a UUID."""
    if not story_id:
        raise InvalidArgument("story_id is required")
    normalised = story_id.strip().lower()
    if not is_id(normalised):
        raise InvalidArgument(f"story_id must be a UUID like 0193b1c2-...; got {story_id[:80]!r}")
    return normalised


def check_title(title: str) -> str:
    """A title stripped of surrounding space: 1-200 characters, no control characters."""
    stripped = title.strip()
    if not stripped:
        raise InvalidArgument("title must not be empty")
    if len(stripped) > MAX_TITLE_CHARS:
        raise InvalidArgument(f"title is {len(stripped)} characters long; the limit is {MAX_TITLE_CHARS}")
    if _has_control(stripped):
        raise InvalidArgument("title must not contain control characters (newlines, tabs, NUL)")
    return stripped


def check_asset_name(name: str, *, allow_manifest: bool = False) -> str:
    """A file name inside a story: 1-200 characters, no path separators, `..`, NUL or control characters."""
    if not name:
        raise InvalidArgument("asset name must not be empty")
    if len(name) > MAX_ASSET_NAME_CHARS:
        raise InvalidArgument(f"asset name is {len(name)} characters long; the limit is {MAX_ASSET_NAME_CHARS}")
    if "\x00" in name:
        raise InvalidArgument("asset name must not contain NUL")
    if _has_control(name):
        raise InvalidArgument("asset name must not contain control characters")
    if "/" in name or "\\" in name:
        raise InvalidArgument(f"asset name must not contain '/' or '\\': {name!r}")
    if ".." in name or name.strip() in {"", "."}:
        raise InvalidArgument(f"asset name must not contain '..' or be '.': {name!r}")
    if name == MANIFEST_NAME and not allow_manifest:
        raise InvalidArgument(f"{MANIFEST_NAME!r} is reserved for the manifest; CommitStory writes it")
    return name


def check_content_type(content_type: str) -> str:
    """A MIME type like ``image/png`` (parameters allowed); empty means `application/octet-stream`."""
    value = content_type.strip()
    if not value:
        return DEFAULT_CONTENT_TYPE
    if len(value) > MAX_CONTENT_TYPE_CHARS or _has_control(value) or not _CONTENT_TYPE.match(value):
        raise InvalidArgument(f"content_type must be a MIME type like 'image/png'; got {value[:80]!r}")
    return value


def check_client_token(token: str) -> str:
    if len(token) > MAX_CLIENT_TOKEN_CHARS:
        raise InvalidArgument(f"client_token is {len(token)} characters long; the limit is {MAX_CLIENT_TOKEN_CHARS}")
    if _has_control(token):
        raise InvalidArgument("client_token must not contain control characters")
    return token


def check_query(query: str) -> str:
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidArgument(f"query is {len(query)} characters long; the limit is {MAX_QUERY_CHARS}")
    return query.strip()


def part_file(name: str) -> tuple[str, int] | None:
    """``("text", 2)`` for ``text_2``; None for names that are not part files."""
    match = _PART_FILE.match(name)
    if match is None:
        return None
    return match.group(1), int(match.group(2))


def natural_key(name: str) -> tuple[str, int, str]:
    """Sorts ``text_2`` before ``text_10``."""
    match = re.match(r"^(.*?)(\d+)$", name)
    if match is None:
        return (name, -1, name)
    return (match.group(1), int(match.group(2)), name)
