"""What the pipeline needs from an engine: a text engine streams a story document, an image engine draws a scene."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from services.generator.story_format import Character


@dataclass(frozen=True)
class Repair:
    """A second chance: the previous answer and what was wrong with it."""

    previous_answer: str
    problem: str


@dataclass(frozen=True)
class TextRequest:
    prompt: str
    parts: int
    style: str
    seed: int
    repair: Repair | None = None


@dataclass(frozen=True)
class ImageRequest:
    """One picture. `prompt` is the composed prompt (style + character sheet + scene) a model gets;
    the other fields let an engine that draws by itself follow the part."""

    prompt: str
    scene: str
    part_index: int
    parts: int
    part_title: str
    style: str
    seed: int
    characters: tuple[Character, ...] = ()


@dataclass(frozen=True)
class Image:
    data: bytes
    content_type: str


@dataclass(frozen=True)
class EngineInfo:
    """What the manifest records about an engine."""

    engine: str
    model: str
    offline: bool
    parameters: Mapping[str, str] = field(default_factory=dict)


class TextEngine(Protocol):
    info: EngineInfo

    def write_story(self, request: TextRequest) -> AsyncIterator[str]:
        """The story document (see `story_format.STORY_SCHEMA`) as text chunks, as they are written.

        Raises `TransientFailure` or `PermanentFailure` (from `services.generator.failures`).
        """
        ...

    async def aclose(self) -> None: ...


class ImageEngine(Protocol):
    info: EngineInfo

    async def draw(self, request: ImageRequest) -> Image:
        """One picture; raises `TransientFailure` or `PermanentFailure`."""
        ...

    async def aclose(self) -> None: ...
