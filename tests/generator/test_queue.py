"""The worker side of the queue against a real Redis: claim, renew, reclaim, retry later, hand back, dead letters."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from services.generator import events
from services.generator.jobs import JobState, JobStore
from services.generator.keys import WORKER_GROUP, Keys
from services.generator.queue import Claim, JobQueue, LeaseLostError
from tests.generator.conftest import make_queue, story_request


async def _claim(queue: JobQueue, timeout: float = 10.0) -> Claim:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        claim = await queue.next_job(block_ms=100)
        if claim is not None:
            return claim
    raise AssertionError("no job was claimed")


async def test_a_claimed_job_is_running_on_its_first_attempt(store: JobStore, gen_redis: Any) -> None:
    job, _ = await store.submit(story_request())
    queue = make_queue(gen_redis, store, "w1")
    await queue.ensure_group()
    claim = await _claim(queue)
    assert claim.job.id == job.id and claim.attempt == 1 and not claim.reclaimed
    running = await store.get(job.id)
    assert running.state is JobState.RUNNING and running.attempts == 1


async def test_a_held_job_is_not_given_to_another_worker(store: JobStore, gen_redis: Any) -> None:
    await store.submit(story_request())
    first, second = make_queue(gen_redis, store, "w1"), make_queue(gen_redis, store, "w2")
    await first.ensure_group()
    await _claim(first)
    assert await second.next_job(block_ms=100) is None


async def test_renewing_a_claim_resets_its_idle_time(store: JobStore, gen_redis: Any, keys: Keys) -> None:
    await store.submit(story_request())
    queue = make_queue(gen_redis, store, "w1")
    await queue.ensure_group()
    claim = await _claim(queue)
    await asyncio.sleep(0.6)
    before = (await gen_redis.xpending_range(keys.stream, WORKER_GROUP, "-", "+", 1))[0]["time_since_delivered"]
    await queue.extend(claim)
    after = (await gen_redis.xpending_range(keys.stream, WORKER_GROUP, "-", "+", 1))[0]["time_since_delivered"]
    assert before >= 600 and after < before


async def test_a_job_whose_worker_stopped_renewing_is_reclaimed_and_the_old_worker_learns_it(
    store: JobStore, gen_redis: Any
) -> None:
    job, _ = await store.submit(story_request())
    crashed = make_queue(gen_redis, store, "crashed", visibility=0.3)
    rescuer = make_queue(gen_redis, store, "rescuer", visibility=0.3)
    await crashed.ensure_group()
    old = await _claim(crashed)
    new = await _claim(rescuer)
    assert new.job.id == job.id and new.reclaimed and new.attempt == 2
    with pytest.raises(LeaseLostError):
        await crashed.extend(old)
    finished = await crashed.finish(old, JobState.SUCCEEDED, event_kind=events.DONE, event_data={}, fields={})
    assert finished is False


async def test_a_retry_waits_in_the_delayed_set_then_returns_to_the_stream(
    store: JobStore, gen_redis: Any, keys: Keys
) -> None:
    job, _ = await store.submit(story_request())
    queue = make_queue(gen_redis, store, "w1")
    await queue.ensure_group()
    claim = await _claim(queue)
    await queue.retry_later(claim, 3600, {"state": "queued", "message": "later"}, {"error_code": "rate_limited"})
    waiting = await store.get(job.id)
    assert waiting.state is JobState.QUEUED and waiting.error_code == "rate_limited"
    assert await gen_redis.zscore(keys.delayed, job.id) is not None
    assert await gen_redis.xlen(keys.stream) == 0
    assert await queue.next_job(block_ms=100) is None  # not due yet
    await gen_redis.zadd(keys.delayed, {job.id: 0})  # make it due now
    again = await _claim(queue)
    assert again.job.id == job.id and again.attempt == 2


async def test_a_handed_back_job_is_queued_again_without_spending_an_attempt(store: JobStore, gen_redis: Any) -> None:
    job, _ = await store.submit(story_request())
    leaving, staying = make_queue(gen_redis, store, "leaving"), make_queue(gen_redis, store, "staying")
    await leaving.ensure_group()
    claim = await _claim(leaving)
    assert await leaving.hand_back(claim, {"state": "queued", "message": "bye"})
    assert (await store.get(job.id)).state is JobState.QUEUED
    taken = await _claim(staying)
    assert taken.job.id == job.id and taken.attempt == 1 and not taken.reclaimed


async def test_a_failed_job_is_a_dead_letter_and_listed_as_failed(store: JobStore, gen_redis: Any, keys: Keys) -> None:
    job, _ = await store.submit(story_request())
    queue = make_queue(gen_redis, store, "w1")
    await queue.ensure_group()
    claim = await _claim(queue)
    finished = await queue.finish(
        claim,
        JobState.FAILED,
        event_kind=events.FAILED,
        event_data={"state": "failed", "code": "content_policy", "message": "refused"},
        fields={"error_code": "content_policy", "error_message": "refused", "stage": "failed"},
    )
    assert finished
    failed = await store.get(job.id)
    assert failed.state is JobState.FAILED and failed.error_message == "refused"
    assert await store.dead_letters() == [job.id]
    listed, _ = await store.list_jobs(JobState.FAILED, 10, "")
    assert [j.id for j in listed] == [job.id]
    assert await gen_redis.xlen(keys.stream) == 0
    assert 0 < await gen_redis.ttl(keys.job(job.id)) <= 3600
