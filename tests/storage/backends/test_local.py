"""The local backend keeps Pinata's model on disk: content-addressed blobs, JSON records, atomic writes."""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
from pathlib import Path

import pytest

from services.common.errors import InvalidArgument, NotFound, Unavailable
from services.storage.backends.base import FileRecord, FileStore
from services.storage.backends.local import LocalFileStore
from services.storage.cid import cid_for_bytes
from services.storage.files import list_files


@pytest.fixture
def local(tmp_path: Path) -> LocalFileStore:
    return LocalFileStore(tmp_path / "store")


async def _upload(store: LocalFileStore, group_id: str | None, name: str, data: bytes) -> FileRecord:
    return await store.upload(group_id, name, io.BytesIO(data), size=len(data), content_type="text/plain")


async def _read(store: LocalFileStore, record: FileRecord) -> bytes:
    return b"".join([chunk async for chunk in store.read(record)])


def test_it_is_a_file_store(local: LocalFileStore) -> None:
    assert isinstance(local, FileStore)


async def test_an_upload_is_stored_under_its_cid_and_reads_back(local: LocalFileStore) -> None:
    group = await local.create_group("story")
    data = os.urandom(3 * 1024 * 1024 + 17)
    record = await local.upload(
        group.id, "image_0", io.BytesIO(data), size=len(data), content_type="image/png", keyvalues={"app": "x"}
    )
    assert record.cid == cid_for_bytes(data)
    assert (record.size, record.content_type, record.group_id) == (len(data), "image/png", group.id)
    assert dict(record.keyvalues) == {"app": "x"}
    assert b"".join([c async for c in local.read(record)]) == data
    assert [c async for c in local.read(record, offset=5, length=10)] == [data[5:15]]
    assert await list_files(local, group.id) == [record]
    assert (local.root / "blobs" / record.cid[-2:] / record.cid).read_bytes() == data


async def test_groups_are_found_by_exact_name_oldest_first(local: LocalFileStore) -> None:
    first = await local.create_group("DREAMFORGE")
    await local.create_group("dreamforge")
    await local.create_group("DREAMFORGE 2")
    second = await local.create_group("DREAMFORGE")
    assert await local.find_groups("DREAMFORGE") == [first, second]
    assert await local.get_group(first.id) == first
    assert {g.id async for g in local.iter_groups()} >= {first.id, second.id}


async def test_unknown_groups_are_not_found(local: LocalFileStore) -> None:
    with pytest.raises(NotFound):
        await local.get_group("0193b1c2-0000-7000-8000-000000000000")
    with pytest.raises(NotFound):
        await local.get_group("../../etc")
    with pytest.raises(NotFound):
        await local.delete_group("0193b1c2-0000-7000-8000-000000000000")
    with pytest.raises(NotFound):
        await _upload(local, "0193b1c2-0000-7000-8000-000000000000", "x", b"x")


async def test_a_deleted_group_is_gone_and_lists_no_files(local: LocalFileStore) -> None:
    group = await local.create_group("story")
    await local.delete_group(group.id)
    with pytest.raises(NotFound):
        await local.get_group(group.id)
    assert await list_files(local, group.id) == []


async def test_files_are_listed_per_group_and_by_exact_name(local: LocalFileStore) -> None:
    one, two = await local.create_group("one"), await local.create_group("two")
    a = await _upload(local, one.id, "text_0", b"a")
    await _upload(local, one.id, "text_00", b"b")
    await _upload(local, two.id, "text_0", b"c")
    assert [r async for r in local.iter_files(one.id, name="text_0")] == [a]
    assert len(await list_files(local, one.id)) == 2


async def test_the_same_bytes_are_stored_once_and_removed_with_the_last_record(local: LocalFileStore) -> None:
    group = await local.create_group("story")
    first = await local.upload(group.id, "a", io.BytesIO(b"same"), size=4, content_type="text/plain")
    second = await local.upload(group.id, "b", io.BytesIO(b"same"), size=4, content_type="text/plain")
    blob = local.root / "blobs" / first.cid[-2:] / first.cid
    assert first.cid == second.cid and first.id != second.id
    assert sorted(p.name for p in (local.root / "refs" / first.cid).iterdir()) == sorted([first.id, second.id])
    await local.delete_file(first)
    assert blob.exists()
    assert b"".join([c async for c in local.read(second)]) == b"same"
    await local.delete_file(second)
    assert not blob.exists()
    assert not (local.root / "refs" / first.cid).exists()
    await local.delete_file(second)  # deleting again is not an error


