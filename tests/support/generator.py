"""Running the generator in tests: in-process (`running_generator`) or as a real process (`generator_process`).

    async with running_generator(tmp_path, redis_url, storage.address) as gen:
        stub = jobs_pb2_grpc.JobServiceStub(open_channel(gen.address))

Both default to the offline engines and short retry delays; pass settings as
keyword overrides (in-process) or environment variables (process).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from services.common.grpc_client import check_health, open_channel
from services.common.redis_server import free_port
from services.generator.server import GeneratorServer, create_server
from services.generator.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

#: What tests want unless they say otherwise: offline engines, quick retries, a short drain.
TEST_SETTINGS: dict[str, Any] = {
    "text_engine": "offline",
    "image_engine": "offline",
    "workers": 2,
    "job_retry_base_seconds": 0.05,
    "job_retry_max_seconds": 0.2,
    "job_visibility_timeout_seconds": 10.0,
    "shutdown_grace_seconds": 5.0,
    "storage_timeout_seconds": 10.0,
}

TEST_ENVIRONMENT: dict[str, str] = {
    "TEXT_ENGINE": "offline",
    "IMAGE_ENGINE": "offline",
    "WORKERS": "2",
    "JOB_RETRY_BASE_SECONDS": "0.05",
    "JOB_RETRY_MAX_SECONDS": "0.2",
    "JOB_VISIBILITY_TIMEOUT_SECONDS": "10",
    "SHUTDOWN_GRACE_SECONDS": "5",
    "LOG_LEVEL": "info",
}


def generator_settings(redis_url: str, storage_address: str, **overrides: Any) -> Settings:
    return Settings(redis_url=redis_url, storage_addr=storage_address, **{**TEST_SETTINGS, **overrides})


@asynccontextmanager
async def running_generator(
    tmp_path: Path, redis_url: str, storage_address: str, **overrides: Any
) -> AsyncIterator[GeneratorServer]:
    """An in-process generator (API + workers) on a free port; ``overrides`` are `Settings` fields
    or `create_server` keywords (``text_engine=``, ``image_engine=``, ``api=``, ``workers=``...)."""
    # `text_engine="offline"` is a setting; `text_engine=SomeEngine()` is an engine to use.
    server_kwargs = {
        k: overrides.pop(k) for k in list(overrides) if k in _SERVER_KEYWORDS and not isinstance(overrides[k], str)
    }
    settings = generator_settings(redis_url, storage_address, **overrides)
    settings = replace(settings, generator_addr="127.0.0.1:0")
    server = await create_server(settings, address="127.0.0.1:0", **server_kwargs)
    try:
        yield server
    finally:
        await server.stop(settings.shutdown_grace_seconds)


_SERVER_KEYWORDS = {"text_engine", "image_engine", "redis", "storage_channel", "registry", "api", "workers", "consumer"}


@dataclass
class GeneratorProcess:
    process: subprocess.Popen[bytes]
    address: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait(self, timeout: float) -> int:
        """Wait for the process to exit without blocking the event loop (in-process servers keep serving)."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the generator did not exit within {timeout}s:\n{self.log()[-3000:]}")
            await asyncio.sleep(0.05)
        return int(self.process.returncode)

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return int(self.process.returncode)


def start_generator_process(
    tmp_path: Path,
    redis_url: str,
    storage_address: str,
    *,
    args: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
    name: str = "generator",
) -> GeneratorProcess:
    """Start `python -m services.generator ARGS` with the test environment (plus ``env``); returns at once."""
    port = free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TEXT_", "IMAGE_"))},
        **TEST_ENVIRONMENT,
        "REDIS_URL": redis_url,
        "STORAGE_ADDR": storage_address,
        "GENERATOR_ADDR": f"127.0.0.1:{port}",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    log_path = tmp_path / f"{name}.log"
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.generator", *args],
            cwd=ROOT,
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return GeneratorProcess(process=process, address=f"127.0.0.1:{port}", log_path=log_path)


async def wait_until_serving(handle: GeneratorProcess, timeout: float = 60.0) -> None:
    """Poll the process's health until SERVING (it needs Redis and storage to answer)."""
    deadline = time.monotonic() + timeout
    async with open_channel(handle.address) as channel:
        while time.monotonic() < deadline:
            if handle.process.poll() is not None:
                raise RuntimeError(f"the generator exited with {handle.process.returncode}:\n{handle.log()[-3000:]}")
            if await check_health(channel, timeout=1.0):
                return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"the generator did not become SERVING within {timeout}s:\n{handle.log()[-3000:]}")


@asynccontextmanager
async def generator_process(
    tmp_path: Path, redis_url: str, storage_address: str, *, env: Mapping[str, str] | None = None
) -> AsyncIterator[GeneratorProcess]:
    """A generator process (API + workers) that is SERVING; stopped with SIGTERM on exit."""
    handle = start_generator_process(tmp_path, redis_url, storage_address, env=env)
    try:
        await wait_until_serving(handle)
        yield handle
    finally:
        handle.stop()
