"""Opening gRPC channels the same way everywhere: request ids travel, unary calls get a deadline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.grpc_server import JOB_ID_HEADER, MAX_MESSAGE_BYTES, REQUEST_ID_HEADER
from services.common.logs import job_id_var, request_id_var

CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    # Fail fast when a backend is down instead of waiting for it to come back.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]


def _with_context(details: grpc.aio.ClientCallDetails, default_timeout: float | None) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    request_id = request_id_var.get()
    if request_id and REQUEST_ID_HEADER not in metadata:
        metadata.add(REQUEST_ID_HEADER, request_id)
    job_id = job_id_var.get()
    if job_id and JOB_ID_HEADER not in metadata:
        metadata.add(JOB_ID_HEADER, job_id)
    timeout = details.timeout if details.timeout is not None else default_timeout
    return grpc.aio.ClientCallDetails(
        method=details.method,
        timeout=timeout,
        metadata=metadata,
        credentials=details.credentials,
        wait_for_ready=details.wait_for_ready,
    )


class _UnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, default_timeout: float) -> None:
        self._timeout = default_timeout

    async def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return await continuation(_with_context(details, self._timeout), request)


class _StreamUnary(grpc.aio.StreamUnaryClientInterceptor):
    def __init__(self, default_timeout: float) -> None:
        self._timeout = default_timeout

    async def intercept_stream_unary(
        self, continuation: Callable[..., Any], details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(_with_context(details, self._timeout), request_iterator)


class _UnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    # No default deadline: server streams (WatchJob) may rightly last minutes; callers set one.
    async def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return await continuation(_with_context(details, None), request)


def open_channel(address: str, *, default_timeout: float = 10.0) -> grpc.aio.Channel:
    """An insecure channel to ``address`` whose unary calls time out after ``default_timeout`` s."""
    return grpc.aio.insecure_channel(
        address,
        options=CHANNEL_OPTIONS,
        interceptors=[_UnaryUnary(default_timeout), _StreamUnary(default_timeout), _UnaryStream()],
    )


async def check_health(channel: grpc.aio.Channel, service: str = "", timeout: float = 2.0) -> bool:
    """True when the server behind ``channel`` says SERVING for ``service``."""
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    except grpc.aio.AioRpcError:
        return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
