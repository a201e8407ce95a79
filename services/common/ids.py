"""Identifiers: time-ordered UUIDs (version 7) for stories and jobs, and the check callers use on input.

Story ids are Pinata group ids (UUIDs) or, in the local store, UUIDs we make the
same shape; job ids are made the same way. Sorting them as strings sorts them by
creation time, which keeps listings and logs in a natural order.
"""

from __future__ import annotations

import os
import re
import time
import uuid

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def new_id(now_ms: int | None = None) -> str:
    """A UUIDv7 string: 48 bits of Unix milliseconds, then random bits (RFC 9562)."""
    millis = int(time.time() * 1000) if now_ms is None else now_ms
    value = (millis & ((1 << 48) - 1)) << 80
    value |= int.from_bytes(os.urandom(10), "big") & ((1 << 80) - 1)
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def is_id(text: str) -> bool:
    """True for a canonical lowercase UUID string (any version)."""
    return bool(_UUID.match(text))
