"""StorageService over a real gRPC channel: drafts, assets, commits, reads, listing, delete and reindex.

Every test here runs against each backend (see `conftest.py`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import grpc
import pytest
from dreamforge.v1 import storage_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.common.errors import NotFound
from services.common.ids import is_id
from services.storage.cid import cid_for_bytes
from services.storage.files import list_files
from services.storage.index import parse_index_file_name
from tests.support.storage import (
    RunningStorage,
    expect_rpc_error,
    get_asset,
    list_all,
    make_story,
    put_asset,
    put_asset_requests,
    running_storage,
)


async def _draft(storage: RunningStorage, title: str = "A draft", token: str = "") -> str:
    reply = await storage.stub.CreateStory(storage_pb2.CreateStoryRequest(title=title, client_token=token))
    return reply.story_id


def _manifest(title: str, *parts: storage_pb2.StoryPart) -> storage_pb2.StoryManifest:
    return storage_pb2.StoryManifest(title=title, parts=list(parts))


# -- drafts and assets ------------------------------------------------------------------------


async def test_create_story_makes_a_draft_with_a_uuid(storage: RunningStorage) -> None:
    reply = await storage.stub.CreateStory(storage_pb2.CreateStoryRequest(title="The honey mine"))
    assert is_id(reply.story_id)
    assert reply.created is True
    group = await storage.server.store.get_group(reply.story_id)
    assert group.name == "The honey mine"


async def test_the_same_client_token_returns_the_same_draft(storage: RunningStorage) -> None:
    first = await storage.stub.CreateStory(storage_pb2.CreateStoryRequest(title="One", client_token="job-1"))
    again = await storage.stub.CreateStory(storage_pb2.CreateStoryRequest(title="One", client_token="job-1"))
    other = await storage.stub.CreateStory(storage_pb2.CreateStoryRequest(title="One", client_token="job-2"))
    assert again.story_id == first.story_id
    assert again.created is False
    assert other.story_id != first.story_id
    assert other.created is True


async def test_a_client_token_of_a_deleted_draft_starts_a_new_one(storage: RunningStorage) -> None:
    first = await _draft(storage, token="job-9")
    await storage.stub.DeleteStory(storage_pb2.DeleteStoryRequest(story_id=first))
    again = await storage.stub.CreateStory(storage_pb2.CreateStoryRequest(title="Again", client_token="job-9"))
    assert again.created is True
    assert again.story_id != first


async def test_put_asset_stores_the_bytes_under_their_cid(storage: RunningStorage) -> None:
    story_id = await _draft(storage)
    data = b"Once upon a time" * 1000
    asset = await put_asset(storage.stub, story_id, "text_0", data, "text/plain; charset=utf-8", chunk=1000)
    assert asset.name == "text_0"
    assert asset.cid == cid_for_bytes(data)
    assert asset.size == len(data)
    assert asset.content_type.startswith("text/plain")  # Pinata may drop the parameters
    info, read = await get_asset(storage.stub, story_id, "text_0")
    assert read == data
    assert info == asset


async def test_put_asset_without_content_type_is_octet_stream(storage: RunningStorage) -> None:
    story_id = await _draft(storage)
    asset = await put_asset(storage.stub, story_id, "blob", b"xyz", "")
    assert asset.content_type == "application/octet-stream"


async def test_putting_a_name_again_replaces_the_file(storage: RunningStorage) -> None:
    story_id = await _draft(storage)
    await put_asset(storage.stub, story_id, "image_0", b"first picture", "image/png")
    second = await put_asset(storage.stub, story_id, "image_0", b"second picture", "image/png")
    listed = await storage.stub.ListAssets(storage_pb2.ListAssetsRequest(story_id=story_id))
    assert [a.name for a in listed.assets] == ["image_0"]
    assert listed.assets[0].cid == second.cid
    _, data = await get_asset(storage.stub, story_id, "image_0")
    assert data == b"second picture"
    # The old file is gone from the store, not only hidden.
    records = await list_files(storage.server.store, story_id, name="image_0")
    assert [r.cid for r in records] == [second.cid]


async def test_list_assets_shows_drafts_in_natural_order(storage: RunningStorage) -> None:
    story_id = await _draft(storage)
    for name in ("text_10", "text_2", "image_0", "text_1"):
        await put_asset(storage.stub, story_id, name, name.encode())
    listed = await storage.stub.ListAssets(storage_pb2.ListAssetsRequest(story_id=story_id))
    assert [a.name for a in listed.assets] == ["image_0", "text_1", "text_2", "text_10"]


async def test_a_twenty_megabyte_asset_round_trips_in_chunks(storage: RunningStorage) -> None:
    story_id = await _draft(storage)
    data = os.urandom(20 * 1024 * 1024)
    asset = await put_asset(storage.stub, story_id, "image_0", data, "image/png", chunk=1024 * 1024)
    assert asset.size == len(data)
    assert asset.cid == cid_for_bytes(data)
    messages = 0
    received = hashlib.sha256()
    async for message in storage.stub.GetAsset(storage_pb2.GetAssetRequest(story_id=story_id, name="image_0")):
        messages += 1
        if message.WhichOneof("content") == "chunk":
            assert len(message.chunk) <= 1024 * 1024
            received.update(message.chunk)
    assert received.digest() == hashlib.sha256(data).digest()
    assert messages > 20  # info, then many chunks: never one 20 MB message


@pytest.mark.parametrize(
    ("offset", "length", "expected"),
    [
        (0, 0, b"0123456789"),
        (3, 0, b"3456789"),
        (3, 4, b"3456"),
        (0, 1, b"0"),
        (8, 100, b"89"),
        (10, 0, b""),
    ],
)
async def test_get_asset_honours_offset_and_length(
    storage: RunningStorage, offset: int, length: int, expected: bytes
) -> None:
    story_id = await _draft(storage)
    await put_asset(storage.stub, story_id, "text_0", b"0123456789", "text/plain")
    info, data = await get_asset(storage.stub, story_id, "text_0", offset=offset, length=length)
    assert data == expected
    assert info.size == 10  # the whole file's size, whatever the range


async def test_drafts_are_readable_but_not_listed_or_gettable(storage: RunningStorage) -> None:
    story_id = await _draft(storage, "Unfinished")
    await put_asset(storage.stub, story_id, "image_0", b"picture", "image/png")
    _, data = await get_asset(storage.stub, story_id, "image_0")
    assert data == b"picture"
    assert await list_all(storage.stub) == []
    await expect_rpc_error(
        storage.stub.GetStory(storage_pb2.GetStoryRequest(story_id=story_id)),
        grpc.StatusCode.NOT_FOUND,
        "not committed yet",
    )


# -- commit -----------------------------------------------------------------------------------


async def test_commit_writes_the_manifest_and_lists_the_story(storage: RunningStorage) -> None:
    story_id = await _draft(storage, "The bear")
    text = await put_asset(storage.stub, story_id, "text_0", b"The bear woke.", "text/plain")
    image = await put_asset(storage.stub, story_id, "image_0", b"png", "image/png")
    manifest = storage_pb2.StoryManifest(
        story_id="ignored",
        title="  The bear  ",
        prompt="a bear finds honey",
        style="Pencil and Ink",
        characters=[storage_pb2.Character(name="Bear", description="brown, round ears")],
        parts=[
            storage_pb2.StoryPart(
                index=0,
                title="Morning",
                text="The bear woke.",
                illustration_prompt="a bear yawning",
                text_asset=storage_pb2.AssetRef(name="text_0"),  # no CID: storage fills it in
                image_asset=storage_pb2.AssetRef(name="image_0", cid=image.cid),
            )
        ],
        generation=storage_pb2.GenerationInfo(
            text_engine="offline",
            offline=True,
            seed=7,
            parameters={"temperature": "0.75"},
            timings_seconds={"text": 1.5},
        ),
        extra_json='{"rating": 5}',
    )
    reply = await storage.stub.CommitStory(storage_pb2.CommitStoryRequest(story_id=story_id, manifest=manifest))
    committed = reply.manifest
    assert committed.story_id == story_id
    assert committed.title == "The bear"
    assert committed.format == storage_pb2.STORY_FORMAT_MANIFEST
    assert committed.created_at.seconds > 0
    assert committed.parts[0].text_asset == text
    assert committed.parts[0].image_asset == image
    assert committed.generation.parameters["temperature"] == "0.75"
    assert committed.generation.timings_seconds["text"] == 1.5
    assert committed.generation.offline is True
    got = await storage.stub.GetStory(storage_pb2.GetStoryRequest(story_id=story_id))
    assert got.manifest == committed
    listed = await list_all(storage.stub)
    assert [(s.story_id, s.title) for s in listed] == [(story_id, "The bear")]
    assert listed[0].cover == image
    assert listed[0].created_at == committed.created_at
    assert listed[0].format == storage_pb2.STORY_FORMAT_MANIFEST
    assets = await storage.stub.ListAssets(storage_pb2.ListAssetsRequest(story_id=story_id))
    assert "story.json" in [a.name for a in assets.assets]
    _, manifest_bytes = await get_asset(storage.stub, story_id, "story.json")
    assert b'"rating": 5' in manifest_bytes


async def test_committing_again_with_the_same_content_changes_nothing(storage: RunningStorage) -> None:
    committed = await make_story(storage.stub, "Twice")
    index = storage.server.library.index
    files_before = await list_files(storage.server.store, await index.group_id())
    again = await storage.stub.CommitStory(
        storage_pb2.CommitStoryRequest(story_id=committed.story_id, manifest=committed)
    )
    assert again.manifest == committed
    files_after = await list_files(storage.server.store, await index.group_id())
    assert len(files_after) == len(files_before)  # no second index entry
    assert [s.story_id for s in await list_all(storage.stub)] == [committed.story_id]


async def test_committing_again_with_a_new_title_updates_it_and_keeps_created_at(storage: RunningStorage) -> None:
    committed = await make_story(storage.stub, "Old title")
    changed = storage_pb2.StoryManifest()
    changed.CopyFrom(committed)
    changed.title = "New title"
    reply = await storage.stub.CommitStory(
        storage_pb2.CommitStoryRequest(story_id=committed.story_id, manifest=changed)
    )
    assert reply.manifest.title == "New title"
    assert reply.manifest.created_at == committed.created_at
    listed = await list_all(storage.stub)
    assert [s.title for s in listed] == ["New title"]
    manifests = await list_files(storage.server.store, committed.story_id, name="story.json")
    assert len(manifests) == 1  # the old manifest was removed after the new one was written


async def test_a_committed_story_refuses_new_bytes_but_accepts_the_same_ones(storage: RunningStorage) -> None:
    committed = await make_story(storage.stub, "Fixed", parts=1)
    story_id = committed.story_id
    _, original = await get_asset(storage.stub, story_id, "image_0")
    same = await put_asset(storage.stub, story_id, "image_0", original, "image/png")
    assert same == committed.parts[0].image_asset
    await expect_rpc_error(
        storage.stub.PutAsset(put_asset_requests(story_id, "image_0", b"different", "image/png")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "committed",
    )
    _, still = await get_asset(storage.stub, story_id, "image_0")
    assert still == original


# -- listing ----------------------------------------------------------------------------------


async def test_list_stories_pages_newest_first(storage: RunningStorage) -> None:
    ids = [(await make_story(storage.stub, f"Story {n}", parts=1, images=False)).story_id for n in range(5)]
    first = await storage.stub.ListStories(storage_pb2.ListStoriesRequest(page_size=2))
    assert [s.story_id for s in first.stories] == [ids[4], ids[3]]
    assert first.next_page_token
    second = await storage.stub.ListStories(
        storage_pb2.ListStoriesRequest(page_size=2, page_token=first.next_page_token)
    )
    assert [s.story_id for s in second.stories] == [ids[2], ids[1]]
    third = await storage.stub.ListStories(
        storage_pb2.ListStoriesRequest(page_size=2, page_token=second.next_page_token)
    )
    assert [s.story_id for s in third.stories] == [ids[0]]
    assert third.next_page_token == ""


async def test_page_size_zero_means_twenty(tmp_path: Path, redis_url: str) -> None:
    # Local backend only: 21 commits against the fake Pinata would cost the suite seconds for nothing new.
    async with running_storage(tmp_path, redis_url) as storage:
        for n in range(21):
            await make_story(storage.stub, f"S{n}", parts=1, images=False)
        reply = await storage.stub.ListStories(storage_pb2.ListStoriesRequest())
    assert len(reply.stories) == 20
    assert reply.next_page_token


async def test_page_tokens_stay_stable_while_stories_are_added(storage: RunningStorage) -> None:
    ids = [(await make_story(storage.stub, f"Old {n}", parts=1, images=False)).story_id for n in range(4)]
    first = await storage.stub.ListStories(storage_pb2.ListStoriesRequest(page_size=2))
    assert [s.story_id for s in first.stories] == [ids[3], ids[2]]
    for n in range(3):
        await make_story(storage.stub, f"New {n}", parts=1, images=False)
    second = await storage.stub.ListStories(
        storage_pb2.ListStoriesRequest(page_size=2, page_token=first.next_page_token)
    )
    assert [s.story_id for s in second.stories] == [ids[1], ids[0]]
    assert second.next_page_token == ""


async def test_query_matches_a_title_substring_in_any_case(storage: RunningStorage) -> None:
    bear = await make_story(storage.stub, "The Honey Bear", parts=1, images=False)
    await make_story(storage.stub, "A fox in winter", parts=1, images=False)
    polar = await make_story(storage.stub, "POLAR BEARS", parts=1, images=False)
    found = await list_all(storage.stub, query="bear")
    assert [s.story_id for s in found] == [polar.story_id, bear.story_id]
    one_per_page = await storage.stub.ListStories(storage_pb2.ListStoriesRequest(page_size=1, query="BEAR"))
    assert [s.story_id for s in one_per_page.stories] == [polar.story_id]
    rest = await storage.stub.ListStories(
        storage_pb2.ListStoriesRequest(page_size=1, query="BEAR", page_token=one_per_page.next_page_token)
    )
    assert [s.story_id for s in rest.stories] == [bear.story_id]
    assert rest.next_page_token == ""
    assert await list_all(storage.stub, query="unicorn") == []


# -- delete and reindex -----------------------------------------------------------------------


async def test_delete_story_removes_it_everywhere(storage: RunningStorage) -> None:
    keep = await make_story(storage.stub, "Keep")
    gone = await make_story(storage.stub, "Gone")
    await storage.stub.DeleteStory(storage_pb2.DeleteStoryRequest(story_id=gone.story_id))
    assert [s.story_id for s in await list_all(storage.stub)] == [keep.story_id]
    await expect_rpc_error(
        storage.stub.GetStory(storage_pb2.GetStoryRequest(story_id=gone.story_id)), grpc.StatusCode.NOT_FOUND
    )
    await expect_rpc_error(
        storage.stub.GetAsset(storage_pb2.GetAssetRequest(story_id=gone.story_id, name="text_0")),
        grpc.StatusCode.NOT_FOUND,
    )
    with pytest.raises(NotFound):
        await storage.server.store.get_group(gone.story_id)
    await expect_rpc_error(
        storage.stub.DeleteStory(storage_pb2.DeleteStoryRequest(story_id=gone.story_id)),
        grpc.StatusCode.NOT_FOUND,
        "no story",
    )
    # The kept story shares no bytes with the deleted one and is whole.
    _, data = await get_asset(storage.stub, keep.story_id, "text_0")
    assert data == b"Keep: part 0"


async def test_deleting_a_draft_removes_its_files_and_group(storage: RunningStorage) -> None:
    story_id = await _draft(storage)
    await put_asset(storage.stub, story_id, "image_0", b"x", "image/png")
    await storage.stub.DeleteStory(storage_pb2.DeleteStoryRequest(story_id=story_id))
    await expect_rpc_error(
        storage.stub.ListAssets(storage_pb2.ListAssetsRequest(story_id=story_id)), grpc.StatusCode.NOT_FOUND
    )


async def test_deleting_a_story_keeps_bytes_another_story_shares(storage: RunningStorage) -> None:
    first = await make_story(storage.stub, "Same words", parts=1, images=False)
    second = await make_story(storage.stub, "Same words", parts=1, images=False)
    assert first.parts[0].text_asset.cid == second.parts[0].text_asset.cid
    await storage.stub.DeleteStory(storage_pb2.DeleteStoryRequest(story_id=first.story_id))
    _, data = await get_asset(storage.stub, second.story_id, "text_0")
    assert data == b"Same words: part 0"


async def test_reindex_rebuilds_the_index_after_its_files_are_deleted(storage: RunningStorage) -> None:
    stories = [await make_story(storage.stub, f"Tale {n}", parts=1) for n in range(3)]
    draft = await _draft(storage, "Never committed")
    await put_asset(storage.stub, draft, "text_0", b"draft text")
    store = storage.server.store
    index_group = await storage.server.library.index.group_id()
    for record in await list_files(store, index_group):
        if parse_index_file_name(record.name):
            await store.delete_file(record)
    reply = await storage.stub.Reindex(storage_pb2.ReindexRequest())
    assert reply.story_count == 3
    listed = await list_all(storage.stub)
    assert [s.story_id for s in listed] == [s.story_id for s in reversed(stories)]
    assert [s.title for s in listed] == ["Tale 2", "Tale 1", "Tale 0"]
    parsed = [parse_index_file_name(r.name) for r in await list_files(store, index_group)]
    assert [p[0] for p in parsed if p is not None] == ["snapshot"]  # one snapshot, no entries left


async def test_reindex_keeps_stories_committed_afterwards(storage: RunningStorage) -> None:
    before = await make_story(storage.stub, "Before")
    await storage.stub.Reindex(storage_pb2.ReindexRequest())
    after = await make_story(storage.stub, "After")
    assert [s.story_id for s in await list_all(storage.stub)] == [after.story_id, before.story_id]


# -- health and reflection --------------------------------------------------------------------


async def test_health_is_serving_and_reflection_lists_the_service(storage: RunningStorage) -> None:
    health = health_pb2_grpc.HealthStub(storage.channel)
    for service in ("", "dreamforge.v1.StorageService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(storage.channel)
    responses = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = [s.name async for r in responses for s in r.list_services_response.service]
    assert "dreamforge.v1.StorageService" in names
