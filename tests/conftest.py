"""Fixtures every test area shares: a real Redis server for the whole session, flushed per test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio

from services.common.redis_server import RedisServer, provide_redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """REDIS_URL when set (its database is flushed per test!), else a private server on a free port."""
    data_dir = tmp_path_factory.mktemp("redis")
    with provide_redis(os.environ.get("REDIS_URL"), data_dir, appendonly=False) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The URL of an empty Redis database."""
    import redis as sync_redis

    client = sync_redis.Redis.from_url(redis_server.url)
    try:
        client.flushdb()
        yield redis_server.url
    finally:
        client.close()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()
