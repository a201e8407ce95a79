"""Building a gRPC server the same way in every service.

Every server gets: the standard health service, server reflection, a request id
taken from the `x-request-id` metadata (or made up) and put in the log context,
domain errors mapped to status codes, one log line per failed call, and RPC
metrics in the registry it is given.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, Counter, Histogram

from services.common.errors import DreamForgeError
from services.common.grpc_errors import status_code_for
from services.common.logs import job_id_var, request_id_var

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
JOB_ID_HEADER = "x-job-id"
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
SERVER_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # Let clients keep long-lived streams (WatchJob) alive through idle proxies.
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.so_reuseport", 0),
]


class RpcMetrics:
    """Per-RPC counters and latency histograms, registered in the given registry."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self._service = service
        self.requests = Counter(
            "dreamforge_rpc_requests_total",
            "gRPC calls handled, by method and status code.",
            ["service", "method", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "dreamforge_rpc_duration_seconds",
            "Time to handle a gRPC call (for streams: until the stream ends).",
            ["service", "method"],
            registry=registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )

    def observe(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        self.requests.labels(self._service, method, code.name).inc()
        self.latency.labels(self._service, method).observe(seconds)


def _metadata_value(details: grpc.HandlerCallDetails, header: str) -> str | None:
    for key, value in details.invocation_metadata or ():
        if key == header and isinstance(value, str) and 0 < len(value) <= 128:
            return value
    return None


def _request_id_from(details: grpc.HandlerCallDetails) -> str:
    return _metadata_value(details, REQUEST_ID_HEADER) or uuid.uuid4().hex[:16]


class _CallTracker:
    """Runs one call in its request context and records how it ended."""

    def __init__(self, method: str, request_id: str, metrics: RpcMetrics | None) -> None:
        self.method = method
        self.request_id = request_id
        self.metrics = metrics
        self.started = time.monotonic()
        self.code = grpc.StatusCode.OK

    async def fail(self, exc: BaseException, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """Turn an exception into an abort with the right code; re-raise what is not ours to map."""
        if isinstance(exc, DreamForgeError):
            self.code = status_code_for(exc)
            log.info("%s failed: %s %s", self.method, self.code.name, exc.message)
            await context.abort(self.code, exc.message)
        # A client that cancels or walks away: the task is cancelled, or a stream is closed at its `yield`.
        if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
            self.code = grpc.StatusCode.CANCELLED
            raise exc
        if isinstance(exc, grpc.aio.AbortError) or type(exc).__name__ == "AbortError":
            code = context.code()
            self.code = code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
            raise exc
        self.code = grpc.StatusCode.INTERNAL
        log.exception("%s crashed", self.method)
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error (request id {self.request_id})")

    def finish(self) -> None:
        if self.metrics is not None:
            self.metrics.observe(self.method, self.code, time.monotonic() - self.started)


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Request ids, domain-error mapping and metrics for every RPC of a server."""

    def __init__(self, metrics: RpcMetrics | None = None) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method.rsplit("/", 1)[-1]
        request_id = _request_id_from(handler_call_details)
        # Calls a worker makes for a job carry its id, so this service's lines about it name the job too.
        job_id = _metadata_value(handler_call_details, JOB_ID_HEADER)
        metrics = self._metrics

        def unary(behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                token = request_id_var.set(request_id)
                job_token = job_id_var.set(job_id)
                call = _CallTracker(method, request_id, metrics)
                try:
                    return await behavior(request, context)
                except BaseException as exc:
                    await call.fail(exc, context)
                finally:
                    call.finish()
                    job_id_var.reset(job_token)
                    request_id_var.reset(token)

            return wrapped

        def streaming(behavior: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
            async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
                request_id_var.set(request_id)
                job_id_var.set(job_id)
                call = _CallTracker(method, request_id, metrics)
                stream = behavior(request, context)
                try:
                    async for response in stream:
                        yield response
                except BaseException as exc:
                    await call.fail(exc, context)
                finally:
                    # A client that walks away must not leave the handler's files open until GC.
                    close = getattr(stream, "aclose", None)
                    if close is not None:
                        await close()
                    call.finish()

            return wrapped

        kwargs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), **kwargs)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary), **kwargs)
        # The aio server runs async generators here; the sync-server types in the stubs do not say so.
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(streaming(handler.unary_stream), **kwargs)  # type: ignore[arg-type]
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(streaming(handler.stream_stream), **kwargs)  # type: ignore[arg-type]
        return handler


@dataclass
class GrpcServer:
    """A started server, the port it is bound to, and its health servicer."""

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    service_names: tuple[str, ...]

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *self.service_names):
            await self.health.set(name, status)

    async def stop(self, grace: float) -> None:
        await self.set_serving(False)
        await self.server.stop(grace)


async def start_grpc_server(
    address: str,
    register: Callable[[grpc.aio.Server], None],
    service_names: Sequence[str],
    *,
    metrics: RpcMetrics | None = None,
    extra_interceptors: Iterable[grpc.aio.ServerInterceptor] = (),
) -> GrpcServer:
    """Create, register and start a server on ``address`` (port 0 picks a free one).

    Health starts as NOT_SERVING; the caller flips it once its dependencies answer.
    """
    server = grpc.aio.server(interceptors=[ServiceInterceptor(metrics), *extra_interceptors], options=SERVER_OPTIONS)
    register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind gRPC server to {address}")
    await server.start()
    handle = GrpcServer(server=server, port=port, health=health_servicer, service_names=tuple(service_names))
    await handle.set_serving(False)
    return handle


async def wait_for_stop_signal() -> None:
    """Return on the first SIGTERM or SIGINT (the caller then drains and stops)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
