"""The composition root: Redis, the storage channel, engines, the JobService API and the worker pool in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass, field
from typing import Any

import grpc
import redis.asyncio as aioredis
from dreamforge.v1 import jobs_pb2, jobs_pb2_grpc
from prometheus_client import CollectorRegistry

from services.common.grpc_client import open_channel
from services.common.grpc_server import GrpcServer, RpcMetrics, start_grpc_server
from services.common.ids import new_id
from services.common.metrics import MetricsServer, serve_metrics
from services.generator.engines.base import ImageEngine, TextEngine
from services.generator.engines.selection import build_image_engine, build_text_engine
from services.generator.events import EventLog
from services.generator.jobs import JobStore
from services.generator.keys import Keys
from services.generator.metrics import GeneratorMetrics
from services.generator.pipeline import StoryPipeline
from services.generator.queue import JobQueue
from services.generator.service import JobService
from services.generator.servicer import JobServicer
from services.generator.settings import Settings
from services.generator.storage_client import StorageClient
from services.generator.worker import WorkerOptions, WorkerPool

log = logging.getLogger(__name__)

SERVICE_NAME = jobs_pb2.DESCRIPTOR.services_by_name["JobService"].full_name
HEALTH_INTERVAL_SECONDS = 2.0


class _FromSettings:
    """Marker: build this dependency from the settings."""


FROM_SETTINGS: Any = _FromSettings()


@dataclass
class GeneratorServer:
    """A running generator: the API (unless workers-only), the workers (unless API-only), and their clients."""

    settings: Settings
    redis: aioredis.Redis
    registry: CollectorRegistry
    grpc_server: GrpcServer | None
    workers: WorkerPool | None
    service: JobService
    _owned: list[Any] = field(default_factory=list)
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _metrics_server: MetricsServer | None = None

    @property
    def port(self) -> int:
        return self.grpc_server.port if self.grpc_server else 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING, drain the workers (``grace`` s, default SHUTDOWN_GRACE_SECONDS), stop the API, close clients."""
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        if self.grpc_server is not None:
            await self.grpc_server.set_serving(False)
        # Background loops end on the event: a cancel landing inside a gRPC call can be swallowed as CANCELLED.
        self._stopping.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=HEALTH_INTERVAL_SECONDS + 5)
        for task in self._tasks:
            task.cancel()
        if self.workers is not None:
            await self.workers.stop(grace)
        if self.grpc_server is not None:
            await self.grpc_server.stop(min(grace, 5.0))
        if self._metrics_server is not None:
            self._metrics_server.stop()
        for closer in reversed(self._owned):
            with contextlib.suppress(Exception):
                await closer()


