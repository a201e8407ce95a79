"""Whole jobs through the real storage service with the offline engines: stories, events, cancel, watch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dreamforge.v1 import jobs_pb2, jobs_pb2_grpc, storage_pb2, storage_pb2_grpc

from services.common.grpc_client import open_channel
from services.generator.images import image_type
from services.generator.keys import Keys
from tests.fakes.openai_server import FakeOpenAI
from tests.generator.conftest import FINAL_STATES, committed_story_ids, read_asset, wait_for_job, watch_all
from tests.support.generator import running_generator

SUCCEEDED = {jobs_pb2.JOB_STATE_SUCCEEDED}


async def test_with_no_configuration_an_offline_story_is_committed(
    tmp_path: Path, redis_url: str, storage: Any, storage_stub: storage_pb2_grpc.StorageServiceAsyncStub
) -> None:
    async with running_generator(tmp_path, redis_url, storage.address) as gen, open_channel(gen.address) as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        job = (await stub.SubmitJob(jobs_pb2.SubmitJobRequest(prompt="a bear who finds honey", parts=3))).job
        events = await watch_all(stub, job.job_id)
        done = await wait_for_job(stub, job.job_id, SUCCEEDED)
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds[-1] == "done" and kinds.count("part") == 3 and kinds.count("image") == 3
    assert "text" in kinds
    assert done.story_id == events[-1].done.story_id and done.progress == 100 and done.attempts == 1
    manifest = (await storage_stub.GetStory(storage_pb2.GetStoryRequest(story_id=done.story_id))).manifest
    assert manifest.generation.offline and manifest.generation.text_engine == "offline"
    assert manifest.generation.image_engine == "offline" and manifest.generation.job_id == job.job_id
    assert set(manifest.generation.timings_seconds) == {"text", "image_0", "image_1", "image_2"}
    assert [p.text_asset.name for p in manifest.parts] == ["text_0", "text_1", "text_2"]
    assert [p.image_asset.name for p in manifest.parts] == ["image_0", "image_1", "image_2"]
    assert "bear" in manifest.title and manifest.style == "Pencil and Ink"
    picture = await read_asset(storage_stub, done.story_id, "image_1")
    assert image_type(picture) == "image/png"
    text = await read_asset(storage_stub, done.story_id, "text_0")
    assert text.decode() == manifest.parts[0].text
    assert await committed_story_ids(storage_stub) == [done.story_id]


async def test_every_part_event_comes_before_its_image_and_text_deltas_spell_the_parts(
    tmp_path: Path, redis_url: str, storage: Any
) -> None:
    async with running_generator(tmp_path, redis_url, storage.address) as gen, open_channel(gen.address) as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        job = (await stub.SubmitJob(jobs_pb2.SubmitJobRequest(prompt="an owl who cannot sleep", parts=2))).job
        events = await watch_all(stub, job.job_id)
    position = {(e.WhichOneof("payload"), _index(e)): n for n, e in enumerate(events)}
    for index in range(2):
        assert position[("part", index)] < position[("image", index)]
    parts = {e.part.part.index: e.part.part for e in events if e.WhichOneof("payload") == "part"}
    for index, part in parts.items():
        spelled = "".join(
            e.text.delta
            for e in events
            if e.WhichOneof("payload") == "text"
            and e.text.field == jobs_pb2.TEXT_FIELD_PART_TEXT
            and e.text.part_index == index
        )
        assert spelled.strip() == part.text


def _index(event: jobs_pb2.JobEvent) -> int:
    kind = event.WhichOneof("payload")
    if kind == "part":
        return event.part.part.index
    if kind == "image":
        return event.image.part_index
    return -1


async def test_the_same_idempotency_key_makes_one_story(
    tmp_path: Path, redis_url: str, storage: Any, storage_stub: storage_pb2_grpc.StorageServiceAsyncStub
) -> None:
    async with running_generator(tmp_path, redis_url, storage.address) as gen, open_channel(gen.address) as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        request = jobs_pb2.SubmitJobRequest(prompt="a fox", parts=1, idempotency_key="same")
        first = (await stub.SubmitJob(request)).job
        await wait_for_job(stub, first.job_id, SUCCEEDED)
        again = await stub.SubmitJob(request)
        assert not again.created and again.job.state == jobs_pb2.JOB_STATE_SUCCEEDED
    assert len(await committed_story_ids(storage_stub)) == 1


async def test_text_only_stories_have_no_pictures(
    tmp_path: Path, redis_url: str, storage: Any, storage_stub: storage_pb2_grpc.StorageServiceAsyncStub
) -> None:
    async with (
        running_generator(tmp_path, redis_url, storage.address, image_engine="none") as gen,
        open_channel(gen.address) as channel,
    ):
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        job = (await stub.SubmitJob(jobs_pb2.SubmitJobRequest(prompt="a quiet lake", parts=2))).job
        events = await watch_all(stub, job.job_id)
        done = await wait_for_job(stub, job.job_id, SUCCEEDED)
    assert not [e for e in events if e.WhichOneof("payload") == "image"]
    manifest = (await storage_stub.GetStory(storage_pb2.GetStoryRequest(story_id=done.story_id))).manifest
    assert manifest.generation.image_engine == "none"
    assert all(not part.HasField("image_asset") for part in manifest.parts)


async def test_watching_from_the_middle_and_after_the_end_misses_nothing(
    tmp_path: Path, redis_url: str, storage: Any
) -> None:
    async with running_generator(tmp_path, redis_url, storage.address) as gen, open_channel(gen.address) as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        job = (await stub.SubmitJob(jobs_pb2.SubmitJobRequest(prompt="a dragon in space", parts=3))).job
        live = await watch_all(stub, job.job_id)  # connected right after submit, follows live
        await wait_for_job(stub, job.job_id, FINAL_STATES)
        later = await watch_all(stub, job.job_id)  # after completion: the whole replay
        middle = live[len(live) // 2].event_id
        resumed = await watch_all(stub, job.job_id, after=middle)
    assert [e.event_id for e in later] == [e.event_id for e in live]
    assert [e.event_id for e in resumed] == [e.event_id for e in live[len(live) // 2 + 1 :]]
    assert resumed[-1].WhichOneof("payload") == "done"


async def test_a_running_job_is_cancelled_at_the_next_step_and_leaves_no_story(
    tmp_path: Path,
    redis_url: str,
    storage: Any,
    storage_stub: storage_pb2_grpc.StorageServiceAsyncStub,
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.chat_chunk_delay_seconds = 0.05  # a slow writer: the cancel lands while parts are being written
    async with (
        running_generator(
            tmp_path, redis_url, storage.address, **_openai_text(fake_openai), image_engine="offline"
        ) as gen,
        open_channel(gen.address) as channel,
    ):
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        job = (await stub.SubmitJob(jobs_pb2.SubmitJobRequest(prompt="a long tale", parts=4))).job
        async for reply in stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job.job_id), timeout=60):
            if reply.event.WhichOneof("payload") == "part":
                break  # the draft exists and a part is stored
        asked = (await stub.CancelJob(jobs_pb2.CancelJobRequest(job_id=job.job_id))).job
        assert asked.state in (jobs_pb2.JOB_STATE_RUNNING, jobs_pb2.JOB_STATE_CANCELLED)
        ended = await wait_for_job(stub, job.job_id, FINAL_STATES)
        events = await watch_all(stub, job.job_id)
    assert ended.state == jobs_pb2.JOB_STATE_CANCELLED and ended.error.code == "cancelled"
    assert events[-1].failed.state == jobs_pb2.JOB_STATE_CANCELLED
    assert await committed_story_ids(storage_stub) == []


def _openai_text(fake: FakeOpenAI) -> dict[str, Any]:
    from services.common.config import Secret

    return {"text_engine": "openai", "openai_api_key": Secret("test-key"), "openai_base_url": fake.base_url}


async def test_workers_recover_when_redis_loses_the_job_stream(tmp_path: Path, redis_url: str, storage: Any) -> None:
    async with running_generator(tmp_path, redis_url, storage.address) as gen, open_channel(gen.address) as channel:
        await gen.redis.delete(Keys(gen.settings.redis_prefix).stream)  # the stream and its consumer group
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        job = (await stub.SubmitJob(jobs_pb2.SubmitJobRequest(prompt="a phoenix", parts=1))).job
        done = await wait_for_job(stub, job.job_id, FINAL_STATES)
    assert done.state == jobs_pb2.JOB_STATE_SUCCEEDED
