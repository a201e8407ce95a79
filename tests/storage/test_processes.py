"""Storage as separate OS processes: two replicas committing at once, and a replica killed with SIGKILL mid-commit."""

from __future__ import annotations

import asyncio
import hashlib
import random
from pathlib import Path

import grpc
from dreamforge.v1 import storage_pb2, storage_pb2_grpc

from services.common.grpc_client import open_channel
from services.storage.backends.local import LocalFileStore
from services.storage.cid import digest_from_cid
from services.storage.files import list_files
from services.storage.manifest import decode
from tests.support.storage import (
    expect_rpc_error,
    get_asset,
    list_all,
    make_story,
    put_asset_requests,
    start_storage_process,
    storage_process,
)

# Small numbers so these runs cross compaction, and a killed holder's lock frees quickly. (With two live
# processes a short lock only costs fenced retries, which a loaded machine could run out of: 10 s there.)
TUNING = {"STORAGE_INDEX_COMPACT_EVERY": "7", "STORAGE_INDEX_LOCK_TTL_MS": "1500"}
SHARED = {**TUNING, "STORAGE_INDEX_LOCK_TTL_MS": "10000"}


async def test_two_storage_processes_committing_at_once_list_every_story_once(tmp_path: Path, redis_url: str) -> None:
    data_dir = tmp_path / "data"
    async with (
        storage_process(data_dir, redis_url, env=SHARED) as first,
        storage_process(data_dir, redis_url, env=SHARED) as second,
        open_channel(first.address, default_timeout=60) as channel_a,
        open_channel(second.address, default_timeout=60) as channel_b,
    ):
        stubs = [storage_pb2_grpc.StorageServiceStub(channel_a), storage_pb2_grpc.StorageServiceStub(channel_b)]
        try:
            committed = await asyncio.gather(*(make_story(stubs[n % 2], f"Story {n}", parts=1) for n in range(50)))
        except grpc.aio.AioRpcError as exc:
            raise AssertionError(
                f"a commit failed: {exc.code().name} {exc.details()}\n"
                f"first log:\n{first.log()[-3000:]}\nsecond log:\n{second.log()[-3000:]}"
            ) from exc
        expected = sorted(m.story_id for m in committed)
        for stub in stubs:
            listed = [s.story_id for s in await list_all(stub)]
            assert sorted(listed) == expected  # every story, each once, on both replicas
    # A third reader starting from the files alone agrees.
    async with storage_process(data_dir, redis_url, env=SHARED) as third, open_channel(third.address) as channel:
        listed = [s.story_id for s in await list_all(storage_pb2_grpc.StorageServiceStub(channel))]
        assert sorted(listed) == expected


async def _commit_until_the_server_dies(
    stub: storage_pb2_grpc.StorageServiceAsyncStub, attempted: list[str], committed: list[str], worker: int
) -> None:
    n = 0
    while True:
        n += 1
        try:
            created = await stub.CreateStory(storage_pb2.CreateStoryRequest(title=f"w{worker} story {n}"))
            attempted.append(created.story_id)
            manifest = storage_pb2.StoryManifest(title=f"w{worker} story {n}")
            for part in range(2):
                text = await stub.PutAsset(
                    put_asset_requests(created.story_id, f"text_{part}", f"text {n}/{part}".encode(), chunk=16384)
                )
                image = await stub.PutAsset(
                    put_asset_requests(created.story_id, f"image_{part}", bytes([part]) * 70_000, chunk=16384)
                )
                manifest.parts.append(storage_pb2.StoryPart(index=part, text_asset=text.asset, image_asset=image.asset))
            await stub.CommitStory(storage_pb2.CommitStoryRequest(story_id=created.story_id, manifest=manifest))
            committed.append(created.story_id)
        except grpc.aio.AioRpcError:
            return  # the server is gone


async def test_a_process_killed_mid_commit_leaves_every_story_fully_in_or_fully_out(
    tmp_path: Path, redis_url: str
) -> None:
    data_dir = tmp_path / "data"
    rng = random.Random()
    attempted: list[str] = []
    committed: list[str] = []
    for _round in range(3):
        process = await start_storage_process(data_dir, redis_url, env=TUNING)
        async with open_channel(process.address, default_timeout=30) as channel:
            stub = storage_pb2_grpc.StorageServiceStub(channel)
            before = len(committed)
            workers = [
                asyncio.create_task(_commit_until_the_server_dies(stub, attempted, committed, w)) for w in range(3)
            ]
            # Kill after a random number of finished commits, a random instant into the next ones.
            target = before + rng.randint(1, 6)
            while len(committed) < target:
                assert not all(w.done() for w in workers), "the committers stopped before the kill"
                await asyncio.sleep(0.005)
            await asyncio.sleep(rng.uniform(0, 0.05))
            process.kill()
            await asyncio.wait_for(asyncio.gather(*workers), 60)
    assert committed, "no commit finished, so the kill proved nothing"

    # Restart: the index and the manifests must be whole.
    async with storage_process(data_dir, redis_url, env=TUNING) as process, open_channel(process.address) as channel:
        stub = storage_pb2_grpc.StorageServiceStub(channel)
        listed = [s.story_id for s in await list_all(stub)]
        assert len(listed) == len(set(listed))
        assert set(committed) <= set(listed)  # every acknowledged commit survived
        assert set(listed) <= set(attempted)
        for story_id in attempted:
            if story_id in listed:
                manifest = (await stub.GetStory(storage_pb2.GetStoryRequest(story_id=story_id))).manifest
                assert len(manifest.parts) == 2
                for part in manifest.parts:
                    for ref in (part.text_asset, part.image_asset):
                        info, data = await get_asset(stub, story_id, ref.name)
                        assert info.cid == ref.cid
                        assert hashlib.sha256(data).digest() == digest_from_cid(ref.cid)
            else:
                await expect_rpc_error(
                    stub.GetStory(storage_pb2.GetStoryRequest(story_id=story_id)), grpc.StatusCode.NOT_FOUND
                )
        # Committing still works after the crashes.
        after = await make_story(stub, "After the crashes", parts=1)
        assert after.story_id in [s.story_id for s in await list_all(stub)]

    await _assert_store_is_whole(data_dir / "store")


async def _assert_store_is_whole(root: Path) -> None:
    """Every group and file record parses, every record's bytes are there and match its CID, every manifest parses."""
    store = LocalFileStore(root)
    async for group in store.iter_groups():
        for record in await list_files(store, group.id):
            digest = hashlib.sha256()
            async for chunk in store.read(record):
                digest.update(chunk)
            assert digest.digest() == digest_from_cid(record.cid), f"{group.id}/{record.name} is torn"
            assert digest.digest() and record.size > 0
            if record.name == "story.json":
                data = b"".join([chunk async for chunk in store.read(record)])
                decode(data, group.id)  # raises DataLoss when it is not a whole manifest


async def test_sigterm_stops_the_process_gracefully(tmp_path: Path, redis_url: str) -> None:
    process = await start_storage_process(tmp_path / "data", redis_url)
    assert await asyncio.to_thread(process.terminate, 30.0) == 0
    log = process.log()
    assert "stopping" in log
    assert "stopped" in log
    assert "STORAGE_BACKEND=local" in log  # the resolved configuration was logged at start
