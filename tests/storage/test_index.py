"""The story index on the local store and a real Redis: cost per commit, replicas, compaction, crashes, fencing.

Crashes are simulated by a step hook that raises between two steps of a write (the
lock is then released, as it would be by expiry after a real crash).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis.asyncio

from services.common.errors import InvalidArgument, Unavailable
from services.common.ids import new_id
from services.storage import keys
from services.storage.backends.base import FileRecord, FileStore
from services.storage.backends.local import LocalFileStore
from services.storage.files import list_files
from services.storage.index import (
    ADD,
    REMOVE,
    Entry,
    IndexState,
    StoryIndex,
    decode_page_token,
    encode_page_token,
    entry_name,
    parse_index_file_name,
    snapshot_name,
)
from services.storage.metrics import InstrumentedFileStore, StorageMetrics
from services.storage.models import StorySummary
from services.storage.redis_lock import RedisLock
from services.storage.timestamps import utc_now

NO_COMPACTION = 10**9


class Crash(Exception):
    """Stands for the process dying at a step."""


def _story(title: str) -> StorySummary:
    return StorySummary(story_id=new_id(), title=title, created_at=utc_now())


@pytest.fixture
def local(tmp_path: Path) -> LocalFileStore:
    return LocalFileStore(tmp_path / "store")


def _index(store: FileStore, client: redis.asyncio.Redis, **options: object) -> StoryIndex:
    return StoryIndex(store, client, **options)  # type: ignore[arg-type]


async def _ids(index: StoryIndex, query: str = "") -> list[str]:
    found, token = await index.page(100, "", query)
    assert token == ""
    return [s.story_id for s in found]


async def _index_files(store: FileStore, index: StoryIndex) -> list[tuple[str, int]]:
    names = [parse_index_file_name(r.name) for r in await list_files(store, await index.group_id())]
    return sorted(n for n in names if n is not None)


def _calls(metrics: StorageMetrics, method: str) -> float:
    value = metrics.registry.get_sample_value(
        "dreamforge_storage_backend_seconds_count", {"backend": "local", "method": method}
    )
    return value or 0.0


# -- pure parts -------------------------------------------------------------------------------


def test_state_applies_adds_and_removes_and_round_trips_through_json() -> None:
    a, b = _story("A"), _story("B")
    state = IndexState()
    state.apply(Entry(seq=1, op=ADD, story=a, story_id=a.story_id))
    state.apply(Entry(seq=2, op=ADD, story=b, story_id=b.story_id))
    state.apply(Entry(seq=3, op=REMOVE, story_id=a.story_id))
    state.apply(Entry(seq=4, op=REMOVE, story_id="legacy-id", legacy=True))
    state.apply(Entry(seq=4, op=ADD, story=b, story_id=b.story_id))  # a repeated entry changes nothing
    assert state.seq == 4
    assert list(state.stories) == [b.story_id]
    assert state.tombstones == {"legacy-id"}
    again = IndexState.from_json(state.to_json())
    assert again == state


def test_entries_round_trip_through_json() -> None:
    story = _story("T")
    for entry in (
        Entry(seq=7, op=ADD, story=story, story_id=story.story_id),
        Entry(seq=8, op=REMOVE, story_id=story.story_id, legacy=True),
    ):
        assert Entry.from_json(entry.to_json()) == entry


def test_index_file_names_sort_by_sequence_number() -> None:
    assert parse_index_file_name(entry_name(42)) == ("entry", 42)
    assert parse_index_file_name(snapshot_name(7)) == ("snapshot", 7)
    assert parse_index_file_name("index.txt") is None
    assert sorted([entry_name(10), entry_name(9)]) == [entry_name(9), entry_name(10)]


def test_page_tokens_are_tied_to_their_query() -> None:
    story = _story("Bear")
    token = encode_page_token(story, "bear")
    assert decode_page_token(token, "BEAR")[1] == story.story_id  # the query is case-insensitive
    with pytest.raises(InvalidArgument, match="different query"):
        decode_page_token(token, "fox")
    with pytest.raises(InvalidArgument, match="not one this service issued"):
        decode_page_token("e30", "")


# -- the Redis lock ---------------------------------------------------------------------------


async def test_a_lock_is_released_only_by_its_holder(redis_client: redis.asyncio.Redis) -> None:
    lock = RedisLock(redis_client, "test:lock", ttl_ms=50, wait_seconds=5)
    stale = await lock.acquire()
    await asyncio.sleep(0.1)  # expired
    current = await lock.acquire()
    assert await lock.release(stale) is False  # the expired holder cannot free the new holder's lock
    assert await redis_client.get("test:lock") == current.encode()
    assert await lock.release(current) is True


async def test_a_busy_lock_times_out_as_unavailable(redis_client: redis.asyncio.Redis) -> None:
    holder = RedisLock(redis_client, "test:busy", ttl_ms=60_000, wait_seconds=5)
    await holder.acquire()
    waiter = RedisLock(redis_client, "test:busy", ttl_ms=60_000, wait_seconds=0.2)
    with pytest.raises(Unavailable, match="busy"):
        await waiter.acquire()


# -- the index group --------------------------------------------------------------------------


async def test_the_oldest_group_of_the_name_is_the_index(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    older = await local.create_group("DREAMFORGE")
    await local.create_group("DREAMFORGE")
    await local.create_group("DREAMFORGE-2")
    assert await _index(local, redis_client).group_id() == older.id


async def test_concurrent_replicas_create_the_index_group_once(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    replicas = [_index(local, redis_client) for _ in range(5)]
    ids = await asyncio.gather(*(r.group_id() for r in replicas))
    assert len(set(ids)) == 1
    assert [g.id for g in await local.find_groups("DREAMFORGE")] == [ids[0]]


async def test_the_group_name_is_configurable(local: LocalFileStore, redis_client: redis.asyncio.Redis) -> None:
    index = _index(local, redis_client, group_name="MY-LIBRARY")
    await index.add(_story("x"))
    assert [g.id for g in await local.find_groups("MY-LIBRARY")] == [await index.group_id()]
    assert await local.find_groups("DREAMFORGE") == []


# -- commits and reads ------------------------------------------------------------------------


async def test_a_commit_costs_the_same_with_ten_or_a_hundred_and_fifty_stories(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    metrics = StorageMetrics()
    store = InstrumentedFileStore(local, metrics, "local")
    index = _index(store, redis_client, metrics=metrics, compact_every=NO_COMPACTION)

    async def cost_of_one_commit() -> dict[str, float]:
        methods = ("upload", "iter_files", "read", "delete_file", "find_groups")
        before = {m: _calls(metrics, m) for m in methods}
        await index.add(_story("measured"))
        return {m: _calls(metrics, m) - before[m] for m in methods}

    for n in range(9):
        await index.add(_story(f"s{n}"))
    small = await cost_of_one_commit()
    for n in range(140):
        await index.add(_story(f"t{n}"))
    large = await cost_of_one_commit()
    assert small == large == {"upload": 1, "iter_files": 0, "read": 0, "delete_file": 0, "find_groups": 0}


async def test_another_replica_catches_up_by_reading_only_the_new_entries(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    writer = _index(local, redis_client, compact_every=NO_COMPACTION)
    metrics = StorageMetrics()
    reader = _index(InstrumentedFileStore(local, metrics, "local"), redis_client, metrics=metrics)
    first = [_story(f"first {n}") for n in range(3)]
    for story in first:
        await writer.add(story)
    assert await _ids(reader) == [s.story_id for s in reversed(first)]
    reads_before, lists_before = _calls(metrics, "read"), _calls(metrics, "iter_files")
    later = [_story(f"later {n}") for n in range(2)]
    for story in later:
        await writer.add(story)
    assert await _ids(reader) == [s.story_id for s in reversed(first + later)]
    assert _calls(metrics, "read") - reads_before == 2  # the two new entries, nothing else
    assert _calls(metrics, "iter_files") - lists_before == 2  # each looked up by its exact name
    assert metrics.registry.get_sample_value("dreamforge_storage_index_reloads_total", {"kind": "incremental"}) == 1


async def test_listing_again_reads_nothing_from_the_store_when_nothing_changed(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    metrics = StorageMetrics()
    index = _index(InstrumentedFileStore(local, metrics, "local"), redis_client, metrics=metrics)
    for n in range(5):
        await index.add(_story(f"s{n}"))
    await index.page(2, "", "")
    calls = {m: _calls(metrics, m) for m in ("iter_files", "read", "find_groups")}
    for query in ("", "s1", "S"):
        await index.page(2, "", query)
    assert {m: _calls(metrics, m) for m in calls} == calls


async def test_removing_a_story_unlists_it_for_every_replica(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    writer, reader = _index(local, redis_client), _index(local, redis_client)
    keep, drop = _story("keep"), _story("drop")
    await writer.add(keep)
    await writer.add(drop)
    assert await _ids(reader) == [drop.story_id, keep.story_id]
    await writer.remove(drop.story_id)
    assert await _ids(reader) == [keep.story_id]
    assert await _ids(_index(local, redis_client)) == [keep.story_id]


async def test_two_replicas_committing_at_once_lose_nothing(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    replicas = [_index(local, redis_client, compact_every=16) for _ in range(2)]
    stories = [_story(f"s{n}") for n in range(50)]
    await asyncio.gather(*(replicas[n % 2].add(story) for n, story in enumerate(stories)))
    for replica in replicas:
        await replica.aclose()
    fresh = _index(local, redis_client)
    assert sorted(await _ids(fresh)) == sorted(s.story_id for s in stories)
    assert int(await redis_client.get(keys.index_seq(await fresh.group_id())) or 0) == 50


async def test_pages_stay_stable_while_stories_are_added(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    index = _index(local, redis_client)
    old = [_story(f"old {n}") for n in range(4)]
    for story in old:
        await index.add(story)
    first, token = await index.page(2, "", "")
    for n in range(5):
        await index.add(_story(f"new {n}"))
    second, last = await index.page(2, token, "")
    assert [s.story_id for s in first + second] == [s.story_id for s in reversed(old)]
    assert last == ""


async def test_stories_with_the_same_creation_time_page_without_loss_or_repeats(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    index = _index(local, redis_client)
    moment = utc_now()
    stories = [StorySummary(story_id=new_id(), title=f"t{n}", created_at=moment) for n in range(7)]
    for story in stories:
        await index.add(story)
    seen: list[str] = []
    token = ""
    while True:
        page, token = await index.page(3, token, "")
        seen.extend(s.story_id for s in page)
        if not token:
            break
    assert sorted(seen) == sorted(s.story_id for s in stories)
    assert len(seen) == len(set(seen))


# -- compaction -------------------------------------------------------------------------------


async def test_compaction_writes_a_snapshot_then_removes_what_it_folds(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    index = _index(local, redis_client, compact_every=NO_COMPACTION)
    stories = [_story(f"s{n}") for n in range(6)]
    for story in stories:
        await index.add(story)
    await index.remove(stories[0].story_id)
    assert await index.compact() is True
    assert await _index_files(local, index) == [("snapshot", 7)]
    expected = [s.story_id for s in reversed(stories[1:])]
    assert await _ids(_index(local, redis_client)) == expected
    later = _story("after the snapshot")
    await index.add(later)
    assert await _index_files(local, index) == [("entry", 8), ("snapshot", 7)]
    assert await _ids(_index(local, redis_client)) == [later.story_id, *expected]


async def test_commits_start_compaction_in_the_background_once_entries_pile_up(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    metrics = StorageMetrics()
    index = _index(local, redis_client, compact_every=5, metrics=metrics)
    for n in range(12):
        await index.add(_story(f"s{n}"))
    await index.aclose()  # waits for a compaction in flight
    files = await _index_files(local, index)
    snapshots = [seq for kind, seq in files if kind == "snapshot"]
    entries = [seq for kind, seq in files if kind == "entry"]
    assert snapshots and len(snapshots) == 1
    assert all(seq > snapshots[0] for seq in entries)  # nothing folded is left behind
    assert len(entries) < 5
    assert metrics.registry.get_sample_value("dreamforge_storage_index_compactions_total", {"reason": "compaction"})
    assert len(await _ids(_index(local, redis_client))) == 12


async def test_a_crash_between_snapshot_and_cleanup_leaves_a_correct_index(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    async def crash_after_snapshot(step: str) -> None:
        if step == "snapshot-uploaded":
            raise Crash(step)

    index = _index(local, redis_client, compact_every=NO_COMPACTION, on_step=crash_after_snapshot)
    gone, kept = _story("removed before the snapshot"), _story("kept")
    await index.add(gone)
    await index.add(kept)
    await index.remove(gone.story_id)
    with pytest.raises(Crash):
        await index.compact()
    # Both the snapshot and the entries it folds are there; readers take the snapshot and skip those entries.
    assert await _index_files(local, index) == [("entry", 1), ("entry", 2), ("entry", 3), ("snapshot", 3)]
    assert await _ids(_index(local, redis_client)) == [kept.story_id]
    # The next compaction finishes the job.
    assert await _index(local, redis_client).compact(force=True) is True
    assert await _index_files(local, index) == [("snapshot", 3)]
    assert await _ids(_index(local, redis_client)) == [kept.story_id]


class _CompactsDuringFirstEntryRead(InstrumentedFileStore):
    """The real local store; the first time an index entry is read, another replica compacts first."""

    def __init__(self, inner: LocalFileStore, compactor: StoryIndex) -> None:
        super().__init__(inner, StorageMetrics(), "local")
        self._compactor: StoryIndex | None = compactor

    async def _read_after_compaction(self, file: FileRecord, offset: int, length: int | None) -> AsyncIterator[bytes]:
        if self._compactor is not None and file.name.startswith("index-entry-"):
            compactor, self._compactor = self._compactor, None
            assert await compactor.compact() is True
        async for chunk in self.inner.read(file, offset=offset, length=length):
            yield chunk

    def read(self, file: FileRecord, *, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        return self._read_after_compaction(file, offset, length)


async def test_a_replica_loading_while_another_compacts_still_sees_every_story(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    writer = _index(local, redis_client, compact_every=NO_COMPACTION)
    stories = [_story(f"s{n}") for n in range(4)]
    for story in stories:
        await writer.add(story)
    # The reader lists entries 1-4, then they are folded into a snapshot and deleted before it reads them.
    reader = _index(_CompactsDuringFirstEntryRead(local, writer), redis_client)
    assert sorted(await _ids(reader)) == sorted(s.story_id for s in stories)
    assert await _index_files(local, writer) == [("snapshot", 4)]


async def test_the_highest_readable_snapshot_wins(local: LocalFileStore, redis_client: redis.asyncio.Redis) -> None:
    index = _index(local, redis_client, compact_every=NO_COMPACTION)
    first = _story("first")
    await index.add(first)
    await index.compact()
    second = _story("second")
    await index.add(second)
    await index.compact()
    # An old snapshot left behind (say a crash before its removal) does not matter.
    old = IndexState(seq=1, stories={first.story_id: first})
    await index._upload_json(snapshot_name(1), old.to_json(), "index-snapshot")
    assert await _ids(_index(local, redis_client)) == [second.story_id, first.story_id]


# -- crashes while committing, Redis lost, and fencing ----------------------------------------


async def test_a_crash_after_an_entry_is_stored_but_before_it_is_published(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    async def crash_before_publishing(step: str) -> None:
        if step == "entry-uploaded":
            raise Crash(step)

    crashing = _index(local, redis_client, on_step=crash_before_publishing)
    survivor, reader = _index(local, redis_client), _index(local, redis_client)
    base = _story("base")
    await survivor.add(base)
    assert await _ids(reader) == [base.story_id]
    orphan = _story("written, never published")
    with pytest.raises(Crash):
        await crashing.add(orphan)
    group = await survivor.group_id()
    assert int(await redis_client.get(keys.index_seq(group)) or 0) == 1
    # The next commit publishes the next number; every replica then agrees the orphan is in (its change is whole).
    after = _story("after the crash")
    await survivor.add(after)
    expected = sorted([base.story_id, orphan.story_id, after.story_id])
    assert sorted(await _ids(reader)) == expected
    assert sorted(await _ids(_index(local, redis_client))) == expected


async def test_with_redis_flushed_the_sequence_is_recovered_from_the_store(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    index = _index(local, redis_client, compact_every=NO_COMPACTION)
    stories = [_story(f"s{n}") for n in range(3)]
    for story in stories:
        await index.add(story)
    await redis_client.flushdb()
    fresh = _index(local, redis_client)
    assert sorted(await _ids(fresh)) == sorted(s.story_id for s in stories)
    assert await redis_client.get(keys.index_seq(await fresh.group_id())) == b"3"
    more = _story("after the flush")
    assert await index.add(more) == 4  # the old replica's writer continues the store's numbering
    assert await _index_files(local, index) == [("entry", 1), ("entry", 2), ("entry", 3), ("entry", 4)]
    assert sorted(await _ids(fresh)) == sorted(s.story_id for s in [*stories, more])


async def test_a_writer_flushed_mid_way_recovers_before_writing(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    index = _index(local, redis_client, compact_every=NO_COMPACTION)
    await index.add(_story("a"))
    await index.add(_story("b"))
    await index.compact()
    await redis_client.flushdb()
    assert await index.add(_story("c")) == 3
    assert len(await _ids(_index(local, redis_client))) == 3


async def test_a_writer_whose_lock_expired_is_fenced_off_and_writes_again(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    paused = asyncio.Event()
    resume = asyncio.Event()
    pauses = 0

    async def pause_once(step: str) -> None:
        nonlocal pauses
        if step == "entry-uploaded" and pauses == 0:
            pauses += 1
            paused.set()
            await resume.wait()

    slow_metrics = StorageMetrics()
    slow = _index(local, redis_client, lock_ttl_ms=200, on_step=pause_once, metrics=slow_metrics)
    fast = _index(local, redis_client)
    a, b = _story("slow writer"), _story("fast writer")
    slow_commit = asyncio.create_task(slow.add(a))
    await asyncio.wait_for(paused.wait(), 30)
    # The slow writer holds entry 1 unpublished; its lock expires and the fast writer takes number 1.
    assert await fast.add(b) == 1
    resume.set()
    assert await asyncio.wait_for(slow_commit, 30) == 2  # fenced off number 1, it wrote number 2
    assert slow_metrics.registry.get_sample_value("dreamforge_storage_index_fenced_total") == 1
    assert int(await redis_client.get(keys.index_seq(await fast.group_id())) or 0) == 2
    fresh = _index(local, redis_client)
    assert sorted(await _ids(fresh)) == sorted([a.story_id, b.story_id])
    assert sorted(await _ids(fast)) == sorted([a.story_id, b.story_id])


# -- reindex ----------------------------------------------------------------------------------


async def test_reindex_keeps_changes_committed_while_it_scans(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    index, other = _index(local, redis_client), _index(local, redis_client)
    old, removed_meanwhile = _story("old"), _story("removed during the scan")
    await index.add(old)
    await index.add(removed_meanwhile)
    added_meanwhile = _story("added during the scan")

    async def scan(_titles: object) -> list[StorySummary]:
        found = [old, removed_meanwhile]  # what the groups showed when the scan passed them
        await other.add(added_meanwhile)
        await other.remove(removed_meanwhile.story_id)
        return found

    count = await index.reindex(scan)
    assert count == 2
    expected = sorted([old.story_id, added_meanwhile.story_id])
    assert sorted(await _ids(index)) == expected
    assert sorted(await _ids(_index(local, redis_client))) == expected
    assert [kind for kind, _ in await _index_files(local, index)] == ["snapshot"]


async def test_reindex_replaces_a_wrong_index_with_what_the_groups_hold(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    index = _index(local, redis_client)
    stale, real = _story("listed but gone"), _story("real")
    await index.add(stale)

    async def scan(_titles: object) -> list[StorySummary]:
        return [real]

    assert await index.reindex(scan) == 1
    assert await _ids(_index(local, redis_client)) == [real.story_id]


async def test_created_times_order_the_list_not_commit_order(
    local: LocalFileStore, redis_client: redis.asyncio.Redis
) -> None:
    index = _index(local, redis_client)
    now = utc_now()
    older = StorySummary(story_id=new_id(), title="older", created_at=now - timedelta(days=1))
    newer = StorySummary(story_id=new_id(), title="newer", created_at=now)
    await index.add(newer)
    await index.add(older)
    assert await _ids(index) == [newer.story_id, older.story_id]
