"""The original app's data is read as it is: `index.txt` in the index group, groups of `text_N` / `image_N`.

The data is seeded through the `FileStore` API exactly as the original app left it:
files without keyvalues, no manifest, an index file of `groupId<TAB>title` lines.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path

import grpc
import pytest
from dreamforge.v1 import storage_pb2

from services.storage.backends.base import FileRecord, FileStore
from services.storage.files import list_files
from services.storage.legacy import parse_index_txt
from tests.support.storage import (
    RunningStorage,
    expect_rpc_error,
    get_asset,
    list_all,
    make_story,
    put_asset_requests,
    running_storage,
)


async def _upload(store: FileStore, group_id: str | None, name: str, data: bytes, content_type: str) -> FileRecord:
    return await store.upload(group_id, name, io.BytesIO(data), size=len(data), content_type=content_type)


async def _legacy_group(store: FileStore, title: str, parts: int = 2) -> str:
    group = await store.create_group(title)
    for n in range(parts):
        await _upload(store, group.id, f"text_{n}", f"{title}, part {n}.".encode(), "text/plain")
        await _upload(store, group.id, f"image_{n}", b"\x89PNG" + f"{title}{n}".encode(), "image/png")
    return group.id


@dataclass
class Legacy:
    storage: RunningStorage
    store: FileStore
    dragon: str
    fox: str
    unlisted: str
    index_txt: FileRecord


@pytest.fixture
async def legacy(store: FileStore, tmp_path: Path, redis_url: str) -> AsyncIterator[Legacy]:
    """Two stories in index.txt (one line repeated, one line broken, one naming a missing group), one unlisted."""
    index_group = await store.create_group("DREAMFORGE")
    dragon = await _legacy_group(store, "The Dragon's Egg")
    fox = await _legacy_group(store, "The Clever Fox", parts=3)
    unlisted = await _legacy_group(store, "A Story Nobody Indexed", parts=1)
    lines = [
        f"{dragon}\tThe Dragon's Egg",
        "not a group id\tbroken line",
        f"{fox}\tThe Clever Fox",
        f"{dragon}\tThe Dragon's Egg",
        "0193b1c2-0000-7000-8000-00000000dead\tA story whose group is gone",
        "",
    ]
    index_txt = await _upload(store, index_group.id, "index.txt", "\n".join(lines).encode(), "text/plain")
    async with running_storage(tmp_path, redis_url, store=store) as storage:
        yield Legacy(storage, store, dragon, fox, unlisted, index_txt)


def test_index_txt_lines_are_parsed_once_per_id_and_broken_lines_skipped() -> None:
    data = b"0193b1c2-0000-7000-8000-000000000001\tFirst\r\njunk\n0193B1C2-0000-7000-8000-000000000001\tAgain\n\n"
    assert parse_index_txt(data) == {"0193b1c2-0000-7000-8000-000000000001": "First"}


async def test_index_txt_stories_are_listed_with_their_titles(legacy: Legacy) -> None:
    listed = await list_all(legacy.storage.stub)
    assert [(s.story_id, s.title) for s in listed] == [
        (legacy.fox, "The Clever Fox"),
        (legacy.dragon, "The Dragon's Egg"),
    ]
    fox = listed[0]
    assert fox.format == storage_pb2.STORY_FORMAT_LEGACY
    group = await legacy.store.get_group(legacy.fox)
    assert fox.created_at.ToDatetime(tzinfo=timezone.utc) == group.created_at
    (image_0,) = await list_files(legacy.store, legacy.fox, name="image_0")
    assert fox.cover.cid == image_0.cid


async def test_get_story_rebuilds_a_manifest_from_the_part_files(legacy: Legacy) -> None:
    reply = await legacy.storage.stub.GetStory(storage_pb2.GetStoryRequest(story_id=legacy.fox))
    manifest = reply.manifest
    assert manifest.story_id == legacy.fox
    assert manifest.title == "The Clever Fox"
    assert manifest.format == storage_pb2.STORY_FORMAT_LEGACY
    assert [p.index for p in manifest.parts] == [0, 1, 2]
    assert [p.text for p in manifest.parts] == [f"The Clever Fox, part {n}." for n in range(3)]
    assert [p.text_asset.name for p in manifest.parts] == ["text_0", "text_1", "text_2"]
    assert [p.image_asset.name for p in manifest.parts] == ["image_0", "image_1", "image_2"]
    _, picture = await get_asset(legacy.storage.stub, legacy.fox, "image_1")
    assert picture == b"\x89PNGThe Clever Fox1"


async def test_a_legacy_group_outside_index_txt_is_readable_and_listed_after_reindex(legacy: Legacy) -> None:
    stub = legacy.storage.stub
    reply = await stub.GetStory(storage_pb2.GetStoryRequest(story_id=legacy.unlisted))
    assert reply.manifest.title == "A Story Nobody Indexed"  # the group's name
    assert legacy.unlisted not in [s.story_id for s in await list_all(stub)]
    count = await stub.Reindex(storage_pb2.ReindexRequest())
    assert count.story_count == 3
    listed = await list_all(stub)
    assert [s.story_id for s in listed] == [legacy.unlisted, legacy.fox, legacy.dragon]
    assert listed[1].title == "The Clever Fox"  # still the index.txt title


async def test_our_stories_and_legacy_ones_are_listed_together_once(legacy: Legacy) -> None:
    ours = await make_story(legacy.storage.stub, "A new tale", parts=1)
    await legacy.storage.stub.Reindex(storage_pb2.ReindexRequest())
    listed = await list_all(legacy.storage.stub)
    ids = [s.story_id for s in listed]
    assert ids == [ours.story_id, legacy.unlisted, legacy.fox, legacy.dragon]
    assert len(set(ids)) == len(ids)
    found = await list_all(legacy.storage.stub, query="fox")
    assert [s.story_id for s in found] == [legacy.fox]


async def test_deleting_a_legacy_story_leaves_index_txt_alone_and_stays_deleted(
    legacy: Legacy, tmp_path: Path, redis_url: str
) -> None:
    stub = legacy.storage.stub
    await stub.DeleteStory(storage_pb2.DeleteStoryRequest(story_id=legacy.dragon))
    assert [s.story_id for s in await list_all(stub)] == [legacy.fox]
    await expect_rpc_error(
        stub.GetStory(storage_pb2.GetStoryRequest(story_id=legacy.dragon)), grpc.StatusCode.NOT_FOUND
    )
    index_group = await legacy.storage.server.library.index.group_id()
    (index_txt,) = await list_files(legacy.store, index_group, name="index.txt")
    assert index_txt.cid == legacy.index_txt.cid
    assert index_txt.id == legacy.index_txt.id
    # A reindex and a fresh replica (nothing in memory) still see it deleted: the tombstone is stored.
    await stub.Reindex(storage_pb2.ReindexRequest())
    async with running_storage(tmp_path, redis_url, store=legacy.store) as fresh:
        assert [s.story_id for s in await list_all(fresh.stub)] == [legacy.unlisted, legacy.fox]


async def test_legacy_stories_cannot_be_changed(legacy: Legacy) -> None:
    stub = legacy.storage.stub
    await expect_rpc_error(
        stub.PutAsset(put_asset_requests(legacy.fox, "image_0", b"new")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "original app",
    )
    await expect_rpc_error(
        stub.CommitStory(
            storage_pb2.CommitStoryRequest(
                story_id=legacy.fox,
                manifest=storage_pb2.StoryManifest(title="Mine now", parts=[storage_pb2.StoryPart()]),
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "original app",
    )


async def test_a_fresh_replica_reads_resolved_legacy_rows_from_the_snapshot(
    legacy: Legacy, tmp_path: Path, redis_url: str
) -> None:
    await list_all(legacy.storage.stub)  # resolves index.txt, and schedules a snapshot keeping the rows
    await legacy.storage.server.library.index.aclose()  # let that snapshot finish
    async with running_storage(tmp_path, redis_url, store=legacy.store) as fresh:
        index = fresh.server.library.index
        await index.refresh()
        metrics = fresh.server.registry
        looked_up = metrics.get_sample_value(
            "dreamforge_storage_backend_seconds_count", {"backend": fresh.server.backend, "method": "get_group"}
        )
        assert not looked_up  # no legacy group was looked at again
        assert [s.story_id for s in await list_all(fresh.stub)] == [legacy.fox, legacy.dragon]
