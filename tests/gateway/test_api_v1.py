"""REST API v1 against real storage and generator servers (offline engines) and a real Redis."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common.logs import request_id_var
from tests.gateway.test_inputs import SOME_ID, assert_error
from tests.support.stack import make_story, running_stack, wait_for_job

JOB_FIELDS = {"id", "state", "stage", "progress", "story_id", "error", "attempts", "created_at", "updated_at"}


def parse_sse(text: str) -> list[dict[str, Any]]:
    """The messages of an event stream: {"id", "event", "data"} (comments and retry hints dropped)."""
    import json

    messages = []
    for block in text.split("\n\n"):
        message: dict[str, Any] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":") or line.startswith("retry:"):
                continue
            field, _, value = line.partition(": ")
            message[field] = json.loads(value) if field == "data" else value
        if message:
            messages.append(message)
    return messages


async def test_submitting_a_story_answers_202_with_the_job_and_its_location(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/v1/stories", json={"prompt": "a fox who learns to sail", "parts": 2, "style": "Watercolour"}
    )
    assert response.status_code == 202, response.text
    job = response.json()["job"]
    assert set(job) >= JOB_FIELDS
    assert job["state"] in ("queued", "running")
    assert response.headers["location"] == f"/api/v1/jobs/{job['id']}"
    finished = await wait_for_job(api, job["id"])
    assert finished["state"] == "succeeded"
    assert finished["progress"] == 100
    assert finished["story_id"]
    assert finished["error"] is None


async def test_the_same_idempotency_key_returns_the_same_job(api: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "once-only-1"}
    first = await api.post("/api/v1/stories", json={"prompt": "a quiet owl"}, headers=headers)
    second = await api.post("/api/v1/stories", json={"prompt": "a quiet owl"}, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["job"]["id"] == second.json()["job"]["id"]


async def test_an_unknown_job_is_404(api: httpx.AsyncClient) -> None:
    assert_error(await api.get(f"/api/v1/jobs/{SOME_ID}"), 404, "not_found")
    assert_error(await api.get(f"/api/v1/jobs/{SOME_ID}/events"), 404, "not_found")
    assert_error(await api.delete(f"/api/v1/jobs/{SOME_ID}"), 404, "not_found")


async def test_cancelling_a_queued_job_ends_it_and_its_event_stream(idle_api: httpx.AsyncClient) -> None:
    job = (await idle_api.post("/api/v1/stories", json={"prompt": "a story nobody writes"})).json()["job"]
    response = await idle_api.delete(f"/api/v1/jobs/{job['id']}")
    assert response.status_code == 200
    assert response.json()["id"] == job["id"]
    assert response.json()["state"] == "cancelled"
    messages = parse_sse((await idle_api.get(f"/api/v1/jobs/{job['id']}/events")).text)
    assert messages[-1]["event"] == "failed"
    assert messages[-1]["data"]["state"] == "cancelled"
    assert_error(await idle_api.delete(f"/api/v1/jobs/{job['id']}"), 409, "failed_precondition")


async def test_cancelling_a_finished_job_is_409(api: httpx.AsyncClient) -> None:
    job = await make_story(api, parts=1)
    assert_error(await api.delete(f"/api/v1/jobs/{job['id']}"), 409, "failed_precondition")


async def test_the_event_stream_has_ids_every_kind_and_ends_after_done(api: httpx.AsyncClient) -> None:
    job = await make_story(api, parts=2)
    response = await api.get(f"/api/v1/jobs/{job['id']}/events")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"].startswith("no-cache")
    assert response.text.startswith("retry: ")
    messages = parse_sse(response.text)
    kinds = [m["event"] for m in messages]
    assert {"progress", "text", "part", "image", "done"} <= set(kinds)
    assert kinds[-1] == "done"
    assert all(m["id"] for m in messages)
    assert len({m["id"] for m in messages}) == len(messages)
    done = messages[-1]["data"]
    assert done["story_id"] == job["story_id"]
    image = next(m["data"] for m in messages if m["event"] == "image")
    assert image["image"]["url"].startswith(f"/api/v1/stories/{job['story_id']}/assets/")


async def test_last_event_id_resumes_the_stream_without_loss(api: httpx.AsyncClient) -> None:
    job = await make_story(api, parts=2)
    whole = parse_sse((await api.get(f"/api/v1/jobs/{job['id']}/events")).text)
    assert len(whole) > 4
    cut = whole[3]["id"]
    resumed = parse_sse((await api.get(f"/api/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": cut})).text)
    assert resumed == whole[4:]
    by_query = parse_sse((await api.get(f"/api/v1/jobs/{job['id']}/events", params={"last_event_id": cut})).text)
    assert by_query == whole[4:]


async def test_a_story_has_title_parts_pictures_characters_and_engine(api: httpx.AsyncClient) -> None:
    job = await make_story(api, prompt="a lighthouse keeper and a whale", parts=3)
    response = await api.get(f"/api/v1/stories/{job['story_id']}")
    assert response.status_code == 200
    story = response.json()
    assert story["id"] == job["story_id"]
    assert story["title"]
    assert story["prompt"] == "a lighthouse keeper and a whale"
    assert story["created_at"].endswith("Z")
    assert [p["index"] for p in story["parts"]] == [0, 1, 2]
    for part in story["parts"]:
        assert part["text"]
        assert part["image"]["content_type"] == "image/png"
        assert part["image"]["url"] == f"/api/v1/stories/{story['id']}/assets/{part['image']['name']}"
    assert isinstance(story["characters"], list)
    assert story["engine"]["offline"] is True
    assert "not an AI model" in story["engine"]["label"]


async def test_the_library_is_newest_first_with_cursor_pages_and_search(api: httpx.AsyncClient) -> None:
    empty = await api.get("/api/v1/stories")
    assert empty.json() == {"stories": [], "next_cursor": None}
    first = await make_story(api, prompt="a dragon who collects teacups", parts=1)
    second = await make_story(api, prompt="a snail who races the wind", parts=1)
    third = await make_story(api, prompt="a robot who plants a garden", parts=1)
    page = (await api.get("/api/v1/stories", params={"limit": 2})).json()
    assert [s["id"] for s in page["stories"]] == [third["story_id"], second["story_id"]]
    assert page["next_cursor"]
    for story in page["stories"]:
        assert set(story) == {"id", "title", "created_at", "cover_url"}
        assert story["cover_url"].startswith(f"/api/v1/stories/{story['id']}/assets/")
    rest = (await api.get("/api/v1/stories", params={"limit": 2, "cursor": page["next_cursor"]})).json()
    assert [s["id"] for s in rest["stories"]] == [first["story_id"]]
    assert rest["next_cursor"] is None
    title = (await api.get(f"/api/v1/stories/{second['story_id']}")).json()["title"]
    found = (await api.get("/api/v1/stories", params={"q": title.upper()})).json()
    assert second["story_id"] in [s["id"] for s in found["stories"]]
    nothing = (await api.get("/api/v1/stories", params={"q": "no title has this"})).json()
    assert nothing["stories"] == []


async def test_a_file_is_streamed_with_its_type_etag_and_immutable_caching(api: httpx.AsyncClient) -> None:
    job = await make_story(api, parts=1)
    story = (await api.get(f"/api/v1/stories/{job['story_id']}")).json()
    image = story["parts"][0]["image"]
    response = await api.get(image["url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["etag"] == f'"{image["cid"]}"'
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["accept-ranges"] == "bytes"
    assert int(response.headers["content-length"]) == image["size"] == len(response.content)
    assert response.content.startswith(b"\x89PNG")
    text = await api.get(f"/api/v1/stories/{story['id']}/assets/text_0")
    assert text.headers["content-type"].startswith("text/plain")
    assert story["parts"][0]["text"] in text.text or text.text in story["parts"][0]["text"]


async def test_a_matching_if_none_match_is_304_and_head_sends_no_body(api: httpx.AsyncClient) -> None:
    job = await make_story(api, parts=1)
    image = (await api.get(f"/api/v1/stories/{job['story_id']}")).json()["parts"][0]["image"]
    etag = f'"{image["cid"]}"'
    cached = await api.get(image["url"], headers={"If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == etag
    stale = await api.get(image["url"], headers={"If-None-Match": '"something-else"'})
    assert stale.status_code == 200
    head = await api.head(image["url"])
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) == image["size"]
    assert head.headers["etag"] == etag


async def test_a_range_is_206_with_content_range_and_an_impossible_one_is_416(api: httpx.AsyncClient) -> None:
    job = await make_story(api, parts=1)
    image = (await api.get(f"/api/v1/stories/{job['story_id']}")).json()["parts"][0]["image"]
    whole = (await api.get(image["url"])).content
    size = len(whole)
    first = await api.get(image["url"], headers={"Range": "bytes=0-9"})
    assert first.status_code == 206
    assert first.headers["content-range"] == f"bytes 0-9/{size}"
    assert first.content == whole[:10]
    middle = await api.get(image["url"], headers={"Range": "bytes=100-"})
    assert middle.status_code == 206
    assert middle.content == whole[100:]
    tail = await api.get(image["url"], headers={"Range": "bytes=-16"})
    assert tail.content == whole[-16:]
    assert tail.headers["content-range"] == f"bytes {size - 16}-{size - 1}/{size}"
    beyond = await api.get(image["url"], headers={"Range": f"bytes={size}-"})
    assert_error(beyond, 416, "range_not_satisfiable")
    assert beyond.headers["content-range"] == f"bytes */{size}"
    ignored = await api.get(image["url"], headers={"Range": "bytes=0-1,5-6"})
    assert ignored.status_code == 200
    assert ignored.content == whole


async def test_unknown_stories_and_files_are_404(api: httpx.AsyncClient) -> None:
    assert_error(await api.get(f"/api/v1/stories/{SOME_ID}"), 404, "not_found")
    assert_error(await api.get(f"/api/v1/stories/{SOME_ID}/assets/image_0"), 404, "not_found")
    assert_error(await api.delete(f"/api/v1/stories/{SOME_ID}"), 404, "not_found")
    job = await make_story(api, parts=1)
    assert_error(await api.get(f"/api/v1/stories/{job['story_id']}/assets/image_7"), 404, "not_found")
    head = await api.head(f"/api/v1/stories/{job['story_id']}/assets/image_7")
    assert head.status_code == 404


async def test_deleting_a_story_removes_it_from_the_library(api: httpx.AsyncClient) -> None:
    job = await make_story(api, parts=1)
    story_id = job["story_id"]
    response = await api.delete(f"/api/v1/stories/{story_id}")
    assert response.status_code == 204
    assert response.content == b""
    assert_error(await api.get(f"/api/v1/stories/{story_id}"), 404, "not_found")
    assert_error(await api.get(f"/api/v1/stories/{story_id}/assets/image_0"), 404, "not_found")
    assert_error(await api.get(f"/api/stories/{story_id}/text_0"), 404, "not_found")
    listed = (await api.get("/api/v1/stories")).json()["stories"]
    assert story_id not in [s["id"] for s in listed]


async def test_reindex_rebuilds_the_index_and_counts_the_stories(api: httpx.AsyncClient) -> None:
    await make_story(api, parts=1)
    response = await api.post("/api/v1/admin/reindex")
    assert response.status_code == 200
    assert response.json() == {"story_count": 1}


async def test_readyz_is_200_when_both_backends_serve(api: httpx.AsyncClient) -> None:
    response = await api.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"storage": "serving", "generator": "serving"}}


async def test_jobs_submitted_are_counted(api: httpx.AsyncClient) -> None:
    await api.post("/api/v1/stories", json={"prompt": "a counting crow", "parts": 1})
    text = (await api.get("/metrics")).text
    assert 'dreamforge_jobs_submitted_total{api="v1",created="true"} 1.0' in text


async def test_the_request_id_travels_to_the_backends(api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    # Storage runs in this process: its interceptor puts the id it received in request_id_var,
    # and its log line for the failed call is written while that id is set.
    seen: list[str | None] = []

    class _Capture(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if "GetStory failed" in record.getMessage():
                seen.append(request_id_var.get())
            return True

    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(_Capture())
    response = await api.get(f"/api/v1/stories/{SOME_ID}", headers={"X-Request-ID": "travels-42"})
    assert response.status_code == 404
    assert seen == ["travels-42"]


async def test_an_idle_event_stream_sends_heartbeats_and_closes_at_its_time_limit(
    tmp_path: Path, redis_url: str
) -> None:
    async with (
        running_stack(
            tmp_path, redis_url, generator_overrides={"workers": 0}, sse_heartbeat=0.2, sse_max_duration=3.0
        ) as stack,
        httpx.AsyncClient(base_url=stack.gateway.url, timeout=60) as http,
    ):
        job = (await http.post("/api/v1/stories", json={"prompt": "a very slow story"})).json()["job"]
        text = (await http.get(f"/api/v1/jobs/{job['id']}/events")).text
    # The job never runs: after its first event the stream idles, beats, and ends at the time limit.
    assert text.count(": heartbeat\n\n") >= 2
    assert "reconnect with Last-Event-ID" in text
    messages = parse_sse(text)
    assert [m["event"] for m in messages] == ["progress"]
