"""The `openai` engines end to end against the fake OpenAI server and the real storage service.

Submit -> streamed story -> parts and pictures stored -> committed manifest; and
every way a model can misbehave: repairable and unrepairable answers, rate
limits, server errors until retries run out, a content-policy refusal.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from dreamforge.v1 import jobs_pb2, jobs_pb2_grpc, storage_pb2, storage_pb2_grpc

from services.common.config import Secret
from services.common.grpc_client import open_channel
from services.generator.images import image_type
from services.generator.server import GeneratorServer
from tests.fakes.openai_server import CHAT, IMAGES, Failure, FakeOpenAI
from tests.generator.conftest import FINAL_STATES, committed_story_ids, read_asset, wait_for_job, watch_all
from tests.support.generator import running_generator


@asynccontextmanager
async def _generator(
    tmp_path: Path, redis_url: str, storage: Any, fake: FakeOpenAI, **overrides: Any
) -> AsyncIterator[tuple[GeneratorServer, jobs_pb2_grpc.JobServiceAsyncStub]]:
    settings: dict[str, Any] = {
        "text_engine": "openai",
        "image_engine": "openai",
        "openai_api_key": Secret("test-key"),
        "openai_base_url": fake.base_url,
        "model_call_attempts": 2,
        **overrides,
    }
    async with (
        running_generator(tmp_path, redis_url, storage.address, **settings) as gen,
        open_channel(gen.address) as channel,
    ):
        yield gen, jobs_pb2_grpc.JobServiceStub(channel)


async def _run(
    stub: jobs_pb2_grpc.JobServiceAsyncStub, prompt: str = "a bear who finds honey", parts: int = 3
) -> tuple[jobs_pb2.Job, list[jobs_pb2.JobEvent]]:
    job = (await stub.SubmitJob(jobs_pb2.SubmitJobRequest(prompt=prompt, parts=parts))).job
    events = await watch_all(stub, job.job_id)
    return await wait_for_job(stub, job.job_id, FINAL_STATES), events


async def test_a_story_is_written_drawn_and_committed_with_the_openai_engines(
    tmp_path: Path,
    redis_url: str,
    storage: Any,
    storage_stub: storage_pb2_grpc.StorageServiceAsyncStub,
    fake_openai: FakeOpenAI,
) -> None:
    async with _generator(tmp_path, redis_url, storage, fake_openai) as (gen, stub):
        job, events = await _run(stub)
    assert job.state == jobs_pb2.JOB_STATE_SUCCEEDED
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds.count("part") == 3 and kinds.count("image") == 3 and kinds[-1] == "done"
    manifest = (await storage_stub.GetStory(storage_pb2.GetStoryRequest(story_id=job.story_id))).manifest
    generation = manifest.generation
    assert (generation.text_engine, generation.text_model) == ("openai", "gpt-4o-mini")
    assert (generation.image_engine, generation.image_model) == ("openai", "gpt-image-1")
    assert not generation.offline and generation.job_id == job.job_id and generation.seed != 0
    assert generation.parameters["text.temperature"] == "0.75"
    assert [c.name for c in manifest.characters] == ["Mira", "Bo"]
    for part in manifest.parts:
        picture = await read_asset(storage_stub, job.story_id, part.image_asset.name)
        assert image_type(picture) == "image/png" == part.image_asset.content_type
    # Each picture's prompt = style + the character sheet + its scene.
    prompts = fake_openai.image_prompts()
    assert len(prompts) == 3
    for prompt in prompts:
        assert "Pencil and Ink" in prompt and "Mira: a small girl with a yellow raincoat" in prompt
    assert sorted(p.split("Scene: ")[1][:30] for p in prompts) == sorted(
        part.illustration_prompt[:30] for part in manifest.parts
    )
    assert await committed_story_ids(storage_stub) == [job.story_id]
    assert gen.registry.get_sample_value("dreamforge_jobs_finished_total", {"state": "succeeded"}) == 1


async def test_an_unusable_answer_is_repaired_once(
    tmp_path: Path,
    redis_url: str,
    storage: Any,
    storage_stub: storage_pb2_grpc.StorageServiceAsyncStub,
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.invalid_json_answers = 1
    async with _generator(tmp_path, redis_url, storage, fake_openai) as (_gen, stub):
        job, events = await _run(stub, parts=2)
    assert job.state == jobs_pb2.JOB_STATE_SUCCEEDED and job.attempts == 1
    assert fake_openai.count(CHAT) == 2
    repair_messages = [r for r in fake_openai.requests if r.endpoint == CHAT][-1].body["messages"]
    assert "not valid JSON" in repair_messages[-1]["content"]
    assert any(e.WhichOneof("payload") == "progress" and e.progress.restart for e in events)
    manifest = (await storage_stub.GetStory(storage_pb2.GetStoryRequest(story_id=job.story_id))).manifest
    assert json.loads(manifest.extra_json)["text_repaired"] is True


async def test_an_answer_that_stays_unusable_fails_at_once_with_a_clear_message(
    tmp_path: Path,
    redis_url: str,
    storage: Any,
    storage_stub: storage_pb2_grpc.StorageServiceAsyncStub,
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.wrong_part_count_answers = 2
    async with _generator(tmp_path, redis_url, storage, fake_openai) as (gen, stub):
        job, events = await _run(stub, parts=2)
        dead = await gen.service.list_jobs(None, 10, "")
    assert job.state == jobs_pb2.JOB_STATE_FAILED and job.attempts == 1
    assert job.error.code == "invalid_output" and "after one repair attempt" in job.error.message
    assert "more than the 2 parts" in job.error.message
    assert events[-1].failed.error.code == "invalid_output"
    assert [j.id for j in dead[0]] == [job.job_id]
    assert await committed_story_ids(storage_stub) == []


async def test_a_rate_limit_is_waited_out_and_the_job_succeeds(
    tmp_path: Path, redis_url: str, storage: Any, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fail_next(CHAT, Failure(429, "Rate limit reached", code="rate_limit_exceeded", retry_after=0.2))
    fake_openai.fail_next(IMAGES, Failure(503, "Overloaded"))
    async with _generator(tmp_path, redis_url, storage, fake_openai) as (gen, stub):
        job, _events = await _run(stub, parts=1)
    assert job.state == jobs_pb2.JOB_STATE_SUCCEEDED and job.attempts == 1
    assert (
        gen.registry.get_sample_value("dreamforge_model_call_retries_total", {"kind": "text", "code": "rate_limited"})
        == 1
    )
    assert (
        gen.registry.get_sample_value(
            "dreamforge_model_call_retries_total", {"kind": "image", "code": "model_unavailable"}
        )
        == 1
    )


async def test_a_job_is_retried_later_and_then_succeeds(
    tmp_path: Path, redis_url: str, storage: Any, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fail_next(IMAGES, Failure(500, "The server had an error"), times=2)  # both calls of attempt 1
    async with _generator(tmp_path, redis_url, storage, fake_openai) as (_gen, stub):
        job, events = await _run(stub, parts=1)
    assert job.state == jobs_pb2.JOB_STATE_SUCCEEDED and job.attempts == 2
    stages = [e.progress.stage for e in events if e.WhichOneof("payload") == "progress"]
    assert "waiting_to_retry" in stages
    assert fake_openai.count(CHAT) == 1  # the story text was checkpointed, not written again


async def test_when_retries_run_out_the_job_fails_with_the_last_reason_and_is_a_dead_letter(
    tmp_path: Path,
    redis_url: str,
    storage: Any,
    storage_stub: storage_pb2_grpc.StorageServiceAsyncStub,
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.fail_next(IMAGES, Failure(500, "The server had an error"), times=100)
    async with _generator(tmp_path, redis_url, storage, fake_openai, job_max_attempts=2) as (gen, stub):
        job, events = await _run(stub, parts=1)
        listed = await stub.ListJobs(jobs_pb2.ListJobsRequest(state=jobs_pb2.JOB_STATE_FAILED))
    assert job.state == jobs_pb2.JOB_STATE_FAILED and job.attempts == 2
    assert job.error.code == "retries_exhausted" and "500" in job.error.message
    assert [j.job_id for j in listed.jobs] == [job.job_id]
    assert events[-1].failed.error.code == "retries_exhausted"
    assert fake_openai.count(IMAGES, status=500) == 4  # 2 calls per attempt, 2 attempts
    assert await committed_story_ids(storage_stub) == []
    assert gen.registry.get_sample_value("dreamforge_jobs_finished_total", {"state": "failed"}) == 1


async def test_a_content_policy_refusal_fails_the_job_at_once(
    tmp_path: Path,
    redis_url: str,
    storage: Any,
    storage_stub: storage_pb2_grpc.StorageServiceAsyncStub,
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.image_policy_refusal_words = ("scene 2",)
    async with _generator(tmp_path, redis_url, storage, fake_openai) as (_gen, stub):
        job, _events = await _run(stub, parts=3)
    assert job.state == jobs_pb2.JOB_STATE_FAILED and job.attempts == 1
    assert job.error.code == "content_policy" and "safety system" in job.error.message
    assert fake_openai.count(IMAGES, status=400) == 1
    assert await committed_story_ids(storage_stub) == []
