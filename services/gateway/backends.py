"""The gRPC channels and stubs the gateway calls, opened for the app's lifetime and reached via ``request.state``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
from dreamforge.v1 import jobs_pb2_grpc, storage_pb2_grpc
from starlette.requests import Request

from services.common.grpc_client import check_health, open_channel
from services.gateway.settings import Settings


@dataclass
class Backends:
    """Stubs for storage and the generator's JobService; every unary call on them has a deadline."""

    storage_channel: grpc.aio.Channel
    generator_channel: grpc.aio.Channel
    # The Async* stub types exist only in the generated .pyi files; at run time the plain stubs serve aio channels.
    storage: storage_pb2_grpc.StorageServiceAsyncStub
    jobs: jobs_pb2_grpc.JobServiceAsyncStub

    @classmethod
    def open(cls, settings: Settings) -> Backends:
        storage_channel = open_channel(settings.storage_addr, default_timeout=settings.rpc_timeout)
        generator_channel = open_channel(settings.generator_addr, default_timeout=settings.rpc_timeout)
        return cls(
            storage_channel=storage_channel,
            generator_channel=generator_channel,
            storage=storage_pb2_grpc.StorageServiceStub(storage_channel),
            jobs=jobs_pb2_grpc.JobServiceStub(generator_channel),
        )

    async def close(self) -> None:
        await asyncio.gather(self.storage_channel.close(), self.generator_channel.close())

    async def readiness(self, timeout: float) -> dict[str, bool]:
        """Whether each backend answers its gRPC health check with SERVING."""
        storage_ok, generator_ok = await asyncio.gather(
            check_health(self.storage_channel, timeout=timeout),
            check_health(self.generator_channel, timeout=timeout),
        )
        return {"storage": storage_ok, "generator": generator_ok}


def backends_of(request: Request) -> Backends:
    backends: Backends = request.state.backends
    return backends


def settings_of(request: Request) -> Settings:
    settings: Settings = request.state.settings
    return settings
