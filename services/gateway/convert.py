"""Turning protobuf messages into the JSON the REST API documents (no gRPC calls here)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from dreamforge.v1 import jobs_pb2, storage_pb2
from google.protobuf.timestamp_pb2 import Timestamp

_STATES: dict[int, str] = {
    jobs_pb2.JOB_STATE_UNSPECIFIED: "queued",
    jobs_pb2.JOB_STATE_QUEUED: "queued",
    jobs_pb2.JOB_STATE_RUNNING: "running",
    jobs_pb2.JOB_STATE_SUCCEEDED: "succeeded",
    jobs_pb2.JOB_STATE_FAILED: "failed",
    jobs_pb2.JOB_STATE_CANCELLED: "cancelled",
}
FINISHED_STATES = frozenset({"succeeded", "failed", "cancelled"})

_TEXT_FIELDS: dict[int, str] = {
    jobs_pb2.TEXT_FIELD_UNSPECIFIED: "part_text",
    jobs_pb2.TEXT_FIELD_STORY_TITLE: "story_title",
    jobs_pb2.TEXT_FIELD_PART_TITLE: "part_title",
    jobs_pb2.TEXT_FIELD_PART_TEXT: "part_text",
}

_FORMATS: dict[int, str] = {
    storage_pb2.STORY_FORMAT_UNSPECIFIED: "manifest",
    storage_pb2.STORY_FORMAT_MANIFEST: "manifest",
    storage_pb2.STORY_FORMAT_LEGACY: "legacy",
}

OFFLINE_NOTICE = "Written and drawn by DreamForge's built-in offline engine: a template, not an AI model."


def timestamp(value: Timestamp) -> str | None:
    """RFC 3339 in UTC with milliseconds (``2026-01-02T03:04:05.678Z``); None when unset."""
    if value.seconds == 0 and value.nanos == 0:
        return None
    moment = datetime.fromtimestamp(value.seconds + value.nanos / 1e9, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def state_name(state: int) -> str:
    return _STATES.get(state, "queued")


def asset_url(story_id: str, name: str) -> str:
    return f"/api/v1/stories/{story_id}/assets/{quote(name, safe='')}"


def asset_json(story_id: str, asset: storage_pb2.AssetRef) -> dict[str, Any]:
    return {
        "name": asset.name,
        "url": asset_url(story_id, asset.name),
        "cid": asset.cid,
        "content_type": asset.content_type,
        "size": asset.size,
    }


def job_json(job: jobs_pb2.Job) -> dict[str, Any]:
    error = None
    if job.HasField("error") and (job.error.code or job.error.message):
        error = {"code": job.error.code, "message": job.error.message}
    return {
        "id": job.job_id,
        "state": state_name(job.state),
        "stage": job.stage,
        "progress": max(0, min(100, job.progress)),
        "story_id": job.story_id or None,
        "error": error,
        "attempts": job.attempts,
        "created_at": timestamp(job.created_at),
        "updated_at": timestamp(job.updated_at),
        "prompt": job.prompt,
        "parts": job.parts,
        "style": job.style,
    }


def part_json(story_id: str, part: storage_pb2.StoryPart) -> dict[str, Any]:
    image = asset_json(story_id, part.image_asset) if part.HasField("image_asset") and part.image_asset.name else None
    return {"index": part.index, "title": part.title, "text": part.text, "image": image}


def engine_json(generation: storage_pb2.GenerationInfo, story_format: int) -> dict[str, Any]:
    legacy = story_format == storage_pb2.STORY_FORMAT_LEGACY
    if generation.offline:
        label = OFFLINE_NOTICE
    elif legacy and not generation.text_engine:
        label = "Made by the original DreamForge app (OpenAI gpt-4o-mini and DALL-E 3)."
    else:
        text = " ".join(x for x in (generation.text_engine, generation.text_model) if x) or "unknown engine"
        image = " ".join(x for x in (generation.image_engine, generation.image_model) if x) or "no pictures"
        label = f"Written by {text}; pictures by {image}."
    return {
        "text_engine": generation.text_engine,
        "text_model": generation.text_model,
        "image_engine": generation.image_engine,
        "image_model": generation.image_model,
        "offline": generation.offline,
        "label": label,
    }


def story_json(manifest: storage_pb2.StoryManifest) -> dict[str, Any]:
    story_id = manifest.story_id
    return {
        "id": story_id,
        "title": manifest.title,
        "prompt": manifest.prompt,
        "style": manifest.style,
        "created_at": timestamp(manifest.created_at),
        "format": _FORMATS.get(manifest.format, "manifest"),
        "engine": engine_json(manifest.generation, manifest.format),
        "characters": [{"name": c.name, "description": c.description} for c in manifest.characters],
        "parts": [part_json(story_id, part) for part in sorted(manifest.parts, key=lambda p: p.index)],
    }


def summary_json(summary: storage_pb2.StorySummary) -> dict[str, Any]:
    cover = summary.cover.name if summary.HasField("cover") and summary.cover.name else ""
    return {
        "id": summary.story_id,
        "title": summary.title,
        "created_at": timestamp(summary.created_at),
        "cover_url": asset_url(summary.story_id, cover) if cover else None,
    }


def event_json(event: jobs_pb2.JobEvent) -> tuple[str, dict[str, Any]]:
    """An event's SSE name and data: ``progress``, ``text``, ``part``, ``image``, ``done`` or ``failed``."""
    kind = event.WhichOneof("payload") or "unknown"
    data: dict[str, Any]
    if kind == "progress":
        p = event.progress
        data = {
            "state": state_name(p.state),
            "stage": p.stage,
            "progress": max(0, min(100, p.progress)),
            "attempt": p.attempt,
            "message": p.message,
            # Set when the text streamed so far is thrown away and written again (field added to the
            # proto by the generator; read defensively so older stubs still work).
            "restart": bool(getattr(p, "restart", False)),
        }
    elif kind == "text":
        t = event.text
        data = {"field": _TEXT_FIELDS.get(t.field, "part_text"), "part_index": t.part_index, "delta": t.delta}
    elif kind == "part":
        data = {"story_id": event.part.story_id, "part": part_json(event.part.story_id, event.part.part)}
    elif kind == "image":
        i = event.image
        data = {"story_id": i.story_id, "part_index": i.part_index, "image": asset_json(i.story_id, i.image)}
    elif kind == "done":
        data = {"story_id": event.done.story_id, "title": event.done.title}
    elif kind == "failed":
        f = event.failed
        data = {"state": state_name(f.state), "error": {"code": f.error.code, "message": f.error.message}}
    else:
        data = {}
    data["time"] = timestamp(event.time)
    return kind, data
