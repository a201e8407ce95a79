"""The whole system for end-to-end tests: real storage and generator gRPC servers, a real Redis, the gateway."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from services.generator.server import GeneratorServer
from tests.support.gateway import RunningGateway, running_gateway
from tests.support.generator import running_generator
from tests.support.storage import RunningStorage, running_storage

FINISHED = ("succeeded", "failed", "cancelled")


@dataclass
class Stack:
    gateway: RunningGateway
    storage: RunningStorage
    generator: GeneratorServer
    storage_address: str
    generator_address: str


@contextlib.asynccontextmanager
async def running_stack(
    tmp_path: Path, redis_url: str, *, generator_overrides: dict[str, Any] | None = None, **gateway_overrides: Any
) -> AsyncIterator[Stack]:
    """The whole system; ``generator_overrides`` go to `running_generator` (e.g. ``workers=0``: jobs stay queued)."""
    async with running_storage(tmp_path / "storage", redis_url) as storage:
        storage_address = storage.address
        async with running_generator(
            tmp_path / "generator", redis_url, storage_address, **(generator_overrides or {})
        ) as generator:
            generator_address = generator.address
            async with running_gateway(storage_address, generator_address, **gateway_overrides) as gateway:
                yield Stack(gateway, storage, generator, storage_address, generator_address)


async def wait_for_job(
    http: httpx.AsyncClient, job_id: str, states: tuple[str, ...] = FINISHED, timeout: float = 120.0
) -> dict[str, Any]:
    """Poll the job until it reaches one of ``states`` (generous deadline: CI machines are shared)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        response = await http.get(f"/api/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["state"] in states:
            return job
        if loop.time() > deadline:
            raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")
        await asyncio.sleep(0.1)


async def make_story(
    http: httpx.AsyncClient, prompt: str = "a bear who finds a mine full of honey", parts: int = 2
) -> dict[str, Any]:
    """Submit a story and wait for it; the finished job."""
    response = await http.post("/api/v1/stories", json={"prompt": prompt, "parts": parts})
    assert response.status_code == 202, response.text
    job = await wait_for_job(http, response.json()["job"]["id"])
    assert job["state"] == "succeeded", job
    return job
