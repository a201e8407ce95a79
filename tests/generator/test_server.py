"""The JobService over gRPC: status codes and messages, health that follows its dependencies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import redis.asyncio
from dreamforge.v1 import jobs_pb2, jobs_pb2_grpc, storage_pb2, storage_pb2_grpc

from services.common.grpc_client import check_health, open_channel
from services.common.redis_server import free_port
from services.generator.keys import Keys
from services.generator.server import GeneratorServer
from tests.support.generator import generator_settings, running_generator


@pytest.fixture
async def api_only(tmp_path: Path, redis_url: str) -> AsyncIterator[GeneratorServer]:
    # No workers, and a storage address where nothing listens.
    async with running_generator(tmp_path, redis_url, f"127.0.0.1:{free_port()}", workers=False) as server:
        yield server


async def test_health_is_not_serving_while_storage_does_not_answer(api_only: GeneratorServer) -> None:
    async with open_channel(api_only.address) as channel:
        assert not await check_health(channel)


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"prompt": "   "}, "prompt is empty"),
        ({"prompt": "x" * 2001}, "at most 2000"),
        ({"prompt": "ok", "parts": 9}, "parts must be between 1 and 8"),
        ({"prompt": "ok", "style": "s" * 81}, "at most 80"),
    ],
)
async def test_bad_submissions_are_invalid_argument_with_the_reason(
    api_only: GeneratorServer, request_fields: dict[str, object], message: str
) -> None:
    async with open_channel(api_only.address) as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.SubmitJob(jobs_pb2.SubmitJobRequest(**request_fields))  # type: ignore[arg-type]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (caught.value.details() or "")


async def test_submit_get_list_cancel_and_watch_over_grpc(api_only: GeneratorServer) -> None:
    async with open_channel(api_only.address) as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        submitted = await stub.SubmitJob(
            jobs_pb2.SubmitJobRequest(prompt=" a fox ", parts=0, style="", idempotency_key="k1")
        )
        job = submitted.job
        assert submitted.created and job.state == jobs_pb2.JOB_STATE_QUEUED
        assert (job.prompt, job.parts, job.style) == ("a fox", 3, "Pencil and Ink")
        again = await stub.SubmitJob(jobs_pb2.SubmitJobRequest(prompt="a fox", idempotency_key="k1"))
        assert not again.created and again.job.job_id == job.job_id
        fetched = (await stub.GetJob(jobs_pb2.GetJobRequest(job_id=job.job_id))).job
        assert fetched.created_at.ToMilliseconds() > 0
        listed = await stub.ListJobs(jobs_pb2.ListJobsRequest(state=jobs_pb2.JOB_STATE_QUEUED))
        assert [j.job_id for j in listed.jobs] == [job.job_id]
        cancelled = (await stub.CancelJob(jobs_pb2.CancelJobRequest(job_id=job.job_id))).job
        assert cancelled.state == jobs_pb2.JOB_STATE_CANCELLED and cancelled.error.code == "cancelled"
        with pytest.raises(grpc.aio.AioRpcError) as twice:
            await stub.CancelJob(jobs_pb2.CancelJobRequest(job_id=job.job_id))
        assert twice.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        seen = [r.event async for r in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job.job_id), timeout=30)]
        assert [e.WhichOneof("payload") for e in seen] == ["progress", "failed"]
        assert seen[-1].failed.state == jobs_pb2.JOB_STATE_CANCELLED
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetJob(jobs_pb2.GetJobRequest(job_id="0193f3a0-0000-7000-8000-000000000000"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as unknown_watch:
            async for _ in stub.WatchJob(
                jobs_pb2.WatchJobRequest(job_id="0193f3a0-0000-7000-8000-000000000000"), timeout=30
            ):
                pass
        assert unknown_watch.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_job_whose_storage_does_not_answer_is_retried_then_fails_with_the_reason(
    tmp_path: Path, redis_url: str
) -> None:
    dead_storage = f"127.0.0.1:{free_port()}"
    async with (
        running_generator(tmp_path, redis_url, dead_storage, job_max_attempts=2, storage_timeout_seconds=2.0) as gen,
        open_channel(gen.address) as channel,
    ):
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        job = (await stub.SubmitJob(jobs_pb2.SubmitJobRequest(prompt="a fox", parts=1))).job
        events = [reply.event async for reply in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job.job_id), timeout=90)]
        ended = (await stub.GetJob(jobs_pb2.GetJobRequest(job_id=job.job_id))).job
    assert ended.state == jobs_pb2.JOB_STATE_FAILED and ended.attempts == 2
    assert ended.error.code == "retries_exhausted" and "last error" in ended.error.message
    stages = [e.progress.stage for e in events if e.WhichOneof("payload") == "progress"]
    assert "waiting_to_retry" in stages
    assert events[-1].failed.error.code == "retries_exhausted"


async def test_metrics_are_served_when_an_address_is_configured(tmp_path: Path, redis_url: str) -> None:
    async with (
        running_generator(
            tmp_path, redis_url, f"127.0.0.1:{free_port()}", workers=False, metrics_addr="127.0.0.1:0"
        ) as gen,
        open_channel(gen.address) as channel,
    ):
        await jobs_pb2_grpc.JobServiceStub(channel).SubmitJob(jobs_pb2.SubmitJobRequest(prompt="a fox"))
        assert gen._metrics_server is not None
        url = f"http://127.0.0.1:{gen._metrics_server.port}/metrics"
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient() as client:
            while True:
                body = (await client.get(url)).text
                if "dreamforge_queue_depth 1.0" in body:
                    break
                assert time.monotonic() < deadline, body[-2000:]
                await asyncio.sleep(0.2)
    assert "dreamforge_jobs_submitted_total 1.0" in body
    assert 'dreamforge_rpc_requests_total{code="OK",method="SubmitJob",service="generator"} 1.0' in body


async def test_cancelling_a_job_that_waits_for_a_retry_deletes_its_draft(
    tmp_path: Path, redis_url: str, storage: Any, storage_stub: storage_pb2_grpc.StorageServiceAsyncStub
) -> None:
    async with (
        running_generator(tmp_path, redis_url, storage.address, workers=False) as server,
        open_channel(server.address) as channel,
    ):
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        job = (await stub.SubmitJob(jobs_pb2.SubmitJobRequest(prompt="a fox who learns to sing"))).job
        # What an attempt that wrote a draft, then hit a transient error, leaves behind: a queued job
        # holding the draft's id.
        draft = await storage_stub.CreateStory(storage_pb2.CreateStoryRequest(title="The Fox", client_token=job.job_id))
        redis_client = redis.asyncio.Redis.from_url(redis_url)
        try:
            await redis_client.hset(Keys(generator_settings(redis_url, storage.address).redis_prefix).job(job.job_id),
                                    "story_id", draft.story_id)  # fmt: skip
        finally:
            await redis_client.aclose()

        cancelled = (await stub.CancelJob(jobs_pb2.CancelJobRequest(job_id=job.job_id))).job

    assert cancelled.state == jobs_pb2.JOB_STATE_CANCELLED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await storage_stub.ListAssets(storage_pb2.ListAssetsRequest(story_id=draft.story_id))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
