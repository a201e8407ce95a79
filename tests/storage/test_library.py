"""Crash windows inside CommitStory and DeleteStory: whatever step a process dies at, readers see all or nothing.

A step hook raises where the process would have died; repeating the call finishes the job.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio

from services.common.errors import NotFound
from services.storage.backends.local import LocalFileStore
from services.storage.files import list_files
from services.storage.index import StoryIndex
from services.storage.library import Library
from services.storage.models import AssetRef, Manifest, Part
from services.storage.timestamps import utc_now


class Crash(Exception):
    pass


def _crash_at(step: str) -> object:
    async def hook(name: str) -> None:
        if name == step:
            raise Crash(name)

    return hook


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _library(store: LocalFileStore, client: redis.asyncio.Redis, crash: str | None = None) -> Library:
    hook = _crash_at(crash) if crash else None
    return Library(store, StoryIndex(store, client), client, on_step=hook)  # type: ignore[arg-type]


async def _draft_with_text(library: Library, title: str) -> tuple[str, Manifest]:
    story_id, _ = await library.create_story(title)
    text = await library.put_asset(story_id, "text_0", "text/plain", _chunks(f"{title} text".encode()))
    manifest = Manifest(
        story_id="",
        title=title,
        created_at=utc_now(),
        parts=(Part(index=0, text=f"{title} text", text_asset=AssetRef(text.name, text.cid, "", 0)),),
    )
    return story_id, manifest


@pytest.fixture
def local(tmp_path: Path) -> LocalFileStore:
    return LocalFileStore(tmp_path / "store")


async def test_a_crash_between_manifest_and_index_entry_leaves_a_draft_that_a_retry_commits(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    crashing = _library(local, redis_client, crash="manifest-uploaded")
    story_id, manifest = await _draft_with_text(crashing, "Half committed")
    with pytest.raises(Crash):
        await crashing.commit_story(story_id, manifest)
    reader = _library(local, redis_client)
    assert (await reader.list_stories(10, "", ""))[0] == []
    with pytest.raises(NotFound, match="not committed yet"):
        await reader.get_story(story_id)
    committed = await reader.commit_story(story_id, manifest)  # the caller's retry
    assert [s.story_id for s in (await reader.list_stories(10, "", ""))[0]] == [story_id]
    assert (await reader.get_story(story_id)) == committed
    assert len(await list_files(local, story_id, name="story.json")) == 1


async def test_a_crash_after_unlisting_hides_the_story_and_a_retry_finishes_the_delete(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    library = _library(local, redis_client)
    story_id, manifest = await _draft_with_text(library, "Doomed")
    await library.commit_story(story_id, manifest)
    crashing = _library(local, redis_client, crash="unlisted")
    with pytest.raises(Crash):
        await crashing.delete_story(story_id)
    assert (await library.list_stories(10, "", ""))[0] == []
    with pytest.raises(NotFound):
        await library.get_story(story_id)
    await library.delete_story(story_id)
    with pytest.raises(NotFound):
        await local.get_group(story_id)


async def test_reindex_skips_a_story_whose_manifest_is_broken(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    library = _library(local, redis_client)
    good_id, good = await _draft_with_text(library, "Good")
    bad_id, bad = await _draft_with_text(library, "Broken later")
    await library.commit_story(good_id, good)
    await library.commit_story(bad_id, bad)
    (manifest_file,) = await list_files(local, bad_id, name="story.json")
    await local.upload(bad_id, "story.json", io.BytesIO(b"{"), size=1, content_type="application/json")
    await local.delete_file(manifest_file)
    assert await library.reindex() == 1
    assert [s.story_id for s in (await library.list_stories(10, "", ""))[0]] == [good_id]


async def test_committing_over_a_broken_manifest_replaces_it(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    library = _library(local, redis_client)
    story_id, manifest = await _draft_with_text(library, "Repaired")
    await local.upload(story_id, "story.json", io.BytesIO(b"{"), size=1, content_type="application/json")
    committed = await library.commit_story(story_id, manifest)
    assert await library.get_story(story_id) == committed
    assert len(await list_files(local, story_id, name="story.json")) == 1


async def test_a_retitle_interrupted_before_its_index_entry_is_finished_by_the_retry(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    library = _library(local, redis_client)
    story_id, manifest = await _draft_with_text(library, "Working title")
    await library.commit_story(story_id, manifest)
    retitled = Manifest(**{**{k: getattr(manifest, k) for k in manifest.__dataclass_fields__}, "title": "Final"})
    with pytest.raises(Crash):
        await _library(local, redis_client, crash="manifest-uploaded").commit_story(story_id, retitled)
    assert [s.title for s in (await library.list_stories(10, "", ""))[0]] == ["Working title"]
    await library.commit_story(story_id, retitled)  # the retry finds its manifest stored, and lists the new title
    assert [s.title for s in (await library.list_stories(10, "", ""))[0]] == ["Final"]
    assert (await library.get_story(story_id)).title == "Final"


async def test_an_asset_stored_while_its_draft_is_deleted_is_refused_and_unreadable(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    library = _library(local, redis_client)
    story_id, _ = await library.create_story("Cancelled job")

    async def delete_meanwhile(step: str) -> None:
        if step == "asset-uploaded":
            await library.delete_story(story_id)

    racing = Library(local, StoryIndex(local, redis_client), redis_client, on_step=delete_meanwhile)
    with pytest.raises(NotFound, match="was deleted while 'image_0' was being stored"):
        await racing.put_asset(story_id, "image_0", "image/png", _chunks(b"late picture"))
    with pytest.raises(NotFound):
        await library.open_asset(story_id, "image_0")
    assert list((local.root / "refs").iterdir()) == []  # its bytes went too
