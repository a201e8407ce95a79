"""What a job has already produced, kept in Redis so a reclaimed job resumes instead of starting over.

The checkpoint holds the finished story text (once the whole document was
written and checked) and each stored asset (name -> reference). Assets belong to
the text they were made from: starting a new text clears the checkpoint, so a
resumed job never reuses a picture drawn for a different story. When the text
itself was not finished before a crash, the job writes it again from scratch
(a half-streamed answer cannot be continued), then redraws what it needs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from services.generator.keys import Keys
from services.generator.storage_client import StoredAsset
from services.generator.story_format import Story

_STORY = "story"
_ASSET_PREFIX = "asset:"
_TIMING_PREFIX = "timing:"


@dataclass
class Progress:
    story: Story | None = None
    assets: dict[str, StoredAsset] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


class Checkpoint:
    def __init__(self, redis: aioredis.Redis, keys: Keys, job_id: str, *, parts: int) -> None:
        self._redis: Any = redis  # redis-py's types do not know decode_responses=True
        self._key = keys.checkpoint(job_id)
        self._parts = parts

    async def load(self) -> Progress:
        fields: dict[str, str] = await self._redis.hgetall(self._key)
        progress = Progress()
        if _STORY in fields:
            progress.story = Story.from_json(fields[_STORY], self._parts)
        for name, value in fields.items():
            if name.startswith(_ASSET_PREFIX):
                data = json.loads(value)
                progress.assets[name[len(_ASSET_PREFIX) :]] = StoredAsset(**data)
            elif name.startswith(_TIMING_PREFIX):
                progress.timings[name[len(_TIMING_PREFIX) :]] = float(value)
        return progress

    async def start_text(self) -> None:
        """A new text is being written: nothing stored so far belongs to it."""
        await self._redis.delete(self._key)

    async def save_story(self, story: Story) -> None:
        await self._redis.hset(self._key, _STORY, story.to_json())

    async def save_asset(self, asset: StoredAsset) -> None:
        value = json.dumps(
            {"name": asset.name, "cid": asset.cid, "content_type": asset.content_type, "size": asset.size}
        )
        await self._redis.hset(self._key, _ASSET_PREFIX + asset.name, value)

    async def save_timing(self, step: str, seconds: float) -> None:
        await self._redis.hset(self._key, _TIMING_PREFIX + step, f"{seconds:.3f}")
