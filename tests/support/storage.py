"""A real storage service for tests: in this process, or as a `python -m services.storage` subprocess.

    async with running_storage(tmp_path, redis_url) as storage:
        stub = storage.stub                      # a StorageService stub on a real channel
        story_id = await make_story(stub, "A bear finds honey")

    async with storage_process(tmp_path, redis_url) as proc:   # a separate OS process
        proc.address ...; proc.kill()             # SIGKILL, for crash tests

Both use the local backend under the given directory unless told otherwise; both need
a real Redis (the `redis_url` fixture).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from dreamforge.v1 import storage_pb2, storage_pb2_grpc

from services.common.grpc_client import check_health, open_channel
from services.common.redis_server import free_port
from services.storage.backends.base import FileStore
from services.storage.server import StorageServer, create_server
from services.storage.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunningStorage:
    """An in-process storage server and a channel to it."""

    server: StorageServer
    channel: grpc.aio.Channel
    stub: storage_pb2_grpc.StorageServiceAsyncStub

    @property
    def address(self) -> str:
        return self.server.address


@asynccontextmanager
async def running_storage(
    data_dir: Path,
    redis_url: str,
    *,
    store: FileStore | None = None,
    **overrides: Any,
) -> AsyncIterator[RunningStorage]:
    """A storage server on a free port, local store under `data_dir` (or `store`); `overrides` go to Settings."""
    settings = Settings(redis_url=redis_url, storage_addr="127.0.0.1:0", data_dir=data_dir, **overrides)
    server = await create_server(settings, store=store)
    channel = open_channel(server.address)
    try:
        yield RunningStorage(server=server, channel=channel, stub=storage_pb2_grpc.StorageServiceStub(channel))
    finally:
        await channel.close()
        await server.stop(0)


@dataclass
class StorageProcess:
    """A storage service running as its own OS process."""

    process: subprocess.Popen[bytes]
    address: str
    log_path: Path

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, like a crash or an OOM kill."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait for the graceful stop; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def storage_env(data_dir: Path, redis_url: str, address: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a storage subprocess runs with: ours, minus Pinata, plus these settings."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PINATA_")}
    environ.update(
        {
            "STORAGE_ADDR": address,
            "DATA_DIR": str(data_dir),
            "REDIS_URL": redis_url,
            "STORAGE_BACKEND": "local",
            "LOG_LEVEL": "info",
            "PYTHONUNBUFFERED": "1",
        }
    )
    environ.update(env or {})
    return environ


async def start_storage_process(
    data_dir: Path,
    redis_url: str,
    *,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    timeout: float = 60.0,
) -> StorageProcess:
    """Start `python -m services.storage` on a free port and wait until its health check says SERVING."""
    log_path = log_path or data_dir / f"storage-{time.monotonic_ns()}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    last_log = ""
    for _attempt in range(3):  # a free port can be taken between choosing and binding it
        address = f"127.0.0.1:{free_port()}"
        process = await asyncio.to_thread(_spawn, storage_env(data_dir, redis_url, address, env), log_path)
        started = StorageProcess(process=process, address=address, log_path=log_path)
        if await _wait_serving(started, timeout):
            return started
        started.kill()
        last_log = started.log()[-2000:]
        if "address already in use" not in last_log.lower() and "could not bind" not in last_log.lower():
            break
    raise RuntimeError(f"the storage process did not become SERVING; its log ends with:\n{last_log}")


def _spawn(environ: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "services.storage"],
            cwd=ROOT,
            env=environ,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


async def _wait_serving(started: StorageProcess, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    async with open_channel(started.address) as channel:
        while time.monotonic() < deadline:
            if started.process.poll() is not None:
                return False
            if await check_health(channel, timeout=1.0):
                return True
            await asyncio.sleep(0.1)
    return False


@asynccontextmanager
async def storage_process(
    data_dir: Path, redis_url: str, *, env: Mapping[str, str] | None = None
) -> AsyncIterator[StorageProcess]:
    """A storage subprocess for the block; stopped with SIGTERM (or killed) at the end."""
    started = await start_storage_process(data_dir, redis_url, env=env)
    try:
        yield started
    finally:
        if started.process.poll() is None:
            try:
                await asyncio.to_thread(started.terminate, 30.0)
            except subprocess.TimeoutExpired:
                started.kill()


# -- client helpers ---------------------------------------------------------------------------


def put_asset_requests(
    story_id: str, name: str, data: bytes, content_type: str = "application/octet-stream", chunk: int = 256 * 1024
) -> Iterator[storage_pb2.PutAssetRequest]:
    yield storage_pb2.PutAssetRequest(
        header=storage_pb2.PutAssetHeader(story_id=story_id, name=name, content_type=content_type)
    )
    for start in range(0, len(data), chunk):
        yield storage_pb2.PutAssetRequest(chunk=data[start : start + chunk])


async def put_asset(
    stub: storage_pb2_grpc.StorageServiceAsyncStub,
    story_id: str,
    name: str,
    data: bytes,
    content_type: str = "application/octet-stream",
    *,
    chunk: int = 256 * 1024,
) -> storage_pb2.AssetRef:
    reply = await stub.PutAsset(put_asset_requests(story_id, name, data, content_type, chunk))
    return reply.asset


async def get_asset(
    stub: storage_pb2_grpc.StorageServiceAsyncStub, story_id: str, name: str, *, offset: int = 0, length: int = 0
) -> tuple[storage_pb2.AssetRef, bytes]:
    """The asset's info (first message) and the bytes of the requested range."""
    info: storage_pb2.AssetRef | None = None
    data = bytearray()
    call = stub.GetAsset(storage_pb2.GetAssetRequest(story_id=story_id, name=name, offset=offset, length=length))
    async for message in call:
        if message.WhichOneof("content") == "info":
            assert info is None, "GetAsset sent info twice"
            assert not data, "GetAsset sent info after bytes"
            info = message.info
        else:
            assert info is not None, "GetAsset sent bytes before info"
            data.extend(message.chunk)
    assert info is not None, "GetAsset sent no info"
    return info, bytes(data)


