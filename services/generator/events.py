"""Each job's event log: a Redis stream with ordered ids that watchers replay and then follow live.

An event is a kind (`progress`, `text`, `part`, `image`, `done`, `failed`) and a
small JSON document. `follow` replays from the start (or after a given id) and
then blocks for new ones, so a watcher that connects late or reconnects with the
last id it saw misses nothing; it ends after `done` or `failed`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from services.common.errors import InvalidArgument, NotFound
from services.generator.keys import Keys

PROGRESS, TEXT, PART, IMAGE, DONE, FAILED = "progress", "text", "part", "image", "done", "failed"
FINAL_KINDS = frozenset({DONE, FAILED})
_STREAM_ID = re.compile(r"^\d+-\d+$")


@dataclass(frozen=True)
class Event:
    id: str
    kind: str
    data: dict[str, Any]
    time_ms: int

    @property
    def final(self) -> bool:
        return self.kind in FINAL_KINDS


def encode(kind: str, data: dict[str, Any], now_ms: int | None = None) -> dict[str, str]:
    """The stream entry's fields for an event."""
    stamp = int(time.time() * 1000) if now_ms is None else now_ms
    return {"kind": kind, "data": json.dumps(data, ensure_ascii=False, separators=(",", ":")), "time": str(stamp)}


def _decode(entry_id: str, fields: dict[str, str]) -> Event:
    return Event(
        id=entry_id, kind=fields.get("kind", ""), data=json.loads(fields.get("data", "{}")), time_ms=int(fields["time"])
    )


class EventLog:
    """Appends to and reads from the per-job event streams."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, *, block_ms: int = 5000) -> None:
        self._redis: Any = redis  # redis-py's types do not know decode_responses=True
        self._keys = keys
        self._block_ms = block_ms

    async def append(self, job_id: str, kind: str, data: dict[str, Any]) -> str:
        return str(await self._redis.xadd(self._keys.events(job_id), encode(kind, data)))

    async def read(self, job_id: str, after: str = "") -> list[Event]:
        """Every event so far (after ``after``, exclusive)."""
        start = f"({after}" if after else "-"
        entries = await self._redis.xrange(self._keys.events(job_id), min=start, max="+")
        return [_decode(entry_id, fields) for entry_id, fields in entries]

    async def follow(self, job_id: str, after: str = "") -> AsyncIterator[Event]:
        """Replay, then follow live until the final event; `NotFound` for an unknown (or expired) job."""
        if after and not _STREAM_ID.match(after):
            raise InvalidArgument(f"after_event_id {after!r} is not an event id (they look like 1700000000000-0)")
        job_key, events_key = self._keys.job(job_id), self._keys.events(job_id)
        if not await self._redis.exists(job_key):
            raise NotFound(f"job {job_id} does not exist (or has expired)")
        last = after or "0-0"
        while True:
            replies = await self._redis.xread({events_key: last}, count=200, block=self._block_ms)
            if not replies:
                # Quiet for a while: make sure the job still exists (it may have expired meanwhile).
                if not await self._redis.exists(job_key):
                    raise NotFound(f"job {job_id} has expired")
                continue
            for _stream, entries in replies:
                for entry_id, fields in entries:
                    event = _decode(entry_id, fields)
                    last = entry_id
                    yield event
                    if event.final:
                        return


class TextBuffer:
    """Coalesces text deltas so the stream gets a write every few tokens, not one per token.

    Deltas of the same field and part are joined until `max_chars` are waiting or
    `max_delay` seconds passed since the first one; anything else flushes first.
    """

    def __init__(self, log: EventLog, job_id: str, *, max_chars: int = 120, max_delay: float = 0.15) -> None:
        self._log = log
        self._job_id = job_id
        self._max_chars = max_chars
        self._max_delay = max_delay
        self._key: tuple[str, int] | None = None
        self._text = ""
        self._since = 0.0

    async def add(self, field: str, part_index: int, delta: str) -> None:
        if self._key is not None and self._key != (field, part_index):
            await self.flush()
        if not self._text:
            self._since = time.monotonic()
        self._key = (field, part_index)
        self._text += delta
        if len(self._text) >= self._max_chars or time.monotonic() - self._since >= self._max_delay:
            await self.flush()

    async def flush(self) -> None:
        if self._key is None or not self._text:
            return
        field, part_index = self._key
        text, self._text = self._text, ""
        await self._log.append(self._job_id, TEXT, {"field": field, "part_index": part_index, "delta": text})
