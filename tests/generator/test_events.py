"""Watching a job's events: replay from the start or after an id, follow live, end at done/failed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.common.errors import InvalidArgument, NotFound
from services.generator import events
from services.generator.events import EventLog, TextBuffer
from services.generator.jobs import JobStore
from services.generator.keys import Keys
from tests.generator.conftest import story_request


async def _collect(log: EventLog, job_id: str, after: str = "") -> list[events.Event]:
    return [event async for event in log.follow(job_id, after)]


async def test_a_late_watcher_gets_everything_from_the_start_and_the_stream_ends(
    store: JobStore, gen_redis: Any, keys: Keys
) -> None:
    job, _ = await store.submit(story_request())
    log = EventLog(gen_redis, keys)
    await log.append(job.id, events.TEXT, {"field": "story_title", "part_index": 0, "delta": "Hi"})
    await log.append(job.id, events.DONE, {"story_id": "s", "title": "Hi"})
    seen = await asyncio.wait_for(_collect(log, job.id), 10)
    assert [e.kind for e in seen] == [events.PROGRESS, events.TEXT, events.DONE]


async def test_a_watcher_resuming_after_an_id_gets_only_what_came_later(
    store: JobStore, gen_redis: Any, keys: Keys
) -> None:
    job, _ = await store.submit(story_request())
    log = EventLog(gen_redis, keys)
    middle = await log.append(job.id, events.TEXT, {"field": "part_text", "part_index": 0, "delta": "a"})
    await log.append(job.id, events.TEXT, {"field": "part_text", "part_index": 0, "delta": "b"})
    await log.append(job.id, events.FAILED, {"state": "failed", "code": "x", "message": "y"})
    seen = await asyncio.wait_for(_collect(log, job.id, after=middle), 10)
    assert [e.data.get("delta") for e in seen] == ["b", None]
    assert all(e.id > middle for e in seen)


async def test_a_watcher_follows_events_as_they_happen(store: JobStore, gen_redis: Any, keys: Keys) -> None:
    job, _ = await store.submit(story_request())
    log = EventLog(gen_redis, keys, block_ms=200)
    watcher = asyncio.create_task(_collect(log, job.id))
    await asyncio.sleep(0.3)
    assert not watcher.done()
    for letter in "abc":
        await log.append(job.id, events.TEXT, {"field": "part_text", "part_index": 0, "delta": letter})
    await log.append(job.id, events.DONE, {"story_id": "s", "title": "t"})
    seen = await asyncio.wait_for(watcher, 10)
    assert "".join(e.data.get("delta", "") for e in seen) == "abc"


async def test_watching_an_unknown_job_or_with_a_bad_id_is_refused(store: JobStore, gen_redis: Any, keys: Keys) -> None:
    log = EventLog(gen_redis, keys)
    with pytest.raises(NotFound):
        await _collect(log, "0193f3a0-0000-7000-8000-000000000000")
    job, _ = await store.submit(story_request())
    with pytest.raises(InvalidArgument):
        await _collect(log, job.id, after="not-an-id")


async def test_text_deltas_are_coalesced_but_nothing_is_lost(store: JobStore, gen_redis: Any, keys: Keys) -> None:
    job, _ = await store.submit(story_request())
    log = EventLog(gen_redis, keys)
    buffer = TextBuffer(log, job.id, max_chars=20, max_delay=60)
    text = "Once upon a time there was a bear who loved honey more than anything."
    for char in text:
        await buffer.add("part_text", 0, char)
    await buffer.add("part_title", 1, "Next")
    await buffer.flush()
    written = [e for e in await log.read(job.id) if e.kind == events.TEXT]
    assert len(written) < len(text) / 10
    assert "".join(e.data["delta"] for e in written if e.data["field"] == "part_text") == text
    assert written[-1].data == {"field": "part_title", "part_index": 1, "delta": "Next"}
