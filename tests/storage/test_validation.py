"""Bad input gets the right status code and a message that says what is wrong; nothing half-written shows."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from dreamforge.v1 import storage_pb2

from services.storage.files import list_files
from tests.support.storage import (
    RunningStorage,
    expect_rpc_error,
    list_all,
    make_story,
    put_asset,
    put_asset_requests,
    running_storage,
)

UNKNOWN_ID = "0193b1c2-0000-7000-8000-000000000000"
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
FAILED = grpc.StatusCode.FAILED_PRECONDITION


async def _draft(storage: RunningStorage) -> str:
    return (await storage.stub.CreateStory(storage_pb2.CreateStoryRequest(title="Draft"))).story_id


@pytest.mark.parametrize(
    ("title", "fragment"),
    [("", "empty"), ("   ", "empty"), ("x" * 201, "201 characters"), ("two\nlines", "control characters")],
)
async def test_create_story_refuses_bad_titles(storage: RunningStorage, title: str, fragment: str) -> None:
    await expect_rpc_error(
        storage.stub.CreateStory(storage_pb2.CreateStoryRequest(title=title)), INVALID, "title", fragment
    )


async def test_a_title_of_two_hundred_characters_is_fine(storage: RunningStorage) -> None:
    reply = await storage.stub.CreateStory(storage_pb2.CreateStoryRequest(title="é" * 200))
    assert reply.created


@pytest.mark.parametrize("story_id", ["", "not-a-uuid", "../../etc/passwd", "0193b1c2-0000-7000-8000"])
async def test_ids_that_are_not_uuids_are_invalid_in_every_rpc(storage: RunningStorage, story_id: str) -> None:
    stub = storage.stub
    calls = [
        stub.GetStory(storage_pb2.GetStoryRequest(story_id=story_id)),
        stub.ListAssets(storage_pb2.ListAssetsRequest(story_id=story_id)),
        stub.GetAsset(storage_pb2.GetAssetRequest(story_id=story_id, name="text_0")),
        stub.DeleteStory(storage_pb2.DeleteStoryRequest(story_id=story_id)),
        stub.PutAsset(put_asset_requests(story_id, "text_0", b"x")),
        stub.CommitStory(
            storage_pb2.CommitStoryRequest(
                story_id=story_id, manifest=storage_pb2.StoryManifest(title="t", parts=[storage_pb2.StoryPart()])
            )
        ),
    ]
    for call in calls:
        await expect_rpc_error(call, INVALID, "story_id")


async def test_unknown_ids_are_not_found_in_every_rpc(storage: RunningStorage) -> None:
    stub = storage.stub
    calls = [
        stub.GetStory(storage_pb2.GetStoryRequest(story_id=UNKNOWN_ID)),
        stub.ListAssets(storage_pb2.ListAssetsRequest(story_id=UNKNOWN_ID)),
        stub.GetAsset(storage_pb2.GetAssetRequest(story_id=UNKNOWN_ID, name="text_0")),
        stub.DeleteStory(storage_pb2.DeleteStoryRequest(story_id=UNKNOWN_ID)),
        stub.PutAsset(put_asset_requests(UNKNOWN_ID, "text_0", b"x")),
        stub.CommitStory(
            storage_pb2.CommitStoryRequest(
                story_id=UNKNOWN_ID, manifest=storage_pb2.StoryManifest(title="t", parts=[storage_pb2.StoryPart()])
            )
        ),
    ]
    for call in calls:
        await expect_rpc_error(call, NOT_FOUND, UNKNOWN_ID)


async def test_the_index_group_is_not_a_story(storage: RunningStorage) -> None:
    index_group = await storage.server.library.index.group_id()
    await expect_rpc_error(storage.stub.GetStory(storage_pb2.GetStoryRequest(story_id=index_group)), NOT_FOUND)
    await expect_rpc_error(storage.stub.DeleteStory(storage_pb2.DeleteStoryRequest(story_id=index_group)), NOT_FOUND)
    await expect_rpc_error(storage.stub.PutAsset(put_asset_requests(index_group, "x", b"x")), NOT_FOUND)
    await storage.server.store.get_group(index_group)  # still there


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty"),
        ("a/b", "'/'"),
        ("a\\b", "'/'"),
        ("..", "'..'"),
        ("x..y", "'..'"),
        (".", "'.'"),
        ("a\x00b", "NUL"),
        ("a\nb", "control"),
        ("a\x1fb", "control"),
        ("n" * 201, "201 characters"),
        ("story.json", "reserved"),
    ],
)
async def test_put_asset_refuses_bad_names(storage: RunningStorage, name: str, fragment: str) -> None:
    story_id = await _draft(storage)
    subject = "story.json" if name == "story.json" else "asset name"
    await expect_rpc_error(
        storage.stub.PutAsset(put_asset_requests(story_id, name, b"data")), INVALID, subject, fragment
    )
    listed = await storage.stub.ListAssets(storage_pb2.ListAssetsRequest(story_id=story_id))
    assert list(listed.assets) == []


async def test_get_asset_refuses_bad_names_too(storage: RunningStorage) -> None:
    story_id = await _draft(storage)
    await expect_rpc_error(
        storage.stub.GetAsset(storage_pb2.GetAssetRequest(story_id=story_id, name="../story.json")), INVALID, "'/'"
    )


async def test_put_asset_refuses_a_bad_content_type(storage: RunningStorage) -> None:
    story_id = await _draft(storage)
    await expect_rpc_error(
        storage.stub.PutAsset(put_asset_requests(story_id, "image_0", b"x", "not a type")), INVALID, "content_type"
    )


def _requests(*messages: storage_pb2.PutAssetRequest) -> Iterator[storage_pb2.PutAssetRequest]:
    yield from messages


async def test_put_asset_without_a_header_first_is_invalid(storage: RunningStorage) -> None:
    await expect_rpc_error(
        storage.stub.PutAsset(_requests(storage_pb2.PutAssetRequest(chunk=b"bytes first"))),
        INVALID,
        "first message must be the header",
    )
    await expect_rpc_error(storage.stub.PutAsset(_requests()), INVALID, "first message must be the header")


async def test_put_asset_with_a_second_header_is_invalid_and_stores_nothing(storage: RunningStorage) -> None:
    story_id = await _draft(storage)
    header = storage_pb2.PutAssetHeader(story_id=story_id, name="text_0", content_type="text/plain")
    await expect_rpc_error(
        storage.stub.PutAsset(
            _requests(
                storage_pb2.PutAssetRequest(header=header),
                storage_pb2.PutAssetRequest(chunk=b"some"),
                storage_pb2.PutAssetRequest(header=header),
            )
        ),
        INVALID,
        "second header",
    )
    listed = await storage.stub.ListAssets(storage_pb2.ListAssetsRequest(story_id=story_id))
    assert list(listed.assets) == []


async def test_an_empty_asset_is_invalid(storage: RunningStorage) -> None:
    story_id = await _draft(storage)
    await expect_rpc_error(storage.stub.PutAsset(put_asset_requests(story_id, "text_0", b"")), INVALID, "empty")


async def test_an_asset_over_the_limit_is_refused_naming_the_limit(tmp_path: Path, redis_url: str) -> None:
    async with running_storage(tmp_path, redis_url, max_asset_bytes=1000) as storage:
        story_id = await _draft(storage)
        await put_asset(storage.stub, story_id, "fits", b"x" * 1000)
        await expect_rpc_error(
            storage.stub.PutAsset(put_asset_requests(story_id, "too_big", b"x" * 1001, chunk=100)),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "too_big",
            "limit of 1000 bytes",
            "MAX_ASSET_BYTES",
        )
        names = [
            a.name for a in (await storage.stub.ListAssets(storage_pb2.ListAssetsRequest(story_id=story_id))).assets
        ]
        assert names == ["fits"]


# -- commit -----------------------------------------------------------------------------------


def _commit(story_id: str, manifest: storage_pb2.StoryManifest) -> storage_pb2.CommitStoryRequest:
    return storage_pb2.CommitStoryRequest(story_id=story_id, manifest=manifest)


async def test_commit_refuses_a_manifest_naming_a_missing_asset(storage: RunningStorage) -> None:
    story_id = await _draft(storage)
    manifest = storage_pb2.StoryManifest(
        title="t", parts=[storage_pb2.StoryPart(index=0, image_asset=storage_pb2.AssetRef(name="image_0"))]
    )
    await expect_rpc_error(storage.stub.CommitStory(_commit(story_id, manifest)), FAILED, "image_0", "PutAsset")
    assert await list_all(storage.stub) == []
    await expect_rpc_error(storage.stub.GetStory(storage_pb2.GetStoryRequest(story_id=story_id)), NOT_FOUND)


async def test_commit_refuses_a_manifest_naming_another_cid(storage: RunningStorage) -> None:
    story_id = await _draft(storage)
    stored = await put_asset(storage.stub, story_id, "text_0", b"real text")
    manifest = storage_pb2.StoryManifest(
        title="t",
        parts=[storage_pb2.StoryPart(index=0, text_asset=storage_pb2.AssetRef(name="text_0", cid="bafkreiwrong"))],
    )
    await expect_rpc_error(storage.stub.CommitStory(_commit(story_id, manifest)), FAILED, "bafkreiwrong", stored.cid)
    assert await list_all(storage.stub) == []


@pytest.mark.parametrize(
    ("manifest", "fragment"),
    [
        (storage_pb2.StoryManifest(title="", parts=[storage_pb2.StoryPart()]), "title must not be empty"),
        (storage_pb2.StoryManifest(title="x" * 201, parts=[storage_pb2.StoryPart()]), "201 characters"),
        (storage_pb2.StoryManifest(title="t"), "at least one part"),
        (storage_pb2.StoryManifest(title="t", parts=[storage_pb2.StoryPart(index=1)]), "numbered 0, 1, 2"),
        (
            storage_pb2.StoryManifest(title="t", parts=[storage_pb2.StoryPart(index=0)], extra_json="{not json"),
            "extra_json is not valid JSON",
        ),
        (
            storage_pb2.StoryManifest(title="t", parts=[storage_pb2.StoryPart(index=0)], extra_json="[1, 2]"),
            "extra_json must be a JSON object",
        ),
        (
            storage_pb2.StoryManifest(
                title="t",
                parts=[storage_pb2.StoryPart(index=0, text_asset=storage_pb2.AssetRef(name="../x"))],
            ),
            "asset name",
        ),
        (
            storage_pb2.StoryManifest(
                title="t", parts=[storage_pb2.StoryPart(index=0)], characters=[storage_pb2.Character(name=" ")]
            ),
            "character needs a name",
        ),
    ],
)
async def test_commit_refuses_invalid_manifests(
    storage: RunningStorage, manifest: storage_pb2.StoryManifest, fragment: str
) -> None:
    story_id = await _draft(storage)
    await expect_rpc_error(storage.stub.CommitStory(_commit(story_id, manifest)), INVALID, fragment)
    assert await list_all(storage.stub) == []
    assert await list_files(storage.server.store, story_id, name="story.json") == []


async def test_commit_without_a_manifest_is_invalid(storage: RunningStorage) -> None:
    story_id = await _draft(storage)
    await expect_rpc_error(
        storage.stub.CommitStory(storage_pb2.CommitStoryRequest(story_id=story_id)), INVALID, "needs a manifest"
    )


async def test_a_manifest_that_is_not_json_is_data_loss_with_the_reason(storage: RunningStorage) -> None:
    committed = await make_story(storage.stub, "Soon corrupt", parts=1)
    store = storage.server.store
    (old,) = await list_files(store, committed.story_id, name="story.json")
    garbage = b"{this is not json"
    await store.upload(
        committed.story_id, "story.json", io.BytesIO(garbage), size=len(garbage), content_type="application/json"
    )
    await store.delete_file(old)
    await expect_rpc_error(
        storage.stub.GetStory(storage_pb2.GetStoryRequest(story_id=committed.story_id)),
        grpc.StatusCode.DATA_LOSS,
        committed.story_id,
        "not valid JSON",
    )


# -- reading and listing ----------------------------------------------------------------------


async def test_get_asset_range_errors(storage: RunningStorage) -> None:
    story_id = await _draft(storage)
    await put_asset(storage.stub, story_id, "text_0", b"0123456789")
    get = storage.stub.GetAsset
    await expect_rpc_error(
        get(storage_pb2.GetAssetRequest(story_id=story_id, name="text_0", offset=-1)), INVALID, "offset"
    )
    await expect_rpc_error(
        get(storage_pb2.GetAssetRequest(story_id=story_id, name="text_0", length=-1)), INVALID, "length"
    )
    await expect_rpc_error(
        get(storage_pb2.GetAssetRequest(story_id=story_id, name="text_0", offset=11)),
        INVALID,
        "past the end",
        "10 bytes",
    )
    await expect_rpc_error(
        get(storage_pb2.GetAssetRequest(story_id=story_id, name="image_7")), NOT_FOUND, "no asset 'image_7'"
    )


@pytest.mark.parametrize("page_size", [-1, 101])
async def test_list_stories_refuses_bad_page_sizes(storage: RunningStorage, page_size: int) -> None:
    await expect_rpc_error(
        storage.stub.ListStories(storage_pb2.ListStoriesRequest(page_size=page_size)), INVALID, "page_size", "100"
    )


async def test_list_stories_refuses_foreign_and_mismatched_page_tokens(storage: RunningStorage) -> None:
    for n in range(3):
        await make_story(storage.stub, f"Bear {n}", parts=1, images=False)
    await expect_rpc_error(
        storage.stub.ListStories(storage_pb2.ListStoriesRequest(page_token="garbage!")), INVALID, "page_token"
    )
    first = await storage.stub.ListStories(storage_pb2.ListStoriesRequest(page_size=1, query="bear"))
    await expect_rpc_error(
        storage.stub.ListStories(storage_pb2.ListStoriesRequest(page_token=first.next_page_token, query="fox")),
        INVALID,
        "different query",
    )


async def test_a_query_longer_than_two_hundred_characters_is_invalid(storage: RunningStorage) -> None:
    await expect_rpc_error(storage.stub.ListStories(storage_pb2.ListStoriesRequest(query="q" * 201)), INVALID, "query")


async def test_a_client_token_longer_than_two_hundred_characters_is_invalid(storage: RunningStorage) -> None:
    await expect_rpc_error(
        storage.stub.CreateStory(storage_pb2.CreateStoryRequest(title="t", client_token="t" * 201)),
        INVALID,
        "client_token",
    )
