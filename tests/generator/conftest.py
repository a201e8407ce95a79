"""Fixtures for the generator's tests: the fake OpenAI server and clients pointed at it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import redis.asyncio as aioredis
from dreamforge.v1 import jobs_pb2, jobs_pb2_grpc, storage_pb2, storage_pb2_grpc

from services.common.grpc_client import open_channel
from services.generator.jobs import JobStore
from services.generator.keys import Keys
from services.generator.queue import JobQueue
from services.generator.validation import StoryRequest
from tests.fakes.openai_server import FakeOpenAI

FAKE_KEY = "test-key"


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def openai_client(fake_openai: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(api_key=FAKE_KEY, base_url=fake_openai.base_url, max_retries=0, timeout=10)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def gen_redis(redis_url: str) -> AsyncIterator[Any]:
    """A client the way the generator uses Redis (decoded strings)."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def keys() -> Keys:
    return Keys("test:gen")


@pytest.fixture
def store(gen_redis: Any, keys: Keys) -> JobStore:
    return JobStore(gen_redis, keys, retention_seconds=3600)


def make_queue(redis: Any, store: JobStore, name: str, *, visibility: float = 30.0) -> JobQueue:
    return JobQueue(redis, store, consumer=name, visibility_timeout=visibility, retention_seconds=3600)


def story_request(prompt: str = "a bear who finds honey", parts: int = 2) -> StoryRequest:
    return StoryRequest(prompt=prompt, parts=parts, style="Pencil and Ink")


async def wait_for_job(
    stub: jobs_pb2_grpc.JobServiceAsyncStub, job_id: str, states: set[Any], timeout: float = 60.0
) -> jobs_pb2.Job:
    """Poll GetJob until the job is in one of ``states`` (generous deadline; never a timing assert)."""
    deadline = time.monotonic() + timeout
    while True:
        job = (await stub.GetJob(jobs_pb2.GetJobRequest(job_id=job_id))).job
        if job.state in states:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} is still {jobs_pb2.JobState.Name(job.state)} ({job.stage})")
        await asyncio.sleep(0.1)


async def watch_all(stub: jobs_pb2_grpc.JobServiceAsyncStub, job_id: str, after: str = "") -> list[jobs_pb2.JobEvent]:
    request = jobs_pb2.WatchJobRequest(job_id=job_id, after_event_id=after)
    return [reply.event async for reply in stub.WatchJob(request, timeout=120)]


FINAL_STATES = {jobs_pb2.JOB_STATE_SUCCEEDED, jobs_pb2.JOB_STATE_FAILED, jobs_pb2.JOB_STATE_CANCELLED}


@pytest.fixture
async def storage(tmp_path: Path, redis_url: str) -> AsyncIterator[Any]:
    """The real storage service (local backend) on a free port."""
    from tests.support.storage import running_storage

    async with running_storage(tmp_path / "storage", redis_url) as running:
        yield running


@pytest.fixture
async def storage_stub(storage: Any) -> AsyncIterator[storage_pb2_grpc.StorageServiceAsyncStub]:
    async with open_channel(storage.address) as channel:
        yield storage_pb2_grpc.StorageServiceStub(channel)


async def read_asset(stub: storage_pb2_grpc.StorageServiceAsyncStub, story_id: str, name: str) -> bytes:
    data = b""
    async for reply in stub.GetAsset(storage_pb2.GetAssetRequest(story_id=story_id, name=name), timeout=30):
        if reply.WhichOneof("content") == "chunk":
            data += reply.chunk
    return data


async def committed_story_ids(stub: storage_pb2_grpc.StorageServiceAsyncStub) -> list[str]:
    reply = await stub.ListStories(storage_pb2.ListStoriesRequest(page_size=100), timeout=30)
    return [story.story_id for story in reply.stories]
