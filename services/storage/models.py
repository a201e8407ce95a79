"""The storage domain's values: assets, manifests and the summaries the index lists (no gRPC here)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.storage.backends.base import FileRecord
from services.storage.timestamps import format_time, parse_time


class StoryFormat(str, enum.Enum):
    """How a story is stored."""

    # Has a `story.json` manifest written by this project.
    MANIFEST = "manifest"
    # Written by the original app: `text_N` / `image_N` files, no manifest.
    LEGACY = "legacy"


@dataclass(frozen=True)
class AssetRef:
    """One stored file of a story, as callers see it."""

    name: str
    cid: str
    content_type: str
    size: int

    @classmethod
    def of(cls, record: FileRecord) -> AssetRef:
        return cls(name=record.name, cid=record.cid, content_type=record.content_type, size=record.size)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "cid": self.cid, "content_type": self.content_type, "size": self.size}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AssetRef:
        return cls(
            name=str(data["name"]),
            cid=str(data.get("cid", "")),
            content_type=str(data.get("content_type", "")),
            size=int(data.get("size", 0)),
        )


@dataclass(frozen=True)
class Character:
    name: str
    description: str


@dataclass(frozen=True)
class Part:
    index: int
    title: str = ""
    text: str = ""
    illustration_prompt: str = ""
    text_asset: AssetRef | None = None
    image_asset: AssetRef | None = None


@dataclass(frozen=True)
class Generation:
    """Which engines and settings made a story."""

    text_engine: str = ""
    text_model: str = ""
    image_engine: str = ""
    image_model: str = ""
    offline: bool = False
    seed: int = 0
    parameters: Mapping[str, str] = field(default_factory=dict)
    timings_seconds: Mapping[str, float] = field(default_factory=dict)
    job_id: str = ""


@dataclass(frozen=True)
class Manifest:
    """A story as readers load it: the content of `story.json`."""

    story_id: str
    title: str
    created_at: datetime
    format: StoryFormat = StoryFormat.MANIFEST
    prompt: str = ""
    style: str = ""
    characters: tuple[Character, ...] = ()
    parts: tuple[Part, ...] = ()
    generation: Generation = field(default_factory=Generation)
    # A JSON object kept as-is; empty for none.
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def cover(self) -> AssetRef | None:
        return self.parts[0].image_asset if self.parts else None

    def summary(self) -> StorySummary:
        return StorySummary(
            story_id=self.story_id,
            title=self.title,
            created_at=self.created_at,
            cover=self.cover,
            format=self.format,
        )


@dataclass(frozen=True)
class StorySummary:
    """One row of the library: what the index keeps per story."""

    story_id: str
    title: str
    created_at: datetime
    cover: AssetRef | None = None
    format: StoryFormat = StoryFormat.MANIFEST

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.story_id,
            "title": self.title,
            "created_at": format_time(self.created_at),
            "cover": self.cover.to_json() if self.cover else None,
            "format": self.format.value,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StorySummary:
        cover = data.get("cover")
        return cls(
            story_id=str(data["id"]),
            title=str(data["title"]),
            created_at=parse_time(str(data["created_at"])),
            cover=AssetRef.from_json(cover) if isinstance(cover, Mapping) else None,
            format=StoryFormat(data.get("format", StoryFormat.MANIFEST.value)),
        )
