"""Reading Pinata's JSON shapes into our records, tolerant of the variations its SDKs and docs disagree on.

Timestamps come as `created_at` or `createdAt`, end in `Z` and carry anything
from 0 to 9 fractional digits (Go trims trailing zeros), which
`datetime.fromisoformat` on Python 3.10 rejects; `parse_timestamp` normalises them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from services.common.errors import Unavailable
from services.storage.backends.base import FileRecord, GroupRecord

logger = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_TIMESTAMP = re.compile(
    r"^(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})[Tt ](?P<hour>\d{2}):(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2})(?:\.(?P<fraction>\d+))?)?"
    r"(?P<zone>[Zz]|(?P<sign>[+-])(?P<zone_hours>\d{2}):?(?P<zone_minutes>\d{2}))?$"
)
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_MEDIA_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$")


def parse_timestamp(value: object) -> datetime | None:
    """An aware UTC datetime from Pinata's RFC 3339 text; None when absent or unreadable.

    Built from the parts rather than with `datetime.fromisoformat`, whose accepted forms
    differ between Python 3.10 and 3.11 (`Z`, fractions that are not 3 or 6 digits).
    """
    if not isinstance(value, str):
        return None
    match = _TIMESTAMP.match(value.strip())
    if match is None:
        return None
    offset = timedelta(0)
    if match["sign"]:
        offset = timedelta(hours=int(match["zone_hours"]), minutes=int(match["zone_minutes"]))
        if match["sign"] == "-":
            offset = -offset
    try:
        parsed = datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"] or 0),
            int((match["fraction"] or "")[:6].ljust(6, "0")),
            tzinfo=timezone(offset),
        )
    except ValueError:
        return None
    return parsed.astimezone(timezone.utc)


def created_at(item: Mapping[str, Any]) -> datetime:
    """The record's creation time, from whichever key this response used; the epoch if it has none."""
    for key in ("created_at", "createdAt"):
        parsed = parse_timestamp(item.get(key))
        if parsed is not None:
            return parsed
    logger.debug("Pinata record %s has no readable creation time", item.get("id"))
    return _EPOCH


def group_from_json(item: object, network: str) -> GroupRecord:
    data = _object(item, "group")
    return GroupRecord(
        id=_identifier(data, "group"),
        name=str(data.get("name") or ""),
        created_at=created_at(data),
        network=network,
    )


def file_from_json(item: object, network: str, *, fallback: Mapping[str, Any] | None = None) -> FileRecord:
    """A `FileRecord` from a file object; `fallback` fills fields Pinata left out (what we sent on upload)."""
    data = _object(item, "file")
    known = dict(fallback or {})
    known.update({key: value for key, value in data.items() if value is not None})
    return FileRecord(
        id=_identifier(data, "file"),
        name=str(known.get("name") or ""),
        cid=str(known.get("cid") or ""),
        size=_size(known.get("size")),
        content_type=content_type(known.get("mime_type") or known.get("mimeType")),
        group_id=_optional_text(known.get("group_id", known.get("groupId"))),
        created_at=created_at(known),
        keyvalues=_keyvalues(known.get("keyvalues")),
        network=str(known.get("network") or network),
    )


def content_type(value: object) -> str:
    """A usable media type; the docs show placeholders such as "TODO", which we do not pass on."""
    if not isinstance(value, str):
        return DEFAULT_CONTENT_TYPE
    media_type = value.split(";", 1)[0].strip()
    if _MEDIA_TYPE.match(media_type) is None:
        return DEFAULT_CONTENT_TYPE
    return value.strip()


def page(data: object, key: str) -> tuple[list[Any], str]:
    """The items under `key` and the next page token of one list response (empty token: last page)."""
    body = _object(data, "list")
    items = body.get(key)
    if items is None:
        items = []
    if not isinstance(items, list):
        raise Unavailable(f"Pinata sent a list response whose {key!r} is not a list")
    token = body.get("next_page_token", body.get("nextPageToken"))
    return items, token if isinstance(token, str) else ""


def _object(item: object, kind: str) -> Mapping[str, Any]:
    if not isinstance(item, Mapping):
        raise Unavailable(f"Pinata sent a {kind} that is not a JSON object")
    return item


def _identifier(data: Mapping[str, Any], kind: str) -> str:
    value = data.get("id")
    if not isinstance(value, str) or not value:
        raise Unavailable(f"Pinata sent a {kind} without an id")
    return value


def _size(value: object) -> int:
    try:
        return max(0, int(value))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0


def _optional_text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def _keyvalues(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(key): str(item) for key, item in value.items() if item is not None}
