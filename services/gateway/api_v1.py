"""REST API v1: each handler checks its input, makes one gRPC call (two for ranged files), and shapes the JSON."""

from __future__ import annotations

from dreamforge.v1 import jobs_pb2, storage_pb2
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from services.gateway import inputs
from services.gateway.assets import asset_response
from services.gateway.backends import backends_of, settings_of
from services.gateway.convert import job_json, story_json, summary_json
from services.gateway.metrics import HttpMetrics
from services.gateway.routing import resource
from services.gateway.sse import MEDIA_TYPE, SSE_HEADERS, job_events

PREFIX = "/api/v1"


def metrics_of(request: Request) -> HttpMetrics:
    metrics: HttpMetrics = request.state.metrics
    return metrics


async def submit_story(request: Request) -> Response:
    settings = settings_of(request)
    body = await inputs.read_json_object(request, settings.max_body_bytes)
    story = inputs.story_request(body)
    key = inputs.idempotency_key(request)
    reply = await backends_of(request).jobs.SubmitJob(
        jobs_pb2.SubmitJobRequest(prompt=story.prompt, parts=story.parts, style=story.style, idempotency_key=key)
    )
    metrics_of(request).jobs_submitted.labels("v1", str(reply.created).lower()).inc()
    job_id = reply.job.job_id
    return JSONResponse(
        {"job": job_json(reply.job)},
        status_code=202,
        headers={"Location": f"{PREFIX}/jobs/{job_id}"},
    )


async def get_job(request: Request) -> Response:
    job_id = inputs.checked_id(request.path_params["job_id"], "job_id")
    reply = await backends_of(request).jobs.GetJob(jobs_pb2.GetJobRequest(job_id=job_id))
    return JSONResponse(job_json(reply.job))


async def cancel_job(request: Request) -> Response:
    job_id = inputs.checked_id(request.path_params["job_id"], "job_id")
    reply = await backends_of(request).jobs.CancelJob(jobs_pb2.CancelJobRequest(job_id=job_id))
    return JSONResponse(job_json(reply.job))


async def job_event_stream(request: Request) -> Response:
    job_id = inputs.checked_id(request.path_params["job_id"], "job_id")
    # EventSource sends Last-Event-ID itself when it reconnects; a fresh page passes ?last_event_id=.
    after = ""
    if "last-event-id" in request.headers:
        after = inputs.checked_event_id(request.headers["last-event-id"], "Last-Event-ID")
    elif "last_event_id" in request.query_params:
        after = inputs.checked_event_id(request.query_params["last_event_id"], "last_event_id")
    backends = backends_of(request)
    settings = settings_of(request)
    # Ask once with a deadline, so an unknown job is a JSON 404 and a down generator a 503, not a dead stream.
    await backends.jobs.GetJob(jobs_pb2.GetJobRequest(job_id=job_id))
    call = backends.jobs.WatchJob(jobs_pb2.WatchJobRequest(job_id=job_id, after_event_id=after))
    stream = job_events(
        call,
        heartbeat=settings.sse_heartbeat,
        max_duration=settings.sse_max_duration,
        retry_ms=settings.sse_retry_ms,
    )
    return StreamingResponse(stream, media_type=MEDIA_TYPE, headers=SSE_HEADERS)


async def list_stories(request: Request) -> Response:
    limit = inputs.query_int(request, "limit", 20, 1, 100)
    cursor = inputs.query_text(request, "cursor", inputs.MAX_CURSOR_CHARS)
    query = inputs.query_text(request, "q", inputs.MAX_QUERY_CHARS).strip()
    reply = await backends_of(request).storage.ListStories(
        storage_pb2.ListStoriesRequest(page_size=limit, page_token=cursor, query=query)
    )
    return JSONResponse(
        {"stories": [summary_json(s) for s in reply.stories], "next_cursor": reply.next_page_token or None}
    )


async def get_story(request: Request) -> Response:
    story_id = inputs.checked_id(request.path_params["story_id"], "story_id")
    reply = await backends_of(request).storage.GetStory(storage_pb2.GetStoryRequest(story_id=story_id))
    if not reply.manifest.story_id:
        reply.manifest.story_id = story_id
    return JSONResponse(story_json(reply.manifest))


async def delete_story(request: Request) -> Response:
    story_id = inputs.checked_id(request.path_params["story_id"], "story_id")
    await backends_of(request).storage.DeleteStory(storage_pb2.DeleteStoryRequest(story_id=story_id))
    return Response(status_code=204)


async def get_asset(request: Request) -> Response:
    story_id = inputs.checked_id(request.path_params["story_id"], "story_id")
    name = inputs.checked_asset_name(request.path_params["name"])
    return await asset_response(request, backends_of(request), settings_of(request), story_id, name)


async def reindex(request: Request) -> Response:
    """Rebuild the library index from the stored stories (what `dreamforge reindex` calls)."""
    settings = settings_of(request)
    # Rebuilding reads every story group: far slower than an ordinary call.
    reply = await backends_of(request).storage.Reindex(
        storage_pb2.ReindexRequest(), timeout=max(settings.rpc_timeout, settings.reindex_timeout)
    )
    return JSONResponse({"story_count": reply.story_count})


routes = [
    resource(f"{PREFIX}/stories", "stories", {"GET": list_stories, "POST": submit_story}),
    resource(f"{PREFIX}/stories/{{story_id}}", "story", {"GET": get_story, "DELETE": delete_story}),
    resource(f"{PREFIX}/stories/{{story_id}}/assets/{{name}}", "asset", {"GET": get_asset}),
    resource(f"{PREFIX}/jobs/{{job_id}}", "job", {"GET": get_job, "DELETE": cancel_job}),
    resource(f"{PREFIX}/jobs/{{job_id}}/events", "job_events", {"GET": job_event_stream}, head=False),
    resource(f"{PREFIX}/admin/reindex", "reindex", {"POST": reindex}),
]
