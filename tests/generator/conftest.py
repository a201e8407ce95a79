"""Fixtures for the generator's tests: the fake OpenAI server and clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
import redis.asyncio as aioredis

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
