"""The story as the text engines write it: a JSON document, its schema, and a parser that follows it as it streams.

The model writes one JSON object (`STORY_SCHEMA`). `StoryStream` is fed the text
as it arrives and reports what became known: text deltas for the live view, the
title, the character sheet, and each part once the next part (or the end of the
list) has begun, so its text can be stored and its picture started while the
rest is still being written. `StoryStream.finish` parses the whole document and
checks it; `InvalidOutput` says what is wrong so the model can be asked to repair it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jiter

MAX_TITLE_CHARS = 200
MAX_CHARACTERS = 8


class InvalidOutput(ValueError):
    """The model's answer is not the story document we asked for; the message says how."""


@dataclass(frozen=True)
class Character:
    name: str
    description: str


@dataclass(frozen=True)
class Part:
    index: int
    title: str
    text: str
    illustration_prompt: str


@dataclass(frozen=True)
class Story:
    title: str
    characters: tuple[Character, ...]
    parts: tuple[Part, ...]

    def to_json(self) -> str:
        return json.dumps(
            {
                "title": self.title,
                "characters": [{"name": c.name, "description": c.description} for c in self.characters],
                "parts": [
                    {"title": p.title, "text": p.text, "illustration_prompt": p.illustration_prompt} for p in self.parts
                ],
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str, expected_parts: int) -> Story:
        """Parse and check a whole document (also what `to_json` wrote)."""
        return _story_from(_parse_document(text), expected_parts)


def story_schema(parts: int) -> dict[str, Any]:
    """The JSON schema for structured output, with the part count fixed."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["title", "characters", "parts"],
        "properties": {
            "title": {"type": "string", "description": "The story's title, a few words."},
            "characters": {
                "type": "array",
                "description": "The recurring characters, each with a short visual description for the illustrator.",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name", "description"],
                    "properties": {
                        "name": {"type": "string"},
                        "description": {
                            "type": "string",
                            "description": "What they look like: species, size, colours, clothes, one feature.",
                        },
                    },
                },
            },
            "parts": {
                "type": "array",
                "minItems": parts,
                "maxItems": parts,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["title", "text", "illustration_prompt"],
                    "properties": {
                        "title": {"type": "string"},
                        "text": {"type": "string", "description": "The part's prose, one to three paragraphs."},
                        "illustration_prompt": {
                            "type": "string",
                            "description": "The scene to draw for this part: who is where, doing what. No style.",
                        },
                    },
                },
            },
        },
    }


# --- what the stream reports -------------------------------------------------


@dataclass(frozen=True)
class TextDelta:
    """More text of the title (`part_index` None), a part's title, or a part's text."""

    field: str  # "story_title" | "part_title" | "part_text"
    part_index: int | None
    delta: str


@dataclass(frozen=True)
class TitleKnown:
    title: str


@dataclass(frozen=True)
class CharactersKnown:
    characters: tuple[Character, ...]


@dataclass(frozen=True)
class PartKnown:
    part: Part


StreamUpdate = TextDelta | TitleKnown | CharactersKnown | PartKnown


class StoryStream:
    """Follows a story document as it streams; `feed` returns what became known, `finish` the whole story."""

    def __init__(self, expected_parts: int) -> None:
        self._expected = expected_parts
        self._buffer = ""
        self._title = ""
        self._part_titles: list[str] = []
        self._part_texts: list[str] = []
        self._title_known = False
        self._characters_known = False
        self._parts_known = 0
        self._unparseable = False

    @property
    def text(self) -> str:
        """Everything received so far (shown to the model when it is asked to repair its answer)."""
        return self._buffer

    def feed(self, chunk: str) -> list[StreamUpdate]:
        self._buffer += chunk
        if self._unparseable:
            return []
        start = self._buffer.find("{")
        if start < 0:
            return []
        try:
            snapshot = jiter.from_json(self._buffer[start:].encode(), partial_mode="trailing-strings")
        except ValueError:
            # A prefix that does not parse never will; `finish` reports it.
            self._unparseable = True
            return []
        if not isinstance(snapshot, dict):
            return []
        return self._updates(snapshot, complete=False)

    def finish(self) -> tuple[Story, list[StreamUpdate]]:
        """The checked story and the last updates (the final part(s)); `InvalidOutput` if it is not one."""
        document = _parse_document(self._buffer)
        story = _story_from(document, self._expected)
        updates = self._updates(document, complete=True)
        return story, updates

    def _updates(self, snapshot: dict[str, Any], *, complete: bool) -> list[StreamUpdate]:
        updates: list[StreamUpdate] = []
        keys = list(snapshot)

        def followed(key: str) -> bool:
            # A value is finished once a later key has begun (JSON objects stream in order).
            return complete or (key in keys and keys.index(key) < len(keys) - 1)

        title = snapshot.get("title")
        if isinstance(title, str):
            updates.extend(self._delta_of("story_title", None, self._title, title))
            self._title = title
            if not self._title_known and followed("title"):
                self._title_known = True
                updates.append(TitleKnown(_checked_title(title)))

        characters = snapshot.get("characters")
        if not self._characters_known and followed("characters") and characters is not None:
            self._characters_known = True
            updates.append(CharactersKnown(_characters_from(characters)))

        parts = snapshot.get("parts")
        if isinstance(parts, list):
            if len(parts) > self._expected:
                raise InvalidOutput(f"the story has more than the {self._expected} parts asked for")
            for index, part in enumerate(parts):
                if not isinstance(part, dict):
                    continue
                self._extend_part(index, part, updates)
            finished = len(parts) if followed("parts") else len(parts) - 1
            while self._parts_known < finished:
                index = self._parts_known
                if not self._characters_known:
                    # Parts before the character sheet: pictures need the sheet, so it counts as empty.
                    self._characters_known = True
                    updates.append(CharactersKnown(_characters_from(characters or [])))
                updates.append(PartKnown(_part_from(index, parts[index])))
                self._parts_known += 1
        return updates

    def _extend_part(self, index: int, part: dict[str, Any], updates: list[StreamUpdate]) -> None:
        while len(self._part_titles) <= index:
            self._part_titles.append("")
            self._part_texts.append("")
        title = part.get("title")
        if isinstance(title, str):
            updates.extend(self._delta_of("part_title", index, self._part_titles[index], title))
            self._part_titles[index] = title
        text = part.get("text")
        if isinstance(text, str):
            updates.extend(self._delta_of("part_text", index, self._part_texts[index], text))
            self._part_texts[index] = text

    @staticmethod
    def _delta_of(field: str, index: int | None, old: str, new: str) -> list[StreamUpdate]:
        if len(new) > len(old) and new.startswith(old):
            return [TextDelta(field, index, new[len(old) :])]
        return []


def _parse_document(text: str) -> dict[str, Any]:
    # Models sometimes wrap the object in prose or ``` fences; the object itself is what counts.
    start, end = text.find("{"), text.rfind("}")
    if start < 0:
        raise InvalidOutput("the answer is not a JSON object")
    candidate = text[start : end + 1] if end > start else text[start:]
    try:
        document = json.loads(candidate)
    except json.JSONDecodeError as exc:
        raise InvalidOutput(f"the answer is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(document, dict):
        raise InvalidOutput("the answer is not a JSON object")
    return document


def _checked_title(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidOutput("the story has no title")
    return " ".join(value.split())[:MAX_TITLE_CHARS]


def _characters_from(value: object) -> tuple[Character, ...]:
    if not isinstance(value, list):
        raise InvalidOutput("`characters` is not a list")
    characters = []
    for item in value[:MAX_CHARACTERS]:
        if not isinstance(item, dict):
            raise InvalidOutput("a character is not an object with `name` and `description`")
        name, description = item.get("name"), item.get("description")
        if not isinstance(name, str) or not name.strip() or not isinstance(description, str):
            raise InvalidOutput("a character lacks a `name` or a `description`")
        characters.append(Character(name=name.strip(), description=description.strip()))
    return tuple(characters)


def _part_from(index: int, value: object) -> Part:
    if not isinstance(value, dict):
        raise InvalidOutput(f"part {index + 1} is not an object")
    fields = {}
    for name in ("title", "text", "illustration_prompt"):
        item = value.get(name)
        if not isinstance(item, str) or not item.strip():
            raise InvalidOutput(f"part {index + 1} has no `{name}`")
        fields[name] = item.strip()
    return Part(
        index=index, title=fields["title"], text=fields["text"], illustration_prompt=fields["illustration_prompt"]
    )


def _story_from(document: dict[str, Any], expected_parts: int) -> Story:
    title = _checked_title(document.get("title"))
    characters = _characters_from(document.get("characters", []))
    parts = document.get("parts")
    if not isinstance(parts, list):
        raise InvalidOutput("the answer has no `parts` list")
    if len(parts) != expected_parts:
        raise InvalidOutput(f"the story has {len(parts)} parts; exactly {expected_parts} were asked for")
    return Story(
        title=title,
        characters=characters,
        parts=tuple(_part_from(index, part) for index, part in enumerate(parts)),
    )
