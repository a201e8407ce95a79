"""The gRPC face of the JobService: proto in, domain call, proto out. Nothing else happens here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from dreamforge.v1 import jobs_pb2, jobs_pb2_grpc, storage_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from services.generator import events
from services.generator.events import Event
from services.generator.jobs import Job, JobState
from services.generator.service import JobService

_STATE_TO_PROTO = {
    JobState.QUEUED: jobs_pb2.JOB_STATE_QUEUED,
    JobState.RUNNING: jobs_pb2.JOB_STATE_RUNNING,
    JobState.SUCCEEDED: jobs_pb2.JOB_STATE_SUCCEEDED,
    JobState.FAILED: jobs_pb2.JOB_STATE_FAILED,
    JobState.CANCELLED: jobs_pb2.JOB_STATE_CANCELLED,
}
_STATE_FROM_PROTO = {value: key for key, value in _STATE_TO_PROTO.items()}
_TEXT_FIELDS = {
    "story_title": jobs_pb2.TEXT_FIELD_STORY_TITLE,
    "part_title": jobs_pb2.TEXT_FIELD_PART_TITLE,
    "part_text": jobs_pb2.TEXT_FIELD_PART_TEXT,
}


def _timestamp(millis: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromMilliseconds(millis)
    return stamp


def job_to_proto(job: Job) -> jobs_pb2.Job:
    message = jobs_pb2.Job(
        job_id=job.id,
        state=_STATE_TO_PROTO[job.state],
        stage=job.stage,
        progress=job.progress,
        attempts=job.attempts,
        story_id=job.story_id,
        created_at=_timestamp(job.created_ms),
        updated_at=_timestamp(job.updated_ms),
        prompt=job.prompt,
        parts=job.parts,
        style=job.style,
    )
    if job.state in (JobState.FAILED, JobState.CANCELLED) or (job.error_code and job.state is JobState.QUEUED):
        message.error.CopyFrom(jobs_pb2.JobError(code=job.error_code, message=job.error_message))
    return message


def _asset(data: dict[str, Any]) -> storage_pb2.AssetRef:
    return storage_pb2.AssetRef(
        name=data["name"], cid=data["cid"], content_type=data["content_type"], size=int(data["size"])
    )


def event_to_proto(event: Event) -> jobs_pb2.JobEvent:
    message = jobs_pb2.JobEvent(event_id=event.id, time=_timestamp(event.time_ms))
    data = event.data
    if event.kind == events.PROGRESS:
        message.progress.CopyFrom(
            jobs_pb2.ProgressEvent(
                state=_STATE_TO_PROTO[JobState(data["state"])],
                stage=data.get("stage", ""),
                progress=int(data.get("progress", 0)),
                attempt=int(data.get("attempt", 0)),
                message=data.get("message", ""),
                restart=bool(data.get("restart", False)),
            )
        )
    elif event.kind == events.TEXT:
        message.text.CopyFrom(
            jobs_pb2.TextDeltaEvent(
                field=_TEXT_FIELDS.get(data["field"], jobs_pb2.TEXT_FIELD_UNSPECIFIED),
                part_index=int(data.get("part_index", 0)),
                delta=data["delta"],
            )
        )
    elif event.kind == events.PART:
        part = storage_pb2.StoryPart(
            index=int(data["index"]),
            title=data["title"],
            text=data["text"],
            illustration_prompt=data.get("illustration_prompt", ""),
            text_asset=_asset(data["text_asset"]),
        )
        message.part.CopyFrom(jobs_pb2.PartEvent(story_id=data["story_id"], part=part))
    elif event.kind == events.IMAGE:
        message.image.CopyFrom(
            jobs_pb2.ImageEvent(
                story_id=data["story_id"], part_index=int(data["part_index"]), image=_asset(data["image"])
            )
        )
    elif event.kind == events.DONE:
        message.done.CopyFrom(jobs_pb2.DoneEvent(story_id=data["story_id"], title=data.get("title", "")))
    elif event.kind == events.FAILED:
        message.failed.CopyFrom(
            jobs_pb2.FailedEvent(
                state=_STATE_TO_PROTO[JobState(data["state"])],
                error=jobs_pb2.JobError(code=data.get("code", ""), message=data.get("message", "")),
            )
        )
    return message


class JobServicer(jobs_pb2_grpc.JobServiceServicer):
    def __init__(self, service: JobService) -> None:
        self._service = service

    async def SubmitJob(
        self, request: jobs_pb2.SubmitJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> jobs_pb2.SubmitJobResponse:
        job, created = await self._service.submit(request.prompt, request.parts, request.style, request.idempotency_key)
        return jobs_pb2.SubmitJobResponse(job=job_to_proto(job), created=created)

    async def GetJob(
        self, request: jobs_pb2.GetJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> jobs_pb2.GetJobResponse:
        return jobs_pb2.GetJobResponse(job=job_to_proto(await self._service.get(request.job_id)))

    async def ListJobs(
        self, request: jobs_pb2.ListJobsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> jobs_pb2.ListJobsResponse:
        state = _STATE_FROM_PROTO.get(request.state)
        jobs, token = await self._service.list_jobs(state, request.page_size, request.page_token)
        return jobs_pb2.ListJobsResponse(jobs=[job_to_proto(job) for job in jobs], next_page_token=token)

    async def WatchJob(
        self, request: jobs_pb2.WatchJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[jobs_pb2.WatchJobResponse]:
        await self._service.get(request.job_id)  # NotFound / InvalidArgument before the stream starts
        async for event in self._service.watch(request.job_id, request.after_event_id):
            yield jobs_pb2.WatchJobResponse(event=event_to_proto(event))

    async def CancelJob(
        self, request: jobs_pb2.CancelJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> jobs_pb2.CancelJobResponse:
        return jobs_pb2.CancelJobResponse(job=job_to_proto(await self._service.cancel(request.job_id)))
