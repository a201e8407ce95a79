"""Fixtures for the gateway's tests: the gateway over real HTTP, with real backends or with backends that are down."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.gateway import RunningGateway, running_gateway


@pytest.fixture
async def gateway_without_backends() -> AsyncIterator[RunningGateway]:
    """A gateway whose storage and generator addresses refuse connections."""
    async with running_gateway() as gateway:
        yield gateway


@pytest.fixture
async def client(gateway_without_backends: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway_without_backends.url, timeout=30) as http:
        yield http
