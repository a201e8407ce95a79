"""Fixtures for the generator's tests: the fake OpenAI server and clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import openai
import pytest

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