async def make_story(
    stub: storage_pb2_grpc.StorageServiceAsyncStub,
    title: str,
    *,
    parts: int = 2,
    images: bool = True,
    client_token: str = "",
) -> storage_pb2.StoryManifest:
    """Create, fill and commit a story whose part texts and pictures are small made-up files."""
    created = await stub.CreateStory(storage_pb2.CreateStoryRequest(title=title, client_token=client_token))
    story_id = created.story_id
    manifest = storage_pb2.StoryManifest(title=title, prompt=f"prompt for {title}", style="Pencil and Ink")
    for n in range(parts):
        text = f"{title}: part {n}".encode()
        text_ref = await put_asset(stub, story_id, f"text_{n}", text, "text/plain; charset=utf-8")
        part = storage_pb2.StoryPart(index=n, title=f"Part {n}", text=text.decode(), text_asset=text_ref)
        if images:
            image = b"\x89PNG\r\n\x1a\n" + f"{story_id}/{n}".encode()
            part.image_asset.CopyFrom(await put_asset(stub, story_id, f"image_{n}", image, "image/png"))
        manifest.parts.append(part)
    reply = await stub.CommitStory(storage_pb2.CommitStoryRequest(story_id=story_id, manifest=manifest))
    return reply.manifest


async def list_all(
    stub: storage_pb2_grpc.StorageServiceAsyncStub, *, query: str = "", page_size: int = 100
) -> list[storage_pb2.StorySummary]:
    """Every listed story, following page tokens to the end."""
    stories: list[storage_pb2.StorySummary] = []
    token = ""
    while True:
        reply = await stub.ListStories(
            storage_pb2.ListStoriesRequest(page_size=page_size, page_token=token, query=query)
        )
        stories.extend(reply.stories)
        token = reply.next_page_token
        if not token:
            return stories


async def expect_rpc_error(call: Any, code: grpc.StatusCode, *fragments: str) -> str:
    """Await `call` (a unary call, or a stream read to its end) and check it fails with `code`.

    Each of `fragments` must appear in the error message (case-insensitive); returns the message.
    """
    try:
        if hasattr(call, "__aiter__"):
            async for _ in call:
                pass
        else:
            await call
    except grpc.aio.AioRpcError as exc:
        details = exc.details() or ""
        assert exc.code() == code, f"expected {code.name}, got {exc.code().name}: {details}"
        for fragment in fragments:
            assert fragment.lower() in details.lower(), f"{fragment!r} not in {details!r}"
        return details
    raise AssertionError(f"expected {code.name}, but the call succeeded")
