"""The original app's routes answer with its JSON shapes (compatibility), against the real services."""

from __future__ import annotations

import httpx
import pytest

from tests.gateway.test_inputs import SOME_ID
from tests.support.stack import make_story, wait_for_job


def assert_legacy_error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["message"] == message
    assert body["error"]["message"] == message


async def test_listing_before_the_first_story_is_404_index_not_found(api: httpx.AsyncClient) -> None:
    assert_legacy_error(await api.get("/api/stories"), 404, "Index not found")


@pytest.mark.parametrize("path", ["/api/stories", "/api/jobs"])
async def test_submitting_answers_202_job_submitted_with_the_job_id(api: httpx.AsyncClient, path: str) -> None:
    response = await api.post(path, json={"prompt": "a bear who finds a mine full of honey"})
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"message", "jobId"}
    assert body["message"] == "Job submitted"
    status = (await api.get(f"/api/jobs/{body['jobId']}")).json()
    assert set(status) == {"jobId", "failedReason", "failed", "status"}
    assert status["jobId"] == body["jobId"]
    assert status["status"] in ("in progress", "completed")
    await wait_for_job(api, body["jobId"])
    done = (await api.get(f"/api/jobs/{body['jobId']}")).json()
    assert done == {"jobId": body["jobId"], "failedReason": None, "failed": False, "status": "completed"}


async def test_submitting_ignores_fields_the_original_ignored_but_checks_the_prompt(api: httpx.AsyncClient) -> None:
    accepted = await api.post("/api/stories", json={"prompt": "a kind giant", "color": "blue"})
    assert accepted.status_code == 202
    refused = await api.post("/api/stories", json={"prompt": ""})
    assert refused.status_code == 400
    assert "prompt" in refused.json()["message"]


@pytest.mark.parametrize("job_id", [SOME_ID, "42", "not-a-job"])
async def test_an_unknown_job_is_404_job_not_found(api: httpx.AsyncClient, job_id: str) -> None:
    assert_legacy_error(await api.get(f"/api/jobs/{job_id}"), 404, "Job not found")


async def test_a_cancelled_job_reads_as_completed_and_failed(idle_api: httpx.AsyncClient) -> None:
    submitted = (await idle_api.post("/api/jobs", json={"prompt": "a story that stops early"})).json()
    waiting = (await idle_api.get(f"/api/jobs/{submitted['jobId']}")).json()
    assert waiting == {"jobId": submitted["jobId"], "failedReason": None, "failed": False, "status": "in progress"}
    assert (await idle_api.delete(f"/api/v1/jobs/{submitted['jobId']}")).status_code == 200
    status = (await idle_api.get(f"/api/jobs/{submitted['jobId']}")).json()
    assert status["failed"] is True
    assert status["status"] == "completed"
    assert status["failedReason"]


async def test_stories_list_group_ids_and_titles_oldest_first(api: httpx.AsyncClient) -> None:
    first = await make_story(api, prompt="an otter who runs a ferry", parts=1)
    second = await make_story(api, prompt="a cloud who is afraid of heights", parts=1)
    body = (await api.get("/api/stories")).json()
    assert list(body) == ["stories"]
    assert [s["groupId"] for s in body["stories"]] == [first["story_id"], second["story_id"]]
    for story in body["stories"]:
        assert set(story) == {"groupId", "title"}
        assert story["title"]


async def test_a_story_lists_its_text_and_image_files_with_cids(api: httpx.AsyncClient) -> None:
    job = await make_story(api, parts=2)
    body = (await api.get(f"/api/stories/{job['story_id']}")).json()
    assert list(body) == ["storyParts"]
    names = [p["name"] for p in body["storyParts"]]
    assert names == ["text_0", "text_1", "image_0", "image_1"]
    assert all(p["cid"] for p in body["storyParts"])


async def test_a_text_part_is_json_text_and_an_image_part_is_the_picture(api: httpx.AsyncClient) -> None:
    job = await make_story(api, parts=1)
    story = (await api.get(f"/api/v1/stories/{job['story_id']}")).json()
    text = await api.get(f"/api/stories/{job['story_id']}/text_0")
    assert text.status_code == 200
    assert list(text.json()) == ["text"]
    assert text.json()["text"].strip()
    assert story["parts"][0]["text"].strip()[:20] in text.json()["text"]
    image = await api.get(f"/api/stories/{job['story_id']}/image_0")
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")


async def test_an_unknown_part_is_404_part_not_found(api: httpx.AsyncClient) -> None:
    job = await make_story(api, parts=1)
    for part in ("text_9", "image_9", "story.json", "cover", "text_x"):
        assert_legacy_error(await api.get(f"/api/stories/{job['story_id']}/{part}"), 404, "Part not found")


async def test_parts_of_an_unknown_story_are_404(api: httpx.AsyncClient) -> None:
    assert_legacy_error(await api.get(f"/api/stories/{SOME_ID}/text_0"), 404, "Part not found")
    assert_legacy_error(await api.get("/api/stories/17/text_0"), 404, "Part not found")
    assert_legacy_error(await api.get(f"/api/stories/{SOME_ID}"), 404, "Story not found")
