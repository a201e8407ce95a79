"""`story.json`: checking a manifest before it is written, and encoding / decoding it.

The file is a plain JSON document so it stays readable without this code (and
on any IPFS gateway). A file that is not valid JSON, or not a manifest, is
reported as `DataLoss` with the reason, never as a crash.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from services.common.errors import DataLoss, InvalidArgument
from services.storage.models import AssetRef, Character, Generation, Manifest, Part, StoryFormat
from services.storage.names import check_asset_name, check_title
from services.storage.timestamps import format_time, parse_time

SCHEMA = "dreamforge.story/1"
MAX_PARTS = 100
MAX_CHARACTERS = 50
MAX_EXTRA_BYTES = 256 * 1024
MAX_MANIFEST_BYTES = 4 * 1024 * 1024


def parse_extra(extra_json: str) -> dict[str, Any]:
    """The caller's `extra_json`: empty, or a JSON object (kept as-is under "extra")."""
    if not extra_json.strip():
        return {}
    if len(extra_json.encode()) > MAX_EXTRA_BYTES:
        raise InvalidArgument(f"extra_json is larger than the limit of {MAX_EXTRA_BYTES} bytes")
    try:
        value = json.loads(extra_json)
    except ValueError as exc:
        raise InvalidArgument(f"extra_json is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"extra_json must be a JSON object, got a {type(value).__name__}")
    return value


def check_for_commit(manifest: Manifest) -> Manifest:
    """The manifest a caller asked to commit, checked and normalised (title stripped)."""
    title = check_title(manifest.title)
    if not manifest.parts:
        raise InvalidArgument("a story needs at least one part")
    if len(manifest.parts) > MAX_PARTS:
        raise InvalidArgument(f"a story has at most {MAX_PARTS} parts; got {len(manifest.parts)}")
    for position, part in enumerate(manifest.parts):
        if part.index != position:
            raise InvalidArgument(
                f"parts must be numbered 0, 1, 2, ... in order; part {position} has index {part.index}"
            )
        for asset in (part.text_asset, part.image_asset):
            if asset is not None:
                check_asset_name(asset.name)
    if len(manifest.characters) > MAX_CHARACTERS:
        raise InvalidArgument(f"a story has at most {MAX_CHARACTERS} characters; got {len(manifest.characters)}")
    for character in manifest.characters:
        if not character.name.strip():
            raise InvalidArgument("every character needs a name")
    for key, seconds in manifest.generation.timings_seconds.items():
        if not math.isfinite(seconds):
            raise InvalidArgument(f"generation timing {key!r} is not a finite number")
    checked = Manifest(**{**_fields(manifest), "title": title})
    if len(encode(checked)) > MAX_MANIFEST_BYTES:
        raise InvalidArgument(f"the manifest is larger than the limit of {MAX_MANIFEST_BYTES} bytes")
    return checked


def same_content(a: Manifest, b: Manifest) -> bool:
    """True when two manifests differ at most in what storage sets (id, creation time, format)."""
    return {**_fields(a), "story_id": "", "created_at": None, "format": None} == {
        **_fields(b),
        "story_id": "",
        "created_at": None,
        "format": None,
    }


def _fields(manifest: Manifest) -> dict[str, Any]:
    return {name: getattr(manifest, name) for name in manifest.__dataclass_fields__}


def _asset_json(asset: AssetRef | None) -> dict[str, Any] | None:
    return asset.to_json() if asset is not None else None


def encode(manifest: Manifest) -> bytes:
    document = {
        "schema": SCHEMA,
        "story_id": manifest.story_id,
        "title": manifest.title,
        "created_at": format_time(manifest.created_at),
        "format": manifest.format.value,
        "prompt": manifest.prompt,
        "style": manifest.style,
        "characters": [{"name": c.name, "description": c.description} for c in manifest.characters],
        "parts": [
            {
                "index": p.index,
                "title": p.title,
                "text": p.text,
                "illustration_prompt": p.illustration_prompt,
                "text_asset": _asset_json(p.text_asset),
                "image_asset": _asset_json(p.image_asset),
            }
            for p in manifest.parts
        ],
        "generation": {
            "text_engine": manifest.generation.text_engine,
            "text_model": manifest.generation.text_model,
            "image_engine": manifest.generation.image_engine,
            "image_model": manifest.generation.image_model,
            "offline": manifest.generation.offline,
            "seed": manifest.generation.seed,
            "parameters": dict(manifest.generation.parameters),
            "timings_seconds": dict(manifest.generation.timings_seconds),
            "job_id": manifest.generation.job_id,
        },
        "extra": dict(manifest.extra),
    }
    return json.dumps(document, ensure_ascii=False, indent=1, allow_nan=False).encode()


def decode(data: bytes, story_id: str) -> Manifest:
    """The manifest in `data`; `DataLoss` naming the story and the reason when it is not one."""
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise DataLoss(f"the manifest of story {story_id} (story.json) is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise DataLoss(f"the manifest of story {story_id} (story.json) is not a JSON object")
    try:
        return _from_document(document, story_id)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataLoss(f"the manifest of story {story_id} (story.json) is malformed: {exc!r}") from None


def _from_document(document: Mapping[str, Any], story_id: str) -> Manifest:
    generation = document.get("generation") or {}
    extra = document.get("extra") or {}
    if not isinstance(extra, dict):
        raise TypeError("'extra' is not an object")
    return Manifest(
        story_id=story_id,
        title=str(document["title"]),
        created_at=parse_time(str(document["created_at"])),
        format=StoryFormat(document.get("format", StoryFormat.MANIFEST.value)),
        prompt=str(document.get("prompt", "")),
        style=str(document.get("style", "")),
        characters=tuple(
            Character(name=str(c["name"]), description=str(c.get("description", "")))
            for c in document.get("characters") or ()
        ),
        parts=tuple(_part(p) for p in document["parts"]),
        generation=Generation(
            text_engine=str(generation.get("text_engine", "")),
            text_model=str(generation.get("text_model", "")),
            image_engine=str(generation.get("image_engine", "")),
            image_model=str(generation.get("image_model", "")),
            offline=bool(generation.get("offline", False)),
            seed=int(generation.get("seed", 0)),
            parameters={str(k): str(v) for k, v in (generation.get("parameters") or {}).items()},
            timings_seconds={str(k): float(v) for k, v in (generation.get("timings_seconds") or {}).items()},
            job_id=str(generation.get("job_id", "")),
        ),
        extra=extra,
    )


def _part(data: Mapping[str, Any]) -> Part:
    text_asset = data.get("text_asset")
    image_asset = data.get("image_asset")
    return Part(
        index=int(data["index"]),
        title=str(data.get("title", "")),
        text=str(data.get("text", "")),
        illustration_prompt=str(data.get("illustration_prompt", "")),
        text_asset=AssetRef.from_json(text_asset) if text_asset else None,
        image_asset=AssetRef.from_json(image_asset) if image_asset else None,
    )
