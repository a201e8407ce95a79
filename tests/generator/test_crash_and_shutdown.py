"""Real worker processes: killed with SIGKILL mid-job (another resumes from the checkpoint), drained on SIGTERM,
and checked by `--check`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from dreamforge.v1 import jobs_pb2, jobs_pb2_grpc, storage_pb2_grpc

from services.common.grpc_client import open_channel
from services.generator.jobs import JobState, JobStore
from services.generator.keys import Keys
from tests.fakes.openai_server import IMAGES, FakeOpenAI
from tests.generator.conftest import FINAL_STATES, committed_story_ids, story_request, wait_for_job
from tests.support.generator import ROOT, generator_process, running_generator, start_generator_process


def _openai_env(fake: FakeOpenAI, **extra: str) -> dict[str, str]:
    return {
        "TEXT_ENGINE": "openai",
        "IMAGE_ENGINE": "openai",
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": fake.base_url,
        "IMAGE_CONCURRENCY": "1",
        "WORKERS": "1",
        **extra,
    }


async def _wait_for(condition: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_a_worker_killed_mid_job_is_replaced_and_stored_pictures_are_not_drawn_again(
    tmp_path: Path,
    redis_url: str,
    storage: Any,
    storage_stub: storage_pb2_grpc.StorageServiceAsyncStub,
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.image_delay_seconds = 1.5
    env = _openai_env(fake_openai, JOB_VISIBILITY_TIMEOUT_SECONDS="2")
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    keys = Keys()
    store = JobStore(redis, keys, retention_seconds=3600)
    doomed = start_generator_process(tmp_path, redis_url, storage.address, args=("worker",), env=env, name="doomed")
    rescuer = None
    try:
        job, _ = await store.submit(story_request("a bear who finds honey", parts=3))

        async def first_picture_stored() -> bool:
            return bool(await redis.hexists(keys.checkpoint(job.id), "asset:image_0"))

        await _wait_for(first_picture_stored, "the first picture to be stored")
        doomed.process.send_signal(signal.SIGKILL)
        await doomed.wait(10)
        assert (await store.get(job.id)).state is JobState.RUNNING  # nobody recorded anything

        rescuer = start_generator_process(
            tmp_path, redis_url, storage.address, args=("worker",), env=env, name="rescuer"
        )

        async def finished() -> bool:
            return (await store.get(job.id)).state.finished

        await _wait_for(finished, "the rescuer to finish the job", timeout=90)
        done = await store.get(job.id)
        assert done.state is JobState.SUCCEEDED, rescuer.log()[-2000:]
        assert done.attempts == 2
        assert "reclaimed" in rescuer.log()
        # The picture stored before the crash was not requested again; the story is committed once.
        first_scene_requests = [p for p in fake_openai.image_prompts() if "scene 1," in p]
        assert len(first_scene_requests) == 1
        assert await committed_story_ids(storage_stub) == [done.story_id]
    finally:
        for handle in (doomed, rescuer):
            if handle is not None:
                handle.stop()
        await redis.aclose()


async def test_sigterm_hands_a_running_job_back_when_the_grace_period_is_too_short(
    tmp_path: Path, redis_url: str, storage: Any, fake_openai: FakeOpenAI
) -> None:
    fake_openai.image_delay_seconds = 3.0
    env = _openai_env(fake_openai, SHUTDOWN_GRACE_SECONDS="0.5")
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    store = JobStore(redis, Keys(), retention_seconds=3600)
    worker = start_generator_process(tmp_path, redis_url, storage.address, args=("worker",), env=env)
    try:
        job, _ = await store.submit(story_request(parts=1))

        async def drawing() -> bool:
            return fake_openai.count(IMAGES, status=None) > 0 or (await store.get(job.id)).stage == "illustrating"

        await _wait_for(drawing, "the worker to start drawing")
        worker.process.send_signal(signal.SIGTERM)
        assert await worker.wait(30) == 0, worker.log()[-2000:]
        back = await store.get(job.id)
        assert back.state is JobState.QUEUED and back.attempts == 0, worker.log()[-2000:]
    finally:
        worker.stop()
    fake_openai.image_delay_seconds = 0
    async with (
        running_generator(tmp_path, redis_url, storage.address, **_in_process(fake_openai)) as gen,
        open_channel(gen.address) as channel,
    ):
        done = await wait_for_job(jobs_pb2_grpc.JobServiceStub(channel), job.id, FINAL_STATES)
    assert done.state == jobs_pb2.JOB_STATE_SUCCEEDED and done.attempts == 1
    await redis.aclose()


async def test_sigterm_lets_a_running_job_finish_within_the_grace_period(
    tmp_path: Path, redis_url: str, storage: Any, fake_openai: FakeOpenAI
) -> None:
    fake_openai.image_delay_seconds = 1.0
    env = _openai_env(fake_openai, SHUTDOWN_GRACE_SECONDS="60")
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    store = JobStore(redis, Keys(), retention_seconds=3600)
    worker = start_generator_process(tmp_path, redis_url, storage.address, args=("worker",), env=env)
    try:
        job, _ = await store.submit(story_request(parts=2))
        second, _ = await store.submit(story_request("not taken", parts=1))

        async def running() -> bool:
            return (await store.get(job.id)).state is JobState.RUNNING

        await _wait_for(running, "the worker to take the job")
        worker.process.send_signal(signal.SIGTERM)
        assert await worker.wait(60) == 0, worker.log()[-2000:]
        assert (await store.get(job.id)).state is JobState.SUCCEEDED
        assert (await store.get(second.id)).state is JobState.QUEUED  # no new job taken while draining
    finally:
        worker.stop()
        await redis.aclose()


async def test_check_says_whether_a_worker_on_this_host_is_alive(tmp_path: Path, redis_url: str, storage: Any) -> None:
    def check() -> int:
        environment = {**os.environ, "REDIS_URL": redis_url}
        command = [sys.executable, "-m", "services.generator", "--check"]
        return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, timeout=60).returncode

    assert check() == 1
    worker = start_generator_process(tmp_path, redis_url, storage.address, args=("worker",))
    try:
        deadline = time.monotonic() + 60
        while check() != 0:
            assert time.monotonic() < deadline, worker.log()[-2000:]
            await asyncio.sleep(0.2)
    finally:
        assert worker.stop() == 0
    assert check() == 1  # a clean stop removes the heartbeat


def _in_process(fake: FakeOpenAI) -> dict[str, Any]:
    from services.common.config import Secret

    return {
        "text_engine": "openai",
        "image_engine": "openai",
        "openai_api_key": Secret("test-key"),
        "openai_base_url": fake.base_url,
    }


async def test_burst_mode_works_until_the_queue_is_empty_then_exits(
    tmp_path: Path, redis_url: str, storage: Any, storage_stub: storage_pb2_grpc.StorageServiceAsyncStub
) -> None:
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    store = JobStore(redis, Keys(), retention_seconds=3600)
    try:
        jobs = [(await store.submit(story_request(f"tale {n}", parts=1)))[0] for n in range(3)]
        burst = start_generator_process(tmp_path, redis_url, storage.address, args=("--burst",), name="burst")
        assert await burst.wait(120) == 0, burst.log()[-2000:]
        states = [(await store.get(job.id)).state for job in jobs]
        assert states == [JobState.SUCCEEDED] * 3
        assert len(await committed_story_ids(storage_stub)) == 3
    finally:
        await redis.aclose()


async def test_a_generator_process_serves_the_api_once_redis_and_storage_answer(
    tmp_path: Path, redis_url: str, storage: Any
) -> None:
    async with (
        generator_process(tmp_path, redis_url, storage.address) as process,
        open_channel(process.address) as channel,
    ):
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        job = (await stub.SubmitJob(jobs_pb2.SubmitJobRequest(prompt="a heron", parts=1))).job
        done = await wait_for_job(stub, job.job_id, FINAL_STATES)
        assert done.state == jobs_pb2.JOB_STATE_SUCCEEDED
    assert "configuration:" in process.log() and "openai_api_key=(not set)" in process.log()
