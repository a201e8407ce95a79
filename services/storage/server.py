"""Composition root of the storage service: settings in, a running gRPC server out; `main()` for the command line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from dataclasses import dataclass, field

import redis.asyncio
from dreamforge.v1 import storage_pb2, storage_pb2_grpc
from prometheus_client import CollectorRegistry

from services.common.config import ConfigError, split_host_port
from services.common.grpc_server import GrpcServer, RpcMetrics, start_grpc_server, wait_for_stop_signal
from services.common.logs import configure_logging
from services.common.metrics import MetricsServer, serve_metrics
from services.storage.backends.base import FileStore
from services.storage.backends.factory import build_store
from services.storage.backends.local import LocalFileStore
from services.storage.index import StoryIndex
from services.storage.library import Library
from services.storage.metrics import InstrumentedFileStore, StorageMetrics
from services.storage.servicer import StorageServicer
from services.storage.settings import Settings

log = logging.getLogger(__name__)

SERVICE_NAME = storage_pb2.DESCRIPTOR.services_by_name["StorageService"].full_name
# Pinata's auth check is rate limited (30/min), so a healthy server looks rarely; a sick one often.
HEALTHY_CHECK_SECONDS = 15.0
UNHEALTHY_CHECK_SECONDS = 1.0
CHECK_TIMEOUT_SECONDS = 10.0


@dataclass
class StorageServer:
    """A running storage service: where it listens, its parts (for tests), and how to stop it."""

    grpc: GrpcServer
    address: str
    library: Library
    store: FileStore
    # The backend's name in metrics and logs: "local" or "pinata".
    backend: str
    redis: redis.asyncio.Redis
    registry: CollectorRegistry
    metrics_server: MetricsServer | None = None
    serving: bool = False
    _owned_store: FileStore | None = None
    _owns_redis: bool = False
    _health_task: asyncio.Task[None] | None = None
    _last_problem: str | None = field(default="(not checked yet)", repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def port(self) -> int:
        return self.grpc.port

    async def check_dependencies(self) -> bool:
        """True when Redis and the backend answer (and the index group is there); sets health accordingly."""
        problem = None
        try:
            await asyncio.wait_for(self.redis.ping(), CHECK_TIMEOUT_SECONDS)
        except Exception as exc:
            problem = f"Redis does not answer: {exc!r}"
        if problem is None:
            try:
                await asyncio.wait_for(self.store.check(), CHECK_TIMEOUT_SECONDS)
                await asyncio.wait_for(self.library.index.group_id(), CHECK_TIMEOUT_SECONDS)
            except Exception as exc:
                problem = f"the {type(self.store).__name__} backend does not answer: {exc!r}"
        healthy = problem is None
        if problem != self._last_problem:  # log changes, not every check
            if healthy:
                log.info("Redis and the %s backend answer: SERVING", self.backend)
            else:
                log.warning("%s: NOT_SERVING", problem)
            self._last_problem = problem
        if not self._stopped:
            self.serving = healthy
            await self.grpc.set_serving(healthy)
        return healthy

    async def _watch_health(self) -> None:
        while True:
            await asyncio.sleep(HEALTHY_CHECK_SECONDS if self.serving else UNHEALTHY_CHECK_SECONDS)
            await self.check_dependencies()

    async def stop(self, grace: float = 5.0) -> None:
        """NOT_SERVING, finish calls in flight for up to `grace` seconds, then release everything."""
        if self._stopped:
            return
        self._stopped = True
        self.serving = False
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        await self.grpc.stop(grace)
        await self.library.index.aclose()
        if self.metrics_server is not None:
            self.metrics_server.stop()
        if self._owned_store is not None:
            await self._owned_store.aclose()
        if self._owns_redis:
            await self.redis.aclose()


async def create_server(
    settings: Settings,
    *,
    store: FileStore | None = None,
    redis: redis.asyncio.Redis | None = None,
) -> StorageServer:
    """Start the service on `settings.storage_addr` (port 0 picks one); health follows Redis and the backend.

    `store` and `redis` are used as given (and left open on stop); otherwise they are built from
    the settings and closed on stop.
    """
    log.info("storage configuration: %s", " ".join(f"{k}={v}" for k, v in settings.describe().items()))
    registry = CollectorRegistry()
    metrics = StorageMetrics(registry)
    owned_store = build_store(settings) if store is None else None
    backend = owned_store if owned_store is not None else store
    assert backend is not None
    client = redis if redis is not None else _redis_from_url(settings.redis_url)
    backend_name = _backend_name(backend, settings)
    instrumented = InstrumentedFileStore(backend, metrics, backend_name)
    index = StoryIndex(
        instrumented,
        client,
        group_name=settings.index_group_name,
        metrics=metrics,
        compact_every=settings.index_compact_every,
        lock_ttl_ms=settings.index_lock_ttl_ms,
    )
    library = Library(instrumented, index, client, max_asset_bytes=settings.max_asset_bytes)
    servicer = StorageServicer(library)
    host, _ = split_host_port("STORAGE_ADDR", settings.storage_addr)
    grpc_server = await start_grpc_server(
        settings.storage_addr,
        lambda s: storage_pb2_grpc.add_StorageServiceServicer_to_server(servicer, s),
        [SERVICE_NAME],
        metrics=RpcMetrics(registry, "storage"),
    )
    server = StorageServer(
        grpc=grpc_server,
        address=f"{host}:{grpc_server.port}",
        library=library,
        store=instrumented,
        backend=backend_name,
        redis=client,
        registry=registry,
        _owned_store=owned_store,
        _owns_redis=redis is None,
    )
    try:
        server.metrics_server = serve_metrics(settings.metrics_addr, registry, setting="STORAGE_METRICS_ADDR")
        await server.check_dependencies()
    except BaseException:
        await server.stop(0)
        raise
    server._health_task = asyncio.get_running_loop().create_task(server._watch_health())
    log.info("storage listening on %s (%s backend)", server.address, backend_name)
    return server


def _backend_name(store: FileStore, settings: Settings) -> str:
    """The configured backend's name, or for a store passed in (tests), one made from its class."""
    if isinstance(store, LocalFileStore):
        return "local"
    name = type(store).__name__.lower()
    return name[: -len("filestore")] if name.endswith("filestore") and name != "filestore" else settings.backend


def _redis_from_url(url: str) -> redis.asyncio.Redis:
    return redis.asyncio.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)


async def serve(settings: Settings) -> None:
    server = await create_server(settings)
    await wait_for_stop_signal()
    log.info("stopping: NOT_SERVING, draining calls in flight")
    await server.stop(grace=5.0)
    log.info("stopped")


def main() -> None:
    """`python -m services.storage` / `dreamforge-storage`: serve until SIGTERM or SIGINT."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        sys.exit(f"dreamforge-storage: {exc}")
    configure_logging("storage", fmt=settings.log_format, level=settings.log_level)
    try:
        asyncio.run(serve(settings))
    except ConfigError as exc:
        sys.exit(f"dreamforge-storage: {exc}")
