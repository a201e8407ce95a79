"""Bad input is refused before any gRPC call, with a JSON error that names the field (backends are down here)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

STORY = "/api/v1/stories"
SOME_ID = "0193c8f2-7d1e-7c3a-9b2e-3f4a5b6c7d8e"


def assert_error(response: httpx.Response, status: int, code: str, mentions: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"]["code"] == code
    assert mentions in body["error"]["message"]


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({}, "prompt", "required"),
        ({"prompt": None}, "prompt", "required"),
        ({"prompt": 42}, "prompt", "must be a string"),
        ({"prompt": "   "}, "prompt", "not only blanks"),
        ({"prompt": "\u0097\u200b\x1e"}, "prompt", "not only blanks"),
        ({"prompt": "x" * 2001}, "prompt", "at most 2000"),
        ({"prompt": "a bear", "parts": "3"}, "parts", "whole number"),
        ({"prompt": "a bear", "parts": None}, "parts", "whole number"),
        ({"prompt": "a bear", "style": None}, "style", "must be a string"),
        ({"prompt": "a bear", "parts": True}, "parts", "whole number"),
        ({"prompt": "a bear", "parts": 2.5}, "parts", "whole number"),
        ({"prompt": "a bear", "parts": 0}, "parts", "from 1 to 8"),
        ({"prompt": "a bear", "parts": 9}, "parts", "from 1 to 8"),
        ({"prompt": "a bear", "style": ["ink"]}, "style", "must be a string"),
        ({"prompt": "a bear", "style": "s" * 81}, "style", "at most 80"),
        ({"prompt": "a bear", "style": "ink\x07"}, "style", "control characters"),
        ({"prompt": "a bear", "part": 3}, "part", "unknown field"),
    ],
)
async def test_a_story_request_with_a_wrong_field_is_400_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, object], field: str, problem: str
) -> None:
    response = await client.post(STORY, json=body)
    assert_error(response, 400, "invalid_argument", f"{field}: ")
    assert problem in response.json()["error"]["message"]


@pytest.mark.parametrize("raw", [b"", b"{", b"prompt=a+bear", b"\xff\xfe", b"[1, 2]", b'"a bear"'])
async def test_a_body_that_is_not_a_json_object_is_400(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post(STORY, content=raw, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "invalid_argument", "body: ")


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_a_body_not_declared_as_json_is_415(client: httpx.AsyncClient, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post(STORY, content=b'{"prompt": "a bear"}', headers=headers)
    assert_error(response, 415, "unsupported_media_type", "application/json")


async def test_json_with_a_charset_or_a_json_suffix_type_is_accepted_as_json(client: httpx.AsyncClient) -> None:
    # Accepted means it reaches the (down) generator: 503, not 415.
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        response = await client.post(STORY, content=b'{"prompt": "a bear"}', headers={"Content-Type": content_type})
        assert_error(response, 503, "unavailable")


async def test_a_body_over_64_kb_with_content_length_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(STORY, json={"prompt": "x" * (70 * 1024)})
    assert_error(response, 413, "payload_too_large", "65536 bytes")


async def test_a_streamed_body_over_64_kb_without_content_length_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"prompt": "'
        for _ in range(20):
            yield b"x" * 4096
        yield b'"}'

    response = await client.post(STORY, content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "payload_too_large")


async def test_a_body_just_under_the_limit_is_read(client: httpx.AsyncClient) -> None:
    # 60 KB of JSON passes the size check and fails only the prompt length check.
    response = await client.post(STORY, json={"prompt": "x" * (60 * 1024)})
    assert_error(response, 400, "invalid_argument", "prompt: must be at most 2000")


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/jobs/123", "job_id"),
        ("/api/v1/jobs/0193C8F2-7D1E-7C3A-9B2E-3F4A5B6C7D8E", "job_id"),
        ("/api/v1/jobs/not-a-job/events", "job_id"),
        ("/api/v1/stories/abc", "story_id"),
        (f"/api/v1/stories/{SOME_ID}x/assets/text_0", "story_id"),
        (f"/api/v1/stories/{SOME_ID}/assets/a..b", "name"),
        (f"/api/v1/stories/{SOME_ID}/assets/.hidden", "name"),
        (f"/api/v1/stories/{SOME_ID}/assets/a%20b", "name"),
        (f"/api/v1/stories/{SOME_ID}/assets/{'n' * 201}", "name"),
    ],
)
async def test_ids_and_asset_names_are_checked_before_any_call(
    client: httpx.AsyncClient, path: str, field: str
) -> None:
    # The backends are down: a 400 proves no call was attempted.
    response = await client.get(path)
    assert_error(response, 400, "invalid_argument", f"{field}: ")


async def test_a_job_id_is_checked_before_cancelling(client: httpx.AsyncClient) -> None:
    assert_error(await client.delete("/api/v1/jobs/nope"), 400, "invalid_argument", "job_id: ")
    assert_error(await client.delete("/api/v1/stories/nope"), 400, "invalid_argument", "story_id: ")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("limit=-1", "limit"),
        ("q=" + "q" * 201, "q"),
    ],
)
async def test_list_query_parameters_are_checked(client: httpx.AsyncClient, query: str, field: str) -> None:
    assert_error(await client.get(f"{STORY}?{query}"), 400, "invalid_argument", f"{field}: ")


async def test_a_malformed_last_event_id_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/api/v1/jobs/{SOME_ID}/events", headers={"Last-Event-ID": "abc"})
    assert_error(response, 400, "invalid_argument", "Last-Event-ID: ")
    response = await client.get(f"/api/v1/jobs/{SOME_ID}/events", params={"last_event_id": ""})
    assert_error(response, 400, "invalid_argument", "last_event_id: ")


@pytest.mark.parametrize("key", ["k" * 201, "", "two words"])
async def test_a_malformed_idempotency_key_is_400(client: httpx.AsyncClient, key: str) -> None:
    response = await client.post(STORY, json={"prompt": "a bear"}, headers={"Idempotency-Key": key})
    assert_error(response, 400, "invalid_argument", "Idempotency-Key: ")


async def test_the_original_routes_refuse_bad_bodies_in_their_own_shape_too(client: httpx.AsyncClient) -> None:
    too_large = await client.post("/api/stories", json={"prompt": "x" * (70 * 1024)})
    assert_error(too_large, 413, "payload_too_large")
    assert too_large.json()["message"] == too_large.json()["error"]["message"]
    empty = await client.post("/api/jobs", json={"prompt": " "})
    assert_error(empty, 400, "invalid_argument", "prompt: ")
    assert empty.json()["message"].startswith("prompt: ")
    assert_error(await client.post("/api/jobs", content=b"prompt=x"), 415, "unsupported_media_type")
