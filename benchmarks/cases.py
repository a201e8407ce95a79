"""The benchmarks: each starts what it measures (real servers, a real Redis) and returns its results."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dreamforge.v1 import jobs_pb2, jobs_pb2_grpc, storage_pb2, storage_pb2_grpc

from services.common.grpc_client import open_channel
from services.generator.engines.base import ImageRequest, TextRequest
from services.generator.engines.offline_image import draw_picture
from services.generator.engines.offline_text import compose_story
from services.generator.pipeline import image_prompt
from tests.support.generator import running_generator
from tests.support.storage import get_asset, make_story, put_asset, running_storage, storage_process


@dataclass(frozen=True)
class Result:
    name: str
    value: float
    unit: str
    # The value must stay at or below (`max`) or at or above (`min`) the target; None reports only.
    target: float | None = None
    direction: str = "max"

    @property
    def passed(self) -> bool:
        if self.target is None:
            return True
        return self.value <= self.target if self.direction == "max" else self.value >= self.target

    @property
    def target_text(self) -> str:
        if self.target is None:
            return "(report)"
        return f"{'<=' if self.direction == 'max' else '>='} {self.target:g} {self.unit}"

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "target": self.target,
            "direction": self.direction,
            "passed": self.passed,
        }


Case = Callable[[Path, str], Coroutine[Any, Any, list[Result]]]

INDEX_STORIES = 1000
INDEX_BUCKET = 200


async def index_scaling(workdir: Path, redis_url: str) -> list[Result]:
    """Commit cost must not grow with the number of stories; a page must not cost a read of every story."""
    commit_ms: list[float] = []
    async with running_storage(workdir, redis_url) as storage:
        stub = storage.stub
        for n in range(INDEX_STORIES):
            created = await stub.CreateStory(storage_pb2.CreateStoryRequest(title=f"Story {n}"))
            text = f"part of story {n}".encode()
            ref = await put_asset(stub, created.story_id, "text_0", text, "text/plain; charset=utf-8")
            manifest = storage_pb2.StoryManifest(title=f"Story {n}", prompt="bench", style="Pencil and Ink")
            manifest.parts.append(storage_pb2.StoryPart(index=0, title="One", text=text.decode(), text_asset=ref))
            started = time.perf_counter()
            await stub.CommitStory(storage_pb2.CommitStoryRequest(story_id=created.story_id, manifest=manifest))
            commit_ms.append((time.perf_counter() - started) * 1000)
        page_ms = await _timed(lambda: stub.ListStories(storage_pb2.ListStoriesRequest(page_size=20)), 50)
        search_ms = await _timed(
            lambda: stub.ListStories(storage_pb2.ListStoriesRequest(page_size=20, query="story 99")), 50
        )
    buckets = [commit_ms[i : i + INDEX_BUCKET] for i in range(0, INDEX_STORIES, INDEX_BUCKET)]
    first, last = statistics.median(buckets[0]), statistics.median(buckets[-1])
    return [
        Result(f"commit p50, stories 1-{INDEX_BUCKET}", first, "ms"),
        Result(f"commit p50, stories {INDEX_STORIES - INDEX_BUCKET + 1}-{INDEX_STORIES}", last, "ms"),
        # Flat cost: a small fixed slack absorbs noise when both are a few milliseconds.
        Result("commit cost growth (last/first p50)", (last + 1.0) / (first + 1.0), "x", 2.0),
        Result(f"list page p50 ({INDEX_STORIES} stories)", statistics.median(page_ms), "ms", 25.0),
        Result(f"title search p50 ({INDEX_STORIES} stories)", statistics.median(search_ms), "ms", 25.0),
    ]


async def _timed(call: Callable[[], Awaitable[object]], times: int) -> list[float]:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def offline_story(workdir: Path, redis_url: str) -> list[Result]:
    """The offline engines write and draw a 3-part story in well under a second on one core."""
    durations = []
    for round_ in range(7):
        request = TextRequest(
            prompt=f"a bear who finds a mine full of honey #{round_}", parts=3, style="Pencil and Ink", seed=round_
        )
        started = time.perf_counter()
        story = compose_story(request)
        for part in story.parts:
            draw_picture(
                ImageRequest(
                    prompt=image_prompt(request.style, story.characters, part.illustration_prompt),
                    scene=part.illustration_prompt,
                    part_index=part.index,
                    parts=len(story.parts),
                    part_title=part.title,
                    style=request.style,
                    seed=request.seed,
                    characters=story.characters,
                )
            )
        durations.append(time.perf_counter() - started)
    return [Result("offline 3-part story with pictures, p50", statistics.median(durations), "s", 1.0)]


END_TO_END_JOBS = 20


async def end_to_end(workdir: Path, redis_url: str) -> list[Result]:
    """Jobs through the real queue, workers, pipeline and storage (offline engines, 2 workers)."""
    async with (
        running_storage(workdir / "storage", redis_url) as storage,
        running_generator(workdir / "generator", redis_url, storage.address, workers=2) as generator,
        open_channel(generator.address) as channel,
    ):
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        submit_ms = []
        started = time.perf_counter()
        job_ids = []
        for n in range(END_TO_END_JOBS):
            t0 = time.perf_counter()
            reply = await stub.SubmitJob(jobs_pb2.SubmitJobRequest(prompt=f"a fox who learns to sing, verse {n}"))
            submit_ms.append((time.perf_counter() - t0) * 1000)
            job_ids.append(reply.job.job_id)
        pending = set(job_ids)
        while pending:
            for job_id in list(pending):
                job = (await stub.GetJob(jobs_pb2.GetJobRequest(job_id=job_id))).job
                if job.state == jobs_pb2.JOB_STATE_SUCCEEDED:
                    pending.discard(job_id)
                elif job.state in (jobs_pb2.JOB_STATE_FAILED, jobs_pb2.JOB_STATE_CANCELLED):
                    raise RuntimeError(f"benchmark job {job_id} ended {job.state}: {job.error.message}")
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
    return [
        Result("submit latency p50", statistics.median(submit_ms), "ms", 50.0),
        Result(
            f"stories per minute ({END_TO_END_JOBS} jobs, 2 workers)", END_TO_END_JOBS * 60 / elapsed, "/m", 20.0, "min"
        ),
    ]


ASSET_BYTES = 20 * 1024 * 1024


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")


async def asset_memory(workdir: Path, redis_url: str) -> list[Result]:
    """A 20 MB picture in and out of the storage process without holding it all in memory."""
    payload = bytes(range(256)) * (ASSET_BYTES // 256)
    async with storage_process(workdir, redis_url) as process, open_channel(process.address) as channel:
        stub = storage_pb2_grpc.StorageServiceStub(channel)
        await make_story(stub, "warm-up", parts=1)  # imports and first-call allocations happen before the baseline
        baseline = _peak_rss_mb(process.process.pid)
        created = await stub.CreateStory(storage_pb2.CreateStoryRequest(title="Big picture"))
        started = time.perf_counter()
        await put_asset(stub, created.story_id, "image_0", payload, "image/png")
        put_seconds = time.perf_counter() - started
        started = time.perf_counter()
        _, data = await get_asset(stub, created.story_id, "image_0")
        get_seconds = time.perf_counter() - started
        assert data == payload
        growth = _peak_rss_mb(process.process.pid) - baseline
    return [
        Result("20 MB PutAsset", put_seconds, "s", 5.0),
        Result("20 MB GetAsset", get_seconds, "s", 5.0),
        # Less than the asset itself: the service streams through a spooled file, never the whole picture.
        Result("storage peak memory growth for 20 MB", growth, "MB", 24.0),
    ]


CASES: dict[str, Case] = {
    "index": index_scaling,
    "offline": offline_story,
    "e2e": end_to_end,
    "memory": asset_memory,
}
