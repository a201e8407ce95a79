"""The `openai` engines against the fake OpenAI server: the real client, real HTTP, failures sorted right."""

from __future__ import annotations

import json

import openai
import pytest

from services.generator.engines.base import ImageRequest, Repair, TextRequest
from services.generator.engines.openai_image import OpenAIImageEngine
from services.generator.engines.openai_text import OpenAITextEngine
from services.generator.failures import PermanentFailure, TransientFailure
from services.generator.images import PNG_MAGIC
from services.generator.story_format import StoryStream
from tests.fakes.openai_server import CHAT, CONTENT_POLICY_MESSAGE, IMAGES, Failure, FakeOpenAI


def _text_engine(client: openai.AsyncOpenAI) -> OpenAITextEngine:
    return OpenAITextEngine(client, model="gpt-4o-mini", temperature=0.75, base_url=None)


def _request(parts: int = 3) -> TextRequest:
    return TextRequest(prompt="a bear who finds honey", parts=parts, style="Pencil and Ink", seed=5)


def _image_request() -> ImageRequest:
    return ImageRequest(
        prompt="ink: a bear", scene="a bear", part_index=0, parts=1, part_title="T", style="ink", seed=1
    )


async def _write(engine: OpenAITextEngine, request: TextRequest) -> tuple[list[str], str]:
    chunks = [chunk async for chunk in engine.write_story(request)]
    return chunks, "".join(chunks)


async def test_the_story_streams_in_many_chunks_with_a_json_schema(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    chunks, document = await _write(_text_engine(openai_client), _request(parts=4))
    assert len(chunks) > 20
    stream = StoryStream(4)
    stream.feed(document)
    story, _ = stream.finish()
    assert len(story.parts) == 4
    body = fake_openai.requests[-1].body
    assert body["stream"] is True and body["model"] == "gpt-4o-mini" and body["seed"] == 5
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["parts"]["minItems"] == 4
    assert "a bear who finds honey" in body["messages"][1]["content"]


async def test_a_server_without_json_schema_gets_json_object_instead(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.json_schema_supported = False
    engine = _text_engine(openai_client)
    _chunks, document = await _write(engine, _request())
    assert json.loads(document)["title"]
    assert [r.body["response_format"]["type"] for r in fake_openai.requests] == ["json_schema", "json_object"]
    await _write(engine, _request())  # remembered: no second refusal
    assert fake_openai.requests[-1].body["response_format"]["type"] == "json_object"
    assert engine.response_format_in_use == "json_object"


async def test_a_repair_request_shows_the_model_its_answer_and_the_problem(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    request = TextRequest(
        prompt="owls", parts=2, style="ink", seed=1, repair=Repair(previous_answer='{"title": "x', problem="bad JSON")
    )
    await _write(_text_engine(openai_client), request)
    messages = fake_openai.requests[-1].body["messages"]
    assert messages[2] == {"role": "assistant", "content": '{"title": "x'}
    assert "bad JSON" in messages[3]["content"] and "exactly 2 parts" in messages[3]["content"]


async def test_rate_limits_are_transient_and_carry_retry_after(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.fail_next(CHAT, Failure(429, "Rate limit reached", code="rate_limit_exceeded", retry_after=7))
    with pytest.raises(TransientFailure) as caught:
        await _write(_text_engine(openai_client), _request())
    assert caught.value.code == "rate_limited" and caught.value.retry_after == 7


async def test_server_errors_are_transient(fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI) -> None:
    fake_openai.fail_next(IMAGES, Failure(500, "The server had an error"))
    engine = OpenAIImageEngine(openai_client, model="gpt-image-1", size="1024x1024", base_url=None)
    with pytest.raises(TransientFailure, match="500"):
        await engine.draw(_image_request())


async def test_a_slow_server_is_a_transient_timeout(fake_openai: FakeOpenAI) -> None:
    fake_openai.image_delay_seconds = 3
    client = openai.AsyncOpenAI(api_key="test-key", base_url=fake_openai.base_url, max_retries=0, timeout=0.5)
    engine = OpenAIImageEngine(client, model="gpt-image-1", size="1024x1024", base_url=None)
    with pytest.raises(TransientFailure) as caught:
        await engine.draw(_image_request())
    assert caught.value.code == "model_timeout"
    await client.close()


async def test_a_content_policy_refusal_is_permanent(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    fake_openai.fail_next(
        IMAGES,
        Failure(400, CONTENT_POLICY_MESSAGE, code="content_policy_violation", type="image_generation_user_error"),
    )
    engine = OpenAIImageEngine(openai_client, model="gpt-image-1", size="1024x1024", base_url=None)
    with pytest.raises(PermanentFailure) as caught:
        await engine.draw(_image_request())
    assert caught.value.code == "content_policy"


async def test_other_400s_and_bad_keys_are_permanent(fake_openai: FakeOpenAI) -> None:
    fake_openai.fail_next(CHAT, Failure(400, "Invalid 'temperature'", type="invalid_request_error"))
    client = openai.AsyncOpenAI(api_key="test-key", base_url=fake_openai.base_url, max_retries=0)
    with pytest.raises(PermanentFailure) as rejected:
        await _write(_text_engine(client), _request())
    assert rejected.value.code == "model_rejected"
    wrong_key = openai.AsyncOpenAI(api_key="wrong", base_url=fake_openai.base_url, max_retries=0)
    with pytest.raises(PermanentFailure) as refused:
        await _write(_text_engine(wrong_key), _request())
    assert refused.value.code == "model_auth"
    assert "wrong" not in refused.value.message
    await client.close()
    await wrong_key.close()


async def test_gpt_image_models_are_not_sent_response_format(
    fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI
) -> None:
    image = await OpenAIImageEngine(openai_client, model="gpt-image-1", size="1024x1024", base_url=None).draw(
        _image_request()
    )
    assert image.content_type == "image/png" and image.data.startswith(PNG_MAGIC)
    assert "response_format" not in fake_openai.requests[-1].body


async def test_dall_e_models_are_asked_for_base64(fake_openai: FakeOpenAI, openai_client: openai.AsyncOpenAI) -> None:
    image = await OpenAIImageEngine(openai_client, model="dall-e-3", size="1024x1024", base_url=None).draw(
        _image_request()
    )
    assert image.data.startswith(PNG_MAGIC)
    assert fake_openai.requests[-1].body["response_format"] == "b64_json"
