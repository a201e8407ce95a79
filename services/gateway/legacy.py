"""The original DreamForge app's routes, answering with its JSON shapes so its page and scripts keep working.

Differences a client can see: ids are UUIDs (the original's Bull job ids were small
numbers), and every error body also carries the v1 ``{"error": {...}}`` object beside
the original ``{"message": ...}``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import TypeVar

import grpc
from dreamforge.v1 import jobs_pb2, storage_pb2
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.common.ids import is_id
from services.gateway import inputs
from services.gateway.assets import asset_response, read_whole
from services.gateway.backends import backends_of, settings_of
from services.gateway.convert import FINISHED_STATES, state_name
from services.gateway.errors import ApiError
from services.gateway.metrics import HttpMetrics
from services.gateway.routing import resource

_PART = re.compile(r"^(text|image)_(\d{1,4})$")
# The original listed the whole index in one answer; ours pages through storage up to this many.
MAX_LISTED = 10_000
MAX_TEXT_BYTES = 1024 * 1024


T = TypeVar("T")


def _not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


async def _unless_missing(call: Awaitable[T], message: str) -> T:
    """The call's reply; NOT_FOUND becomes the original app's own 404 message."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            raise _not_found(message) from None
        raise
    except ApiError as exc:
        if exc.status == 404:
            raise _not_found(message) from None
        raise


async def submit(request: Request) -> Response:
    settings = settings_of(request)
    body = await inputs.read_json_object(request, settings.max_body_bytes)
    # The original read only `prompt` and ignored everything else; so do we.
    story = inputs.story_request({"prompt": body.get("prompt")}, allow_extra=True)
    reply = await backends_of(request).jobs.SubmitJob(jobs_pb2.SubmitJobRequest(prompt=story.prompt))
    metrics: HttpMetrics = request.state.metrics
    metrics.jobs_submitted.labels("legacy", str(reply.created).lower()).inc()
    return JSONResponse({"message": "Job submitted", "jobId": reply.job.job_id}, status_code=202)


async def job_status(request: Request) -> Response:
    job_id = request.path_params["job_id"]
    if not is_id(job_id):
        raise _not_found("Job not found")
    reply = await _unless_missing(
        backends_of(request).jobs.GetJob(jobs_pb2.GetJobRequest(job_id=job_id)), "Job not found"
    )
    state = state_name(reply.job.state)
    failed = state in ("failed", "cancelled")
    # Bull marked failed jobs finished too; the original page polls until "completed".
    return JSONResponse(
        {
            "jobId": reply.job.job_id,
            "failedReason": (reply.job.error.message or reply.job.error.code or state) if failed else None,
            "failed": failed,
            "status": "completed" if state in FINISHED_STATES else "in progress",
        }
    )


async def list_stories(request: Request) -> Response:
    storage = backends_of(request).storage
    stories: list[dict[str, str]] = []
    token = ""
    while len(stories) < MAX_LISTED:
        reply = await storage.ListStories(storage_pb2.ListStoriesRequest(page_size=100, page_token=token))
        stories += [{"groupId": s.story_id, "title": s.title} for s in reply.stories]
        token = reply.next_page_token
        if not token:
            break
    if not stories:
        raise _not_found("Index not found")
    # The original's index file listed stories in the order they were added: oldest first.
    stories.reverse()
    return JSONResponse({"stories": stories})


def _part_key(name: str) -> tuple[int, int]:
    match = _PART.match(name)
    assert match is not None
    return (0 if match.group(1) == "text" else 1, int(match.group(2)))


async def story_parts(request: Request) -> Response:
    story_id = request.path_params["story_id"]
    if not is_id(story_id):
        raise _not_found("Story not found")
    reply = await _unless_missing(
        backends_of(request).storage.ListAssets(storage_pb2.ListAssetsRequest(story_id=story_id)), "Story not found"
    )
    parts = sorted((a for a in reply.assets if _PART.match(a.name)), key=lambda a: _part_key(a.name))
    return JSONResponse({"storyParts": [{"name": a.name, "cid": a.cid} for a in parts]})


async def story_part(request: Request) -> Response:
    story_id = request.path_params["story_id"]
    part = request.path_params["part"]
    match = _PART.match(part)
    if not is_id(story_id) or match is None:
        raise _not_found("Part not found")
    backends = backends_of(request)
    settings = settings_of(request)
    if match.group(1) == "image":
        return await _unless_missing(asset_response(request, backends, settings, story_id, part), "Part not found")
    data = await _unless_missing(read_whole(backends, settings, story_id, part, MAX_TEXT_BYTES), "Part not found")
    return JSONResponse({"text": data.decode("utf-8", errors="replace")})


routes = [
    resource("/api/stories", "legacy_stories", {"GET": list_stories, "POST": submit}),
    resource("/api/jobs", "legacy_jobs", {"POST": submit}),
    resource("/api/jobs/{job_id}", "legacy_job", {"GET": job_status}),
    resource("/api/stories/{story_id}", "legacy_story", {"GET": story_parts}),
    resource("/api/stories/{story_id}/{part}", "legacy_part", {"GET": story_part}),
]
