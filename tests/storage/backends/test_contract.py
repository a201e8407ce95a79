"""The FileStore contract, the same for every backend: groups, immutable files, exact names, reads and ranges."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator, Mapping
from typing import TypeVar

import pytest

from services.common.errors import InvalidArgument, NotFound
from services.storage.backends.base import FileRecord, FileStore
from services.storage.cid import cid_for_bytes

T = TypeVar("T")


async def collect(items: AsyncIterator[T]) -> list[T]:
    return [item async for item in items]


async def put(
    store: FileStore,
    group_id: str | None,
    name: str,
    data: bytes,
    *,
    content_type: str = "application/octet-stream",
    keyvalues: Mapping[str, str] | None = None,
) -> FileRecord:
    return await store.upload(
        group_id, name, io.BytesIO(data), size=len(data), content_type=content_type, keyvalues=keyvalues
    )


async def read_all(store: FileStore, file: FileRecord, *, offset: int = 0, length: int | None = None) -> bytes:
    return b"".join(await collect(store.read(file, offset=offset, length=length)))


async def test_a_new_group_can_be_fetched_by_its_id(file_store: FileStore) -> None:
    created = await file_store.create_group("The bear and the honey mine")

    fetched = await file_store.get_group(created.id)

    assert fetched.id == created.id
    assert fetched.name == "The bear and the honey mine"
    assert fetched.created_at == created.created_at
    assert fetched.created_at.tzinfo is not None


async def test_an_unknown_group_is_not_found(file_store: FileStore) -> None:
    with pytest.raises(NotFound):
        await file_store.get_group("01234567-89ab-4def-8123-456789abcdef")


async def test_find_groups_matches_names_exactly_despite_loose_filters(file_store: FileStore) -> None:
    wanted = await file_store.create_group("Story")
    for near_miss in ("Story 2", "my story", "STORY", "Stor"):
        await file_store.create_group(near_miss)
    twin = await file_store.create_group("Story")

    found = await file_store.find_groups("Story")

    assert [group.id for group in found] == [wanted.id, twin.id]  # oldest first


async def test_iter_groups_follows_pagination_to_the_end(file_store: FileStore) -> None:
    created = {(await file_store.create_group(f"group {number}")).id for number in range(11)}

    listed = [group.id for group in await collect(file_store.iter_groups())]

    assert sorted(listed) == sorted(created)


async def test_deleting_a_group_makes_it_unknown(file_store: FileStore) -> None:
    group = await file_store.create_group("short-lived")

    await file_store.delete_group(group.id)

    with pytest.raises(NotFound):
        await file_store.get_group(group.id)
    assert group.id not in [listed.id async for listed in file_store.iter_groups()]


async def test_deleting_an_unknown_group_is_not_found(file_store: FileStore) -> None:
    with pytest.raises(NotFound):
        await file_store.delete_group("01234567-89ab-4def-8123-456789abcdef")


async def test_an_upload_is_described_by_its_record(file_store: FileStore) -> None:
    group = await file_store.create_group("story")
    data = b"Once upon a time"

    record = await put(file_store, group.id, "text_0", data, content_type="text/plain", keyvalues={"part": "0"})

    assert record.name == "text_0"
    assert record.cid == cid_for_bytes(data)
    assert record.size == len(data)
    assert record.content_type == "text/plain"
    assert record.group_id == group.id
    assert dict(record.keyvalues) == {"part": "0"}
    assert record.created_at.tzinfo is not None


@pytest.mark.parametrize("announced", [10, 50])
async def test_an_upload_whose_size_disagrees_with_its_content_is_refused(
    file_store: FileStore, announced: int
) -> None:
    group = await file_store.create_group("story")
    content = io.BytesIO(b"0123456789-and-more-bytes-than-announced")

    with pytest.raises(InvalidArgument, match=f"said {announced} bytes but sent 40"):
        await file_store.upload(group.id, "digits", content, size=announced, content_type="text/plain")
    assert await collect(file_store.iter_files(group.id)) == []


async def test_iter_files_lists_every_file_of_the_group_across_pages(file_store: FileStore) -> None:
    group = await file_store.create_group("many parts")
    other = await file_store.create_group("another story")
    await put(file_store, other.id, "text_0", b"not mine")
    uploaded = {(await put(file_store, group.id, f"text_{n}", f"part {n}".encode())).id for n in range(10)}

    listed = await collect(file_store.iter_files(group.id))

    assert sorted(file.id for file in listed) == sorted(uploaded)
    assert all(file.group_id == group.id for file in listed)


async def test_iter_files_by_name_matches_exactly_despite_loose_filters(file_store: FileStore) -> None:
    group = await file_store.create_group("index")
    first = await put(file_store, group.id, "index.json", b"v1")
    for near_miss in ("index.json.tmp", "old-index.json", "INDEX.JSON", "index"):
        await put(file_store, group.id, near_miss, b"noise")
    second = await put(file_store, group.id, "index.json", b"v2")

    found = await collect(file_store.iter_files(group.id, name="index.json"))

    assert sorted(file.id for file in found) == sorted([first.id, second.id])


async def test_an_unknown_group_has_no_files(file_store: FileStore) -> None:
    assert await collect(file_store.iter_files("01234567-89ab-4def-8123-456789abcdef")) == []


async def test_an_empty_group_and_a_deleted_one_have_no_files(file_store: FileStore) -> None:
    group = await file_store.create_group("empty")
    assert await collect(file_store.iter_files(group.id)) == []

    await file_store.delete_group(group.id)

    assert await collect(file_store.iter_files(group.id)) == []


async def test_a_large_file_reads_back_byte_for_byte_in_bounded_chunks(file_store: FileStore) -> None:
    group = await file_store.create_group("pictures")
    data = os.urandom(2_500_000)
    record = await put(file_store, group.id, "image_0", data, content_type="image/png")

    chunks = await collect(file_store.read(record))

    assert b"".join(chunks) == data
    assert len(chunks) > 1
    assert max(len(chunk) for chunk in chunks) <= 1024 * 1024


@pytest.mark.parametrize(
    ("offset", "length", "expected"),
    [
        (0, None, slice(0, None)),
        (1000, None, slice(1000, None)),
        (1000, 500, slice(1000, 1500)),
        (0, 1, slice(0, 1)),
        (99_990, 100, slice(99_990, None)),
        (100_000, None, slice(0, 0)),
        (100_000, 10, slice(0, 0)),
        (5, 0, slice(0, 0)),
    ],
)
async def test_ranges_read_the_requested_bytes(
    file_store: FileStore, offset: int, length: int | None, expected: slice
) -> None:
    group = await file_store.create_group("ranges")
    data = os.urandom(100_000)
    record = await put(file_store, group.id, "blob", data)

    assert await read_all(file_store, record, offset=offset, length=length) == data[expected]


async def test_a_deleted_file_is_no_longer_listed_and_deleting_it_again_is_fine(file_store: FileStore) -> None:
    group = await file_store.create_group("story")
    keep = await put(file_store, group.id, "keep", b"keep")
    drop = await put(file_store, group.id, "drop", b"drop")

    await file_store.delete_file(drop)
    await file_store.delete_file(drop)

    assert [file.id for file in await collect(file_store.iter_files(group.id))] == [keep.id]


async def test_the_same_name_uploaded_twice_makes_two_files(file_store: FileStore) -> None:
    group = await file_store.create_group("story")
    old = await put(file_store, group.id, "story.json", b'{"v": 1}')
    new = await put(file_store, group.id, "story.json", b'{"v": 2}')

    files = {file.id: file for file in await collect(file_store.iter_files(group.id, name="story.json"))}

    assert set(files) == {old.id, new.id}
    assert await read_all(file_store, files[new.id]) == b'{"v": 2}'
    assert await read_all(file_store, files[old.id]) == b'{"v": 1}'
