"""The storage server as a whole: health follows its dependencies, metrics, start-up logging, the command line."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from grpc_health.v1 import health_pb2

from services.common.config import Secret
from services.common.grpc_client import check_health, open_channel
from services.common.redis_server import free_port, start_redis_server
from services.storage.server import create_server
from services.storage.settings import Settings
from tests.support.storage import ROOT, make_story, running_storage


async def _wait_for_health(address: str, serving: bool, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with open_channel(address) as channel:
        while time.monotonic() < deadline:
            if await check_health(channel) == serving:
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"health never became {'SERVING' if serving else 'NOT_SERVING'}")


async def test_health_is_not_serving_until_redis_answers(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(redis_url=f"redis://127.0.0.1:{port}/0", storage_addr="127.0.0.1:0", data_dir=tmp_path)
    server = await create_server(settings)
    redis_server = None
    try:
        assert server.serving is False
        await _wait_for_health(server.address, serving=False)
        redis_server = await asyncio.to_thread(start_redis_server, tmp_path / "redis", appendonly=False, port=port)
        await _wait_for_health(server.address, serving=True)
    finally:
        await server.stop(0)
        if redis_server is not None:
            redis_server.stop()


async def test_stopping_turns_health_to_not_serving(tmp_path: Path, redis_url: str) -> None:
    async with running_storage(tmp_path, redis_url) as storage:
        await _wait_for_health(storage.address, serving=True)
        server = storage.server
        await server.stop(0.5)
        reply = await server.grpc.health.Check(health_pb2.HealthCheckRequest(service=""), None)
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert server.serving is False


async def test_metrics_count_rpcs_index_entries_and_backend_calls(tmp_path: Path, redis_url: str) -> None:
    async with running_storage(tmp_path, redis_url, metrics_addr="127.0.0.1:0") as storage:
        await make_story(storage.stub, "Counted", parts=1)
        registry = storage.server.registry
        assert registry.get_sample_value("dreamforge_storage_index_entries_total", {"op": "add"}) == 1
        ok = {"service": "storage", "method": "CommitStory", "code": "OK"}
        assert registry.get_sample_value("dreamforge_rpc_requests_total", ok) == 1
        uploads = registry.get_sample_value(
            "dreamforge_storage_backend_seconds_count", {"backend": "local", "method": "upload"}
        )
        assert uploads == 4  # two assets, the manifest, one index entry
        metrics_server = storage.server.metrics_server
        assert metrics_server is not None
        async with httpx.AsyncClient() as client:
            page = await client.get(f"http://127.0.0.1:{metrics_server.port}/metrics")
        assert page.status_code == 200
        assert 'dreamforge_storage_index_entries_total{op="add"} 1.0' in page.text
        assert "dreamforge_storage_backend_seconds_bucket" in page.text


async def test_two_servers_in_one_process_keep_separate_metrics(tmp_path: Path, redis_url: str) -> None:
    async with (
        running_storage(tmp_path / "a", redis_url) as first,
        running_storage(tmp_path / "b", redis_url) as second,
    ):
        await make_story(first.stub, "Only here", parts=1)
        assert first.server.registry.get_sample_value("dreamforge_storage_index_entries_total", {"op": "add"}) == 1
        assert not second.server.registry.get_sample_value("dreamforge_storage_index_entries_total", {"op": "add"})


async def test_the_resolved_configuration_is_logged_once_without_secrets(
    tmp_path: Path, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="services.storage")
    secret_url = redis_url.replace("redis://", "redis://:not-a-real-password@")
    async with running_storage(tmp_path, redis_url, pinata_jwt=Secret("eyJ.do-not-log")) as storage:
        await make_story(storage.stub, "Logged", parts=1)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("storage configuration:")]
    assert len(lines) == 1
    assert "STORAGE_BACKEND=local" in lines[0]
    assert f"DATA_DIR={tmp_path}" in lines[0]
    assert "do-not-log" not in caplog.text
    assert "not-a-real-password" not in Settings(redis_url=secret_url).describe()["REDIS_URL"]


def test_the_command_refuses_to_start_without_redis_and_says_how_to_get_one(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PINATA_JWT")}
    environ["DATA_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "services.storage"], cwd=ROOT, env=environ, capture_output=True, timeout=60
    )
    assert result.returncode != 0
    assert b"REDIS_URL" in result.stderr
    assert b"make up" in result.stderr
