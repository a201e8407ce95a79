"""Server-Sent Events: framing, and re-emitting a job's gRPC event stream with ids and heartbeats."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
from dreamforge.v1 import jobs_pb2

from services.gateway.convert import event_json

log = logging.getLogger(__name__)

SSE_HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    # Tell nginx-style proxies not to buffer the stream.
    "X-Accel-Buffering": "no",
}
MEDIA_TYPE = "text/event-stream"
HEARTBEAT = b": heartbeat\n\n"
FINAL_EVENTS = frozenset({"done", "failed"})


def frame(event: str, data: Any, event_id: str | None = None) -> bytes:
    """One SSE message. JSON never contains a raw newline, so ``data`` is always a single line."""
    lines = []
    if event_id:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event}")
    lines.append(f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}")
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def retry_frame(milliseconds: int) -> bytes:
    return f"retry: {milliseconds}\n\n".encode()


class _End:
    """Marks the end of the gRPC stream in the queue."""


async def job_events(
    call: grpc.aio.UnaryStreamCall[jobs_pb2.WatchJobRequest, jobs_pb2.WatchJobResponse],
    *,
    heartbeat: float,
    max_duration: float,
    retry_ms: int,
) -> AsyncIterator[bytes]:
    """SSE bytes for a WatchJob call: one message per event, heartbeats while idle, cancelled when abandoned.

    The stream ends after ``done``/``failed``, when the backend stream ends or breaks, or after
    ``max_duration``; a browser then reconnects with ``Last-Event-ID`` and misses nothing.
    """
    queue: asyncio.Queue[jobs_pb2.JobEvent | BaseException | _End] = asyncio.Queue(maxsize=256)

    async def pump() -> None:
        # Reading in a task of its own lets a heartbeat time out on the queue, never on the gRPC read.
        try:
            async for response in call:
                await queue.put(response.event)
            await queue.put(_End())
        except grpc.aio.AioRpcError as exc:
            await queue.put(exc)

    reader = asyncio.create_task(pump())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_duration
    try:
        yield retry_frame(retry_ms)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                yield b": stream time limit reached; reconnect with Last-Event-ID\n\n"
                return
            try:
                item = await asyncio.wait_for(queue.get(), timeout=min(heartbeat, remaining))
            except asyncio.TimeoutError:
                yield HEARTBEAT
                continue
            if isinstance(item, _End):
                return
            if isinstance(item, grpc.aio.AioRpcError):
                log.info("job event stream broke: %s %s", item.code().name, item.details())
                yield b": the event source is unavailable; reconnect with Last-Event-ID\n\n"
                return
            if isinstance(item, BaseException):
                raise item
            kind, data = event_json(item)
            yield frame(kind, data, item.event_id or None)
            if kind in FINAL_EVENTS:
                return
    finally:
        call.cancel()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await reader
