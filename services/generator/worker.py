"""The worker pool: `WORKERS` asyncio tasks per process taking jobs from the queue and running the pipeline.

Arq's habits: a try counter per job, bounded retries with backoff and jitter (a
retry waits in the delayed set, not in a sleeping worker), a result recorded on
every failure path and shielded from cancellation, a heartbeat key for
`--check`, burst mode for tests, and a drain on SIGTERM: stop taking jobs, let
running ones finish within the grace period, then hand the rest back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from services.common.logs import job_id_var, preview
from services.generator import events
from services.generator.backoff import backoff_delay
from services.generator.events import EventLog
from services.generator.failures import JobCancelled, classify
from services.generator.jobs import JobState
from services.generator.keys import Keys
from services.generator.metrics import GeneratorMetrics
from services.generator.pipeline import StoryPipeline
from services.generator.queue import Claim, JobQueue, LeaseLostError
from services.generator.storage_client import StorageClient

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_SECONDS = 5.0
HEARTBEAT_TTL_SECONDS = 30
IDLE_BLOCK_MS = 1000


@dataclass(frozen=True)
class WorkerOptions:
    workers: int = 2
    max_attempts: int = 4
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 300.0
    visibility_timeout_seconds: float = 60.0
    host: str = ""


class _Control:
    """The pipeline's handle on its job: cancel checks, progress, the draft's id."""

    def __init__(self, queue: JobQueue, log_: EventLog, claim: Claim) -> None:
        self._queue = queue
        self._events = log_
        self._claim = claim
        self.cancel_seen = False

    async def check_cancel(self) -> None:
        if self.cancel_seen or await self._queue.cancel_requested(self._claim.job.id):
            self.cancel_seen = True
            raise JobCancelled("cancelled by a client")

    async def report(self, stage: str, percent: int, message: str, *, restart: bool = False) -> None:
        await self._queue.set_progress(self._claim.job.id, {"stage": stage, "progress": str(percent)})
        data: dict[str, Any] = {
            "state": JobState.RUNNING.value,
            "stage": stage,
            "progress": percent,
            "attempt": self._claim.attempt,
            "message": message,
        }
        if restart:
            data["restart"] = True
        await self._events.append(self._claim.job.id, events.PROGRESS, data)

    async def set_story(self, story_id: str, title: str) -> None:
        await self._queue.set_progress(self._claim.job.id, {"story_id": story_id, "title": title})


@dataclass
class _Running:
    claim: Claim
    task: asyncio.Task[Any]
    handing_back: bool = False
    lease_lost: bool = False


class WorkerPool:
    def __init__(
        self,
        *,
        redis: Any,
        keys: Keys,
        queue: JobQueue,
        pipeline: StoryPipeline,
        events: EventLog,
        storage: StorageClient,
        metrics: GeneratorMetrics,
        options: WorkerOptions,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._queue = queue
        self._pipeline = pipeline
        self._events = events
        self._storage = storage
        self._metrics = metrics
        self._options = options
        self._host = options.host or socket.gethostname()
        self._stopping = False
        self._running: dict[str, _Running] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def running_jobs(self) -> list[str]:
        return list(self._running)

    async def start(self) -> None:
        """Start the worker tasks (and the process heartbeat) in the background."""
        await self._queue.ensure_group()
        self._heartbeat = asyncio.create_task(self._beat(), name="worker-heartbeat")
        for number in range(self._options.workers):
            self._loops.append(asyncio.create_task(self._loop(burst=False), name=f"worker-{number}"))

    async def run_burst(self) -> None:
        """Work until nothing is queued, delayed or running, then return (for tests and one-off runs)."""
        await self._queue.ensure_group()
        loops = [asyncio.create_task(self._loop(burst=True)) for _ in range(max(1, self._options.workers))]
        try:
            await asyncio.gather(*loops)
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    async def stop(self, grace: float) -> None:
        """Stop taking jobs; wait up to ``grace`` s for running ones, then hand the rest back to the queue."""
        self._stopping = True
        if self._running:
            log.info("draining: %d running job(s), up to %.0fs", len(self._running), grace)
            tasks = [running.task for running in self._running.values()]
            if grace > 0:
                await asyncio.wait(tasks, timeout=grace)
        for running in list(self._running.values()):
            if not running.task.done():
                running.handing_back = True
                running.task.cancel()
        if self._loops:
            await asyncio.gather(*self._loops, return_exceptions=True)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._redis.delete(self._keys.heartbeat(self._host))

    async def _beat(self) -> None:
        while not self._stopping:
            try:
                await self._redis.set(self._keys.heartbeat(self._host), str(time.time()), ex=HEARTBEAT_TTL_SECONDS)
                self._metrics.queue_depth.set(await self._redis.zcard(self._keys.by_state(JobState.QUEUED.value)))
            except Exception as exc:  # Redis down: keep trying; `--check` fails meanwhile, as it should
                log.warning("heartbeat failed: %s", exc)
            await asyncio.sleep(HEARTBEAT_INTERVAL_SECONDS)

    async def _loop(self, *, burst: bool) -> None:
        while not self._stopping:
            try:
                claim = await self._queue.next_job(IDLE_BLOCK_MS if not burst else 200)
            except Exception as exc:
                log.warning("could not read the queue (%s); retrying", exc)
                await asyncio.sleep(1.0)
                if "NOGROUP" in str(exc):
                    # Redis lost the stream (restarted without its data, or flushed): make the group again.
                    with contextlib.suppress(Exception):
                        await self._queue.ensure_group()
                continue
            if claim is None:
                if burst and not await self._queue.has_work():
                    return
                continue
            if self._stopping:
                await self._queue.hand_back(claim, _handed_back_event(claim))
                return
            await self._run(claim)

    async def _run(self, claim: Claim) -> None:
        token = job_id_var.set(claim.job.id)
        started = time.monotonic()
        self._metrics.running.inc()
        try:
            log.info(
                "job started: attempt %d%s, %d parts, prompt %r",
                claim.attempt,
                " (reclaimed)" if claim.reclaimed else "",
                claim.job.parts,
                preview(claim.job.prompt),
            )
            if claim.attempt > self._options.max_attempts:
                await self._fail(
                    claim,
                    "retries_exhausted",
                    f"the job was started {claim.attempt - 1} times without finishing (its workers stopped)",
                )
                return
            outcome = await self._attempt(claim)
            self._metrics.job_seconds.labels(outcome).observe(time.monotonic() - started)
            log.info("job %s after %.1fs (attempt %d)", outcome, time.monotonic() - started, claim.attempt)
        finally:
            self._metrics.running.dec()
            job_id_var.reset(token)

    async def _attempt(self, claim: Claim) -> str:
        control = _Control(self._queue, self._events, claim)
        task = asyncio.create_task(self._pipeline.run(claim.job, control, attempt=claim.attempt))
        running = _Running(claim=claim, task=task)
        self._running[claim.job.id] = running
        keeper = asyncio.create_task(self._keep(running, control))
        try:
            outcome = await asyncio.shield(task)
        except BaseException as exc:
            if not task.done():
                task.cancel()  # this worker itself is being cancelled: do not leave the pipeline running
            # A cancel can surface as a gRPC CANCELLED error from inside a storage call, so the
            # reason we stopped the task decides, not the exception's type.
            if running.lease_lost:
                log.warning("lost the job to another worker; stopping without recording")
                return "lost"
            if running.handing_back:
                await _shielded(self._queue.hand_back(claim, _handed_back_event(claim)))
                return "handed_back"
            if isinstance(exc, asyncio.CancelledError):
                raise
            if isinstance(exc, JobCancelled):
                await _shielded(self._end_cancelled(claim))
                return "cancelled"
            if not isinstance(exc, Exception):
                raise
            return str(await _shielded(self._after_failure(claim, exc)))
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            self._running.pop(claim.job.id, None)
        finished = await _shielded(
            self._queue.finish(
                claim,
                JobState.SUCCEEDED,
                event_kind=events.DONE,
                event_data={"story_id": outcome.story_id, "title": outcome.title},
                fields={
                    "stage": "done",
                    "progress": "100",
                    "story_id": outcome.story_id,
                    "title": outcome.title,
                    "error_code": "",
                    "error_message": "",
                },
            )
        )
        if finished:
            self._metrics.jobs_finished.labels(JobState.SUCCEEDED.value).inc()
        return "succeeded" if finished else "lost"

    async def _keep(self, running: _Running, control: _Control) -> None:
        """Renew the claim while the job runs; notice cancellation and a lost lease."""
        interval = max(0.2, self._options.visibility_timeout_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                if await self._queue.extend(running.claim):
                    control.cancel_seen = True
            except LeaseLostError:
                running.lease_lost = True
                running.task.cancel()
                return
            except Exception as exc:
                log.warning("could not renew the job's claim: %s", exc)

    async def _after_failure(self, claim: Claim, exc: BaseException) -> str:
        failure = classify(exc)
        if failure.transient and claim.attempt < self._options.max_attempts:
            delay = backoff_delay(
                claim.attempt,
                base=self._options.retry_base_seconds,
                cap=self._options.retry_max_seconds,
                retry_after=failure.retry_after,
            )
            log.info("attempt %d failed (%s: %s); retry in %.1fs", claim.attempt, failure.code, failure.message, delay)
            await self._queue.retry_later(
                claim,
                delay,
                {
                    "state": JobState.QUEUED.value,
                    "stage": "waiting_to_retry",
                    "progress": 0,
                    "attempt": claim.attempt,
                    "message": f"Attempt {claim.attempt} failed ({failure.message}); trying again in {delay:.0f}s",
                },
                {"stage": "waiting_to_retry", "error_code": failure.code, "error_message": failure.message},
            )
            self._metrics.job_retries.labels(failure.code).inc()
            return "retrying"
        if failure.transient:
            await self._fail(
                claim,
                "retries_exhausted",
                f"gave up after {claim.attempt} attempts; last error: {failure.message}",
            )
        else:
            if failure.code == "internal":
                log.error("job crashed", exc_info=exc)
            await self._fail(claim, failure.code, failure.message)
        return "failed"

    async def _fail(self, claim: Claim, code: str, message: str) -> None:
        log.info("job failed: %s: %s", code, message)
        finished = await self._queue.finish(
            claim,
            JobState.FAILED,
            event_kind=events.FAILED,
            event_data={"state": JobState.FAILED.value, "code": code, "message": message},
            fields={"stage": "failed", "error_code": code, "error_message": message},
        )
        if finished:
            self._metrics.jobs_finished.labels(JobState.FAILED.value).inc()
            await self._discard_draft(claim)

    async def _end_cancelled(self, claim: Claim) -> None:
        message = "cancelled by a client"
        finished = await self._queue.finish(
            claim,
            JobState.CANCELLED,
            event_kind=events.FAILED,
            event_data={"state": JobState.CANCELLED.value, "code": "cancelled", "message": message},
            fields={"stage": "cancelled", "error_code": "cancelled", "error_message": message},
        )
        if finished:
            self._metrics.jobs_finished.labels(JobState.CANCELLED.value).inc()
            await self._discard_draft(claim)

    async def _discard_draft(self, claim: Claim) -> None:
        """A job that ends without a story leaves no draft behind (best effort: storage may be the problem)."""
        story_id = str(await self._redis.hget(self._keys.job(claim.job.id), "story_id") or "")
        if not story_id:
            return
        try:
            await self._storage.delete_story(story_id)
        except Exception as exc:
            log.info("could not delete draft %s: %s", story_id, exc)


def _handed_back_event(claim: Claim) -> dict[str, object]:
    return {
        "state": JobState.QUEUED.value,
        "stage": "queued",
        "progress": 0,
        "attempt": claim.attempt,
        "message": "The worker is shutting down; the job is back in the queue",
    }


async def _shielded(awaitable: Awaitable[Any]) -> Any:
    """Finish recording a result even when the worker itself is being cancelled."""
    return await asyncio.shield(asyncio.ensure_future(awaitable))
