"""The JobService's behaviour, without gRPC: submit, get, list, cancel, watch."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from services.common.logs import preview
from services.generator.events import Event, EventLog
from services.generator.jobs import Job, JobState, JobStore
from services.generator.metrics import GeneratorMetrics
from services.generator.validation import validate_idempotency_key, validate_request

log = logging.getLogger(__name__)


class JobService:
    def __init__(
        self,
        store: JobStore,
        events: EventLog,
        metrics: GeneratorMetrics,
        *,
        default_parts: int,
        default_style: str,
        delete_draft: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._delete_draft = delete_draft
        self._events = events
        self._metrics = metrics
        self._default_parts = default_parts
        self._default_style = default_style

    async def submit(self, prompt: str, parts: int, style: str, idempotency_key: str) -> tuple[Job, bool]:
        request = validate_request(
            prompt, parts, style, default_parts=self._default_parts, default_style=self._default_style
        )
        key = validate_idempotency_key(idempotency_key)
        job, created = await self._store.submit(request, idempotency_key=key)
        if created:
            self._metrics.jobs_submitted.inc()
            log.info("job %s queued: %d parts, prompt %r", job.id, job.parts, preview(job.prompt))
        return job, created

    async def get(self, job_id: str) -> Job:
        return await self._store.get(job_id)

    async def list_jobs(self, state: JobState | None, page_size: int, page_token: str) -> tuple[list[Job], str]:
        return await self._store.list_jobs(state, page_size, page_token)

    async def cancel(self, job_id: str) -> Job:
        job, ended_here = await self._store.cancel_with_outcome(job_id)
        if job.state is JobState.CANCELLED:
            self._metrics.jobs_finished.labels(JobState.CANCELLED.value).inc()
        if ended_here and job.story_id and self._delete_draft is not None:
            # A job waiting for a retry may hold a draft; no worker will see this job again.
            try:
                await self._delete_draft(job.story_id)
            except Exception as exc:  # best effort: the draft is unlisted either way
                log.info("could not delete draft %s of cancelled job %s: %s", job.story_id, job.id, exc)
        return job

    def watch(self, job_id: str, after_event_id: str) -> AsyncIterator[Event]:
        return self._events.follow(job_id, after_event_id)