async def test_a_short_upload_is_refused_and_leaves_nothing(local: LocalFileStore) -> None:
    group = await local.create_group("story")
    with pytest.raises(InvalidArgument, match="said 10 bytes but sent 3"):
        await local.upload(group.id, "x", io.BytesIO(b"abc"), size=10, content_type="text/plain")
    assert await list_files(local, group.id) == []
    assert list((local.root / "tmp").iterdir()) == []
    assert list((local.root / "refs").iterdir()) == []


async def test_more_than_ten_keyvalues_are_refused_like_pinata(local: LocalFileStore) -> None:
    group = await local.create_group("story")
    with pytest.raises(InvalidArgument, match="at most 10 keyvalues"):
        await local.upload(
            group.id,
            "x",
            io.BytesIO(b"x"),
            size=1,
            content_type="text/plain",
            keyvalues={str(n): "v" for n in range(11)},
        )


async def test_records_are_small_json_documents(local: LocalFileStore) -> None:
    group = await local.create_group("story")
    record = await local.upload(group.id, "text_0", io.BytesIO(b"hi"), size=2, content_type="text/plain")
    stored = json.loads((local.root / "files" / group.id / f"{record.id}.json").read_text())
    assert stored["cid"] == record.cid and stored["name"] == "text_0"
    assert json.loads((local.root / "groups" / f"{group.id}.json").read_text())["name"] == "story"


async def test_leftovers_of_a_crash_are_invisible_and_old_temp_files_are_cleaned(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = LocalFileStore(root)
    group = await store.create_group("story")
    # A crash mid-upload leaves a temp file, or a blob and its reference without a record: neither shows.
    (root / "tmp" / "half-written.blob").write_bytes(b"half")
    orphan = cid_for_bytes(b"orphan")
    (root / "blobs" / orphan[-2:]).mkdir(parents=True)
    (root / "blobs" / orphan[-2:] / orphan).write_bytes(b"orphan")
    assert await list_files(store, group.id) == []
    old = time.time() - 7200
    os.utime(root / "tmp" / "half-written.blob", (old, old))
    (root / "tmp" / "in-progress.blob").write_bytes(b"someone else's")
    LocalFileStore(root)  # a restart clears temp files older than an hour, and only those
    assert [p.name for p in (root / "tmp").iterdir()] == ["in-progress.blob"]


async def test_two_stores_on_one_directory_see_each_other(tmp_path: Path) -> None:
    first, second = LocalFileStore(tmp_path / "store"), LocalFileStore(tmp_path / "store")
    group = await first.create_group("shared")
    record = await second.upload(group.id, "x", io.BytesIO(b"x"), size=1, content_type="text/plain")
    assert await list_files(first, group.id) == [record]
    await first.delete_file(record)
    assert await list_files(second, group.id) == []


async def test_large_uploads_and_reads_do_not_stall_the_event_loop(local: LocalFileStore) -> None:
    group = await local.create_group("story")
    data = os.urandom(16 * 1024 * 1024)
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    record = await local.upload(group.id, "big", io.BytesIO(data), size=len(data), content_type="image/png")
    after_upload = ticks
    read = b"".join([c async for c in local.read(record)])
    done.set()
    await task
    assert read == data
    # The loop kept turning while the bytes were hashed, written, fsynced and read in worker threads.
    assert after_upload > 0
    assert ticks > after_upload


async def test_reading_a_file_whose_bytes_are_gone_is_not_found(local: LocalFileStore) -> None:
    group = await local.create_group("story")
    record = await local.upload(group.id, "x", io.BytesIO(b"x"), size=1, content_type="text/plain")
    await local.delete_file(record)
    with pytest.raises(NotFound):
        await _read(local, record)


async def test_check_fails_when_the_directory_is_not_writable(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "store")
    await store.check()
    (tmp_path / "store" / "groups").rename(tmp_path / "moved")
    with pytest.raises(Unavailable, match="missing or not writable"):
        await store.check()


async def test_a_deleted_groups_files_no_longer_list_under_it(local: LocalFileStore) -> None:
    group = await local.create_group("story")
    await local.upload(group.id, "x", io.BytesIO(b"x"), size=1, content_type="text/plain")
    await local.delete_group(group.id)
    assert await list_files(local, group.id) == []
