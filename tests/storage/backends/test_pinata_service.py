"""The whole storage service on the pinata backend while Pinata fails: the index rules hold under faults.

Each test runs the real service over gRPC against the fake Pinata over real HTTP, and
makes Pinata fail at the worst moments: between storing a new version and removing
the old one, after storing a file but before answering, and in storms of 429s and
500s while two storage processes commit at once. Nothing committed may be lost,
and the index must stay readable and complete at every step.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
import redis.asyncio
from dreamforge.v1 import storage_pb2, storage_pb2_grpc

from services.common.grpc_client import open_channel
from services.storage.backends.pinata import PinataFileStore
from tests.fakes.pinata import FakePinata
from tests.storage.backends.conftest import pinata_store_for
from tests.support.storage import list_all, put_asset, running_storage, storage_process

T = TypeVar("T")
_TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


async def until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def retrying(call: Callable[[], Awaitable[T]], attempts: int = 15) -> T:
    """What a worker does: repeat a call that failed transiently (the storage calls are idempotent)."""
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except grpc.aio.AioRpcError as error:
            if error.code() not in _TRANSIENT or attempt == attempts:
                raise
            await asyncio.sleep(0.05)
    raise AssertionError("unreachable")


async def draft_story(
    stub: storage_pb2_grpc.StorageServiceAsyncStub, title: str
) -> tuple[str, storage_pb2.CommitStoryRequest]:
    """Create and fill a one-part story, each step retried like a worker would; returns its id and commit."""
    created = await retrying(
        lambda: stub.CreateStory(storage_pb2.CreateStoryRequest(title=title, client_token=f"job-{title}"))
    )
    story_id = created.story_id
    text = f"{title}: once upon a time".encode()
    asset = await retrying(lambda: put_asset(stub, story_id, "text_0", text, "text/plain"))
    manifest = storage_pb2.StoryManifest(title=title, prompt=f"prompt for {title}", style="Pencil and Ink")
    manifest.parts.append(storage_pb2.StoryPart(index=0, title="Part 0", text=text.decode(), text_asset=asset))
    return story_id, storage_pb2.CommitStoryRequest(story_id=story_id, manifest=manifest)


async def write_story(stub: storage_pb2_grpc.StorageServiceAsyncStub, title: str) -> str:
    """A whole story, committed (retried until it sticks); returns its id."""
    story_id, commit = await draft_story(stub, title)
    await retrying(lambda: stub.CommitStory(commit))
    return story_id


async def listed(stub: storage_pb2_grpc.StorageServiceAsyncStub) -> list[tuple[str, str]]:
    return sorted((story.story_id, story.title) for story in await list_all(stub))


def index_file_names(fake: FakePinata) -> list[str]:
    [index] = [group for group in fake.groups.values() if group.name == "DREAMFORGE"]
    return sorted(file.name for file in fake.files.values() if file.group_id == index.id)


async def cold_replica_lists(fake: FakePinata, data_dir: Path, redis_url: str) -> list[tuple[str, str]]:
    """What a storage replica that starts now, with nothing in memory, lists (from Pinata and Redis alone)."""
    store = pinata_store_for(fake)
    try:
        async with running_storage(data_dir, redis_url, store=store) as replica:
            return await listed(replica.stub)
    finally:
        await store.aclose()


@pytest.fixture
async def store(fake_pinata: FakePinata) -> PinataFileStore:
    return pinata_store_for(fake_pinata)


async def test_a_connection_dropped_between_a_new_snapshot_and_removing_old_entries_leaves_a_complete_index(
    fake_pinata: FakePinata,
    store: PinataFileStore,
    tmp_path: Path,
    redis_url: str,
    redis_client: redis.asyncio.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    try:
        async with running_storage(tmp_path / "a", redis_url, store=store, index_compact_every=3) as storage:
            ids = [await write_story(storage.stub, f"Story {n}") for n in range(2)]
            fake_pinata.drop_between_upload_and_delete(upload_named=r"^index-snapshot-")

            ids.append(await write_story(storage.stub, "Story 2"))  # the third entry starts a compaction
            await until(lambda: "index compaction failed" in caplog.text, "the compaction to give up")

            names = index_file_names(fake_pinata)
            assert "index-snapshot-000000000003.json" in names
            assert {f"index-entry-00000000000{n}.json" for n in (1, 2, 3)} <= set(names)
            expected = sorted((story_id, f"Story {n}") for n, story_id in enumerate(ids))
            assert await listed(storage.stub) == expected
            assert await cold_replica_lists(fake_pinata, tmp_path / "b", redis_url) == expected
            await redis_client.flushdb()
            assert await cold_replica_lists(fake_pinata, tmp_path / "c", redis_url) == expected

            # Pinata recovers: the next commit compacts again and the folded files finally go.
            fake_pinata.clear_faults()
            ids.append(await write_story(storage.stub, "Story 3"))
            await until(
                lambda: index_file_names(fake_pinata) == ["index-snapshot-000000000004.json"],
                "the next compaction to remove the folded files",
            )
            assert len(await listed(storage.stub)) == 4
    finally:
        await store.aclose()


async def test_an_index_entry_stored_but_never_acknowledged_loses_nothing(
    fake_pinata: FakePinata,
    store: PinataFileStore,
    tmp_path: Path,
    redis_url: str,
    redis_client: redis.asyncio.Redis,
) -> None:
    try:
        async with running_storage(tmp_path / "a", redis_url, store=store) as storage:
            first = await write_story(storage.stub, "First")
            # The manifest upload goes through; the index entry's upload is stored, its answer lost.
            unlucky, commit = await draft_story(storage.stub, "Unlucky")
            fake_pinata.fail("POST", r"^/v3/files$", "drop_after", after_name=r"^story\.json$")
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await storage.stub.CommitStory(commit)
            assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
            assert fake_pinata.pending_faults() == 0
            assert len(fake_pinata.files_named("index-entry-000000000002.json")) == 1

            lucky = await write_story(storage.stub, "Lucky")  # takes the same entry number
            assert len(fake_pinata.files_named("index-entry-000000000002.json")) == 2
            await storage.stub.CommitStory(commit)  # the worker's retry

            expected = sorted([(first, "First"), (lucky, "Lucky"), (unlucky, "Unlucky")])
            assert await listed(storage.stub) == expected
        await redis_client.flushdb()
        assert await cold_replica_lists(fake_pinata, tmp_path / "b", redis_url) == expected
    finally:
        await store.aclose()


async def test_a_recommit_whose_old_manifest_could_not_be_removed_still_updates_the_library(
    fake_pinata: FakePinata, store: PinataFileStore, tmp_path: Path, redis_url: str
) -> None:
    try:
        async with running_storage(tmp_path / "a", redis_url, store=store) as storage:
            story_id = await write_story(storage.stub, "Working title")
            manifest = (await storage.stub.GetStory(storage_pb2.GetStoryRequest(story_id=story_id))).manifest
            manifest.title = "Final title"
            commit = storage_pb2.CommitStoryRequest(story_id=story_id, manifest=manifest)
            # The new story.json is stored, then the connection drops before the old one is removed:
            # the new manifest already wins every read, so the commit succeeds and only logs the leftover.
            fake_pinata.drop_between_upload_and_delete(upload_named=r"^story\.json$")
            await storage.stub.CommitStory(commit)
            fake_pinata.clear_faults()
            await storage.stub.CommitStory(commit)  # a caller's retry is harmless

            stored = (await storage.stub.GetStory(storage_pb2.GetStoryRequest(story_id=story_id))).manifest
            assert stored.title == "Final title"
            assert await listed(storage.stub) == [(story_id, "Final title")]
    finally:
        await store.aclose()


async def test_two_storage_processes_committing_through_429_and_500_storms_lose_nothing(
    fake_pinata: FakePinata, tmp_path: Path, redis_url: str, redis_client: redis.asyncio.Redis
) -> None:
    env = {
        "STORAGE_BACKEND": "pinata",
        "PINATA_JWT": fake_pinata.jwt,
        "PINATA_GATEWAY": fake_pinata.url,
        "PINATA_API_URL": fake_pinata.url,
        "PINATA_UPLOAD_URL": fake_pinata.url,
    }
    titles = [f"Story {n:02d}" for n in range(16)]
    async with (
        storage_process(tmp_path / "a", redis_url, env=env) as first,
        storage_process(tmp_path / "b", redis_url, env=env) as second,
    ):
        # Every third call to Pinata is rate-limited and every fifth fails, for a good while.
        fake_pinata.fail("*", r"^/(v3|ipfs|files)/", "429", times=150, every=3, retry_after="0")
        fake_pinata.fail("*", r"^/(v3|ipfs|files)/", "500", times=60, every=5)
        async with (
            open_channel(first.address, default_timeout=30) as a,
            open_channel(second.address, default_timeout=30) as b,
        ):
            stubs = [storage_pb2_grpc.StorageServiceStub(a), storage_pb2_grpc.StorageServiceStub(b)]
            ids = await asyncio.gather(*(write_story(stubs[n % 2], title) for n, title in enumerate(titles)))
            struck = [seen for seen in fake_pinata.requests if seen.fault in ("429", "500")]
            assert len(struck) > 40, "the storm should have hit many calls"
            fake_pinata.clear_faults()

            expected = sorted(zip(ids, titles, strict=True))
            assert await listed(stubs[0]) == expected
            assert await listed(stubs[1]) == expected
    await redis_client.flushdb()
    assert await cold_replica_lists(fake_pinata, tmp_path / "c", redis_url) == expected