async def create_server(
    settings: Settings,
    *,
    redis: aioredis.Redis | None = None,
    storage_channel: grpc.aio.Channel | None = None,
    text_engine: TextEngine | Any = FROM_SETTINGS,
    image_engine: ImageEngine | Any | None = FROM_SETTINGS,
    registry: CollectorRegistry | None = None,
    api: bool = True,
    workers: bool = True,
    start_workers: bool = True,
    address: str | None = None,
    consumer: str | None = None,
) -> GeneratorServer:
    """Start the generator. ``address`` overrides GENERATOR_ADDR (tests pass ``127.0.0.1:0``).

    With ``start_workers=False`` the pool is built but idle: call ``handle.workers.run_burst()``.

    A Redis client given here must use ``decode_responses=True``; one made here is closed on stop.
    """
    owned: list[Any] = []
    if redis is None:
        redis = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
        owned.append(redis.aclose)
    elif not redis.get_connection_kwargs().get("decode_responses"):
        raise ValueError("the generator's Redis client needs decode_responses=True")
    if storage_channel is None:
        storage_channel = open_channel(settings.storage_addr, default_timeout=settings.storage_timeout_seconds)
        owned.append(storage_channel.close)
    if text_engine is FROM_SETTINGS:
        text_engine = build_text_engine(settings)
        owned.append(text_engine.aclose)
    if image_engine is FROM_SETTINGS:
        image_engine = build_image_engine(settings)
        if image_engine is not None:
            owned.append(image_engine.aclose)

    registry = registry or CollectorRegistry()
    metrics = GeneratorMetrics(registry)
    keys = Keys(settings.redis_prefix)
    store = JobStore(redis, keys, retention_seconds=settings.job_retention_seconds)
    event_log = EventLog(redis, keys)
    storage = StorageClient(storage_channel, timeout=settings.storage_timeout_seconds)
    service = JobService(
        store,
        event_log,
        metrics,
        default_parts=settings.story_parts,
        default_style=settings.image_style,
        delete_draft=storage.delete_story,
    )

    pool: WorkerPool | None = None
    if workers and settings.workers > 0:
        queue = JobQueue(
            redis,
            store,
            consumer=consumer or f"{socket.gethostname()}-{new_id()[-12:]}",
            visibility_timeout=settings.job_visibility_timeout_seconds,
            retention_seconds=settings.job_retention_seconds,
        )
        pipeline = StoryPipeline(
            text_engine=text_engine,
            image_engine=image_engine,
            storage=storage,
            events=event_log,
            redis=redis,
            keys=keys,
            metrics=metrics,
            image_concurrency=settings.image_concurrency,
            model_call_attempts=settings.model_call_attempts,
            retry_base_seconds=min(settings.job_retry_base_seconds, 5.0),
            retry_max_seconds=min(settings.job_retry_max_seconds, 60.0),
        )
        pool = WorkerPool(
            redis=redis,
            keys=keys,
            queue=queue,
            pipeline=pipeline,
            events=event_log,
            storage=storage,
            metrics=metrics,
            options=WorkerOptions(
                workers=settings.workers,
                max_attempts=settings.job_max_attempts,
                retry_base_seconds=settings.job_retry_base_seconds,
                retry_max_seconds=settings.job_retry_max_seconds,
                visibility_timeout_seconds=settings.job_visibility_timeout_seconds,
            ),
        )

    grpc_server: GrpcServer | None = None
    if api:
        servicer = JobServicer(service)
        grpc_server = await start_grpc_server(
            address or settings.generator_addr,
            lambda server: jobs_pb2_grpc.add_JobServiceServicer_to_server(servicer, server),
            [SERVICE_NAME],
            metrics=RpcMetrics(registry, "generator"),
        )
    handle = GeneratorServer(
        settings=settings,
        redis=redis,
        registry=registry,
        grpc_server=grpc_server,
        workers=pool,
        service=service,
        _owned=owned,
        _metrics_server=serve_metrics(settings.metrics_addr, registry, setting="GENERATOR_METRICS_ADDR"),
    )
    if grpc_server is not None:
        handle._tasks.append(
            asyncio.create_task(_watch_health(grpc_server, redis, storage, store, metrics, handle._stopping))
        )
    if pool is not None and start_workers:
        await pool.start()
    log.info(
        "generator started: api=%s workers=%d text=%s image=%s",
        handle.address if grpc_server else "off",
        settings.workers if pool else 0,
        getattr(text_engine, "info", None) and text_engine.info.engine,
        image_engine.info.engine if image_engine is not None else "none",
    )
    return handle


async def _watch_health(
    server: GrpcServer,
    redis: aioredis.Redis,
    storage: StorageClient,
    store: JobStore,
    metrics: GeneratorMetrics,
    stopping: asyncio.Event,
) -> None:
    """SERVING only while Redis and storage both answer (and the queue-depth gauge kept fresh)."""
    serving: bool | None = None
    while not stopping.is_set():
        try:
            ok = bool(await redis.ping()) and await storage.healthy()
            metrics.queue_depth.set(await store.queue_depth())
        except Exception:
            ok = False
        if ok != serving:
            await server.set_serving(ok)
            log.info("health: %s", "SERVING" if ok else "NOT_SERVING (Redis or storage does not answer)")
            serving = ok
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stopping.wait(), HEALTH_INTERVAL_SECONDS)
