"""Every server maps domain errors to status codes, carries request ids, and serves health and reflection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from dreamforge.v1 import storage_pb2, storage_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import CollectorRegistry

from services.common import errors
from services.common.grpc_client import check_health, open_channel
from services.common.grpc_server import GrpcServer, RpcMetrics, start_grpc_server
from services.common.logs import job_id_var, request_id_var

SERVICE = "dreamforge.v1.StorageService"


class _Servicer(storage_pb2_grpc.StorageServiceServicer):
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.stream_closed = asyncio.Event()
        self.recorded_when_closed: float | None = None

    async def GetStory(self, request: storage_pb2.GetStoryRequest, context: object) -> storage_pb2.GetStoryResponse:
        if request.story_id == "missing":
            raise errors.NotFound("story 'missing' does not exist")
        if request.story_id == "boom":
            raise RuntimeError("a bug with a secret inside")
        # Echo the ids this call runs under, to prove they travelled.
        return storage_pb2.GetStoryResponse(
            manifest=storage_pb2.StoryManifest(title=request_id_var.get() or "", prompt=job_id_var.get() or "")
        )

    async def GetAsset(
        self, request: storage_pb2.GetAssetRequest, context: object
    ) -> AsyncIterator[storage_pb2.GetAssetResponse]:
        if request.name == "endless":
            try:
                while True:  # no await of its own: it waits only inside the server's send
                    yield storage_pb2.GetAssetResponse(chunk=b"x" * 65536)
            finally:
                self.recorded_when_closed = _cancelled_calls(self.registry)
                self.stream_closed.set()
        yield storage_pb2.GetAssetResponse(chunk=b"first")
        raise errors.InvalidArgument("asset name must not contain '/'")


def _cancelled_calls(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value(
        "dreamforge_rpc_requests_total", {"service": "storage", "method": "GetAsset", "code": "CANCELLED"}
    )


@pytest.fixture
def servicer() -> _Servicer:
    return _Servicer()  # type: ignore[abstract]


@pytest.fixture
async def server(servicer: _Servicer) -> AsyncIterator[tuple[GrpcServer, CollectorRegistry]]:
    registry = servicer.registry
    handle = await start_grpc_server(
        "127.0.0.1:0",
        lambda s: storage_pb2_grpc.add_StorageServiceServicer_to_server(servicer, s),
        [SERVICE],
        metrics=RpcMetrics(registry, "storage"),
    )
    try:
        yield handle, registry
    finally:
        await handle.stop(0)


async def test_domain_error_becomes_its_status_code(server: tuple[GrpcServer, CollectorRegistry]) -> None:
    handle, _ = server
    async with open_channel(f"127.0.0.1:{handle.port}") as channel:
        stub = storage_pb2_grpc.StorageServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetStory(storage_pb2.GetStoryRequest(story_id="missing"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == "story 'missing' does not exist"


async def test_unexpected_exception_is_internal_without_leaking_details(
    server: tuple[GrpcServer, CollectorRegistry],
) -> None:
    handle, registry = server
    async with open_channel(f"127.0.0.1:{handle.port}") as channel:
        stub = storage_pb2_grpc.StorageServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetStory(storage_pb2.GetStoryRequest(story_id="boom"))
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (caught.value.details() or "")
    assert "request id" in (caught.value.details() or "")
    count = registry.get_sample_value(
        "dreamforge_rpc_requests_total", {"service": "storage", "method": "GetStory", "code": "INTERNAL"}
    )
    assert count == 1


async def test_error_in_the_middle_of_a_stream_keeps_its_code(server: tuple[GrpcServer, CollectorRegistry]) -> None:
    handle, _ = server
    async with open_channel(f"127.0.0.1:{handle.port}") as channel:
        stub = storage_pb2_grpc.StorageServiceStub(channel)
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for message in stub.GetAsset(storage_pb2.GetAssetRequest(story_id="s", name="a")):
                received.append(message.chunk)
    assert received == [b"first"]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_request_id_travels_from_client_context_to_server(server: tuple[GrpcServer, CollectorRegistry]) -> None:
    handle, _ = server
    token = request_id_var.set("req-from-gateway")
    try:
        async with open_channel(f"127.0.0.1:{handle.port}") as channel:
            reply = await storage_pb2_grpc.StorageServiceStub(channel).GetStory(
                storage_pb2.GetStoryRequest(story_id="x")
            )
    finally:
        request_id_var.reset(token)
    assert reply.manifest.title == "req-from-gateway"
    assert reply.manifest.prompt == ""


async def test_job_id_travels_with_calls_made_for_a_job(server: tuple[GrpcServer, CollectorRegistry]) -> None:
    handle, _ = server
    token = job_id_var.set("0193a4b2-0000-7000-8000-000000000001")
    try:
        async with open_channel(f"127.0.0.1:{handle.port}") as channel:
            reply = await storage_pb2_grpc.StorageServiceStub(channel).GetStory(
                storage_pb2.GetStoryRequest(story_id="x")
            )
    finally:
        job_id_var.reset(token)
    assert reply.manifest.prompt == "0193a4b2-0000-7000-8000-000000000001"


async def test_health_follows_set_serving(server: tuple[GrpcServer, CollectorRegistry]) -> None:
    handle, _ = server
    async with open_channel(f"127.0.0.1:{handle.port}") as channel:
        assert not await check_health(channel)
        await handle.set_serving(True)
        assert await check_health(channel)
        assert await check_health(channel, SERVICE)
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=SERVICE))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_service(server: tuple[GrpcServer, CollectorRegistry]) -> None:
    handle, _ = server
    async with open_channel(f"127.0.0.1:{handle.port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = []
        async for response in responses:
            names = [service.name for service in response.list_services_response.service]
            break
    assert SERVICE in names
    assert "grpc.health.v1.Health" in names


async def test_a_stream_the_client_abandons_is_closed_at_once_and_counted_as_cancelled(
    server: tuple[GrpcServer, CollectorRegistry], servicer: _Servicer
) -> None:
    handle, registry = server
    async with open_channel(f"127.0.0.1:{handle.port}") as channel:
        call = storage_pb2_grpc.StorageServiceStub(channel).GetAsset(
            storage_pb2.GetAssetRequest(story_id="s", name="endless")
        )
        async for _ in call:
            break
        call.cancel()
        await asyncio.wait_for(servicer.stream_closed.wait(), 30)
    # The handler was closed while the call ended (its files with it), not later by the garbage collector...
    assert servicer.recorded_when_closed is None
    # ...and a client going away is not a server crash.
    for _ in range(100):
        if _cancelled_calls(registry) == 1:
            break
        await asyncio.sleep(0.05)
    assert _cancelled_calls(registry) == 1
