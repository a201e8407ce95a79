"""Job records against a real Redis: submit, idempotency, get, list, cancel, retention."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from services.generator import events
from services.generator.events import EventLog
from services.generator.jobs import JobState, JobStore
from services.generator.keys import Keys
from tests.generator.conftest import make_queue, story_request


async def test_a_submitted_job_is_queued_on_the_stream_with_a_first_event(
    store: JobStore, gen_redis: Any, keys: Keys
) -> None:
    job, created = await store.submit(story_request())
    assert created
    assert (job.state, job.stage, job.attempts, job.parts) == (JobState.QUEUED, "queued", 0, 2)
    entries = await gen_redis.xrange(keys.stream)
    assert [fields["job_id"] for _id, fields in entries] == [job.id]
    first = (await EventLog(gen_redis, keys).read(job.id))[0]
    assert first.kind == events.PROGRESS and first.data["state"] == "queued"


async def test_the_same_idempotency_key_returns_the_same_job(store: JobStore, gen_redis: Any, keys: Keys) -> None:
    first, created_first = await store.submit(story_request(), idempotency_key="key-1")
    again, created_again = await store.submit(story_request("another prompt"), idempotency_key="key-1")
    other, created_other = await store.submit(story_request(), idempotency_key="key-2")
    assert created_first and not created_again and created_other
    assert again.id == first.id and again.prompt == first.prompt
    assert other.id != first.id
    assert await gen_redis.xlen(keys.stream) == 2


async def test_concurrent_submits_with_one_key_make_exactly_one_job(store: JobStore) -> None:
    results = await asyncio.gather(*(store.submit(story_request(), idempotency_key="burst") for _ in range(10)))
    assert len({job.id for job, _created in results}) == 1
    assert sum(created for _job, created in results) == 1


async def test_unknown_and_malformed_ids_are_told_apart(store: JobStore) -> None:
    with pytest.raises(NotFound):
        await store.get("0193f3a0-0000-7000-8000-000000000000")
    with pytest.raises(InvalidArgument, match="not a job id"):
        await store.get("../etc/passwd")


async def test_cancelling_a_queued_job_ends_it_at_once_and_no_worker_runs_it(
    store: JobStore, gen_redis: Any, keys: Keys
) -> None:
    job, _ = await store.submit(story_request())
    cancelled = await store.cancel(job.id)
    assert cancelled.state is JobState.CANCELLED and cancelled.error_code == "cancelled"
    last = (await EventLog(gen_redis, keys).read(job.id))[-1]
    assert last.kind == events.FAILED and last.data["state"] == "cancelled"
    queue = make_queue(gen_redis, store, "w1")
    await queue.ensure_group()
    assert await queue.next_job(block_ms=100) is None
    with pytest.raises(FailedPrecondition, match="already finished"):
        await store.cancel(job.id)


async def test_cancelling_a_running_job_asks_its_worker_to_stop(store: JobStore, gen_redis: Any) -> None:
    job, _ = await store.submit(story_request())
    queue = make_queue(gen_redis, store, "w1")
    await queue.ensure_group()
    claim = await queue.next_job(block_ms=100)
    assert claim is not None
    after = await store.cancel(job.id)
    assert after.state is JobState.RUNNING and after.cancel_requested
    assert await queue.cancel_requested(job.id)
    assert await queue.extend(claim) is True


async def test_jobs_are_listed_newest_first_by_state_a_page_at_a_time(store: JobStore) -> None:
    ids = [(await store.submit(story_request(f"prompt {n}")))[0].id for n in range(5)]
    await store.cancel(ids[1])
    page, token = await store.list_jobs(JobState.QUEUED, 2, "")
    assert [job.id for job in page] == [ids[4], ids[3]]
    rest, end = await store.list_jobs(JobState.QUEUED, 2, token)
    assert [job.id for job in rest] == [ids[2], ids[0]] and end == ""
    everything, _ = await store.list_jobs(None, 20, "")
    assert [job.id for job in everything] == list(reversed(ids))
    cancelled, _ = await store.list_jobs(JobState.CANCELLED, 20, "")
    assert [job.id for job in cancelled] == [ids[1]]
    with pytest.raises(InvalidArgument):
        await store.list_jobs(None, 101, "")


async def test_finished_jobs_expire_after_the_retention_period(gen_redis: Any, keys: Keys) -> None:
    store = JobStore(gen_redis, keys, retention_seconds=1)
    job, _ = await store.submit(story_request(), idempotency_key="expiring")
    live, _ = await store.submit(story_request())
    await store.cancel(job.id)
    deadline = time.monotonic() + 20
    while await store.find(job.id) is not None:
        assert time.monotonic() < deadline, "the finished job never expired"
        await asyncio.sleep(0.2)
    assert await gen_redis.exists(keys.events(job.id)) == 0
    assert await gen_redis.exists(keys.idempotency("expiring")) == 0
    listed, _ = await store.list_jobs(None, 20, "")
    assert [j.id for j in listed] == [live.id]  # the expired one is pruned from the index
    assert await store.find(live.id) is not None  # live jobs never expire
