"""Fixtures for the gateway's tests: the gateway over real HTTP, with real backends or with backends that are down."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.gateway import RunningGateway, running_gateway
from tests.support.stack import Stack, running_stack


@pytest.fixture
async def gateway_without_backends() -> AsyncIterator[RunningGateway]:
    """A gateway whose storage and generator addresses refuse connections."""
    async with running_gateway() as gateway:
        yield gateway


@pytest.fixture
async def client(gateway_without_backends: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway_without_backends.url, timeout=30) as http:
        yield http


@pytest.fixture
async def stack(tmp_path: Path, redis_url: str) -> AsyncIterator[Stack]:
    """Real storage (local backend) and generator (offline engines) servers, Redis, and the gateway in front."""
    async with running_stack(tmp_path, redis_url) as running:
        yield running


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=60) as http:
        yield http


@pytest.fixture
async def idle_api(tmp_path: Path, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The API over a generator with no workers: jobs stay queued until cancelled."""
    async with (
        running_stack(tmp_path, redis_url, generator_overrides={"workers": 0}) as running,
        httpx.AsyncClient(base_url=running.gateway.url, timeout=60) as http,
    ):
        yield http
