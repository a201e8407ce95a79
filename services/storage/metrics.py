"""Storage metrics: index commits and compactions, and how long each backend call takes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, BinaryIO

from prometheus_client import CollectorRegistry, Counter, Histogram

from services.common.errors import DreamForgeError
from services.storage.backends.base import FileRecord, FileStore, GroupRecord


class StorageMetrics:
    """Registered in one (per-server) registry, so several servers in one process do not collide."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.index_entries = Counter(
            "dreamforge_storage_index_entries_total",
            "Index entries published, by operation (add, remove, mark).",
            ["op"],
            registry=self.registry,
        )
        self.index_fenced = Counter(
            "dreamforge_storage_index_fenced_total",
            "Index entries written again because another writer published first (the lock had expired).",
            registry=self.registry,
        )
        self.index_compactions = Counter(
            "dreamforge_storage_index_compactions_total",
            "Index snapshots written by compaction or reindex.",
            ["reason"],
            registry=self.registry,
        )
        self.index_reloads = Counter(
            "dreamforge_storage_index_reloads_total",
            "Times this replica brought its in-memory index up to date, by kind (incremental, full).",
            ["kind"],
            registry=self.registry,
        )
        self.backend_seconds = Histogram(
            "dreamforge_storage_backend_seconds",
            "Time spent in a backend call (for reads: until the last chunk).",
            ["backend", "method"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.backend_errors = Counter(
            "dreamforge_storage_backend_errors_total",
            "Backend calls that failed, by error type.",
            ["backend", "method", "error"],
            registry=self.registry,
        )


class InstrumentedFileStore:
    """A `FileStore` that records the latency and the errors of every call to the one it wraps."""

    def __init__(self, inner: FileStore, metrics: StorageMetrics, backend: str) -> None:
        self.inner = inner
        self._metrics = metrics
        self._backend = backend

    def _observe(self, method: str, started: float, error: BaseException | None) -> None:
        self._metrics.backend_seconds.labels(self._backend, method).observe(time.monotonic() - started)
        if error is not None:
            kind = type(error).__name__ if isinstance(error, (DreamForgeError, asyncio.CancelledError)) else "Exception"
            self._metrics.backend_errors.labels(self._backend, method, kind).inc()

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            result = await getattr(self.inner, method)(*args, **kwargs)
        except BaseException as exc:
            self._observe(method, started, exc)
            raise
        self._observe(method, started, None)
        return result

    async def _stream(self, method: str, iterator: AsyncIterator[Any]) -> AsyncIterator[Any]:
        started = time.monotonic()
        try:
            async with contextlib.aclosing(iterator):  # type: ignore[type-var]
                async for item in iterator:
                    yield item
        except GeneratorExit:  # the caller stopped reading early: not an error
            self._observe(method, started, None)
            raise
        except BaseException as exc:
            self._observe(method, started, exc)
            raise
        self._observe(method, started, None)

    async def check(self) -> None:
        await self._call("check")

    async def create_group(self, name: str) -> GroupRecord:
        result: GroupRecord = await self._call("create_group", name)
        return result

    async def get_group(self, group_id: str) -> GroupRecord:
        result: GroupRecord = await self._call("get_group", group_id)
        return result

    async def find_groups(self, name: str) -> list[GroupRecord]:
        result: list[GroupRecord] = await self._call("find_groups", name)
        return result

    def iter_groups(self) -> AsyncIterator[GroupRecord]:
        return self._stream("iter_groups", self.inner.iter_groups())

    async def delete_group(self, group_id: str) -> None:
        await self._call("delete_group", group_id)

    async def upload(
        self,
        group_id: str | None,
        name: str,
        content: BinaryIO,
        *,
        size: int,
        content_type: str,
        keyvalues: Mapping[str, str] | None = None,
    ) -> FileRecord:
        result: FileRecord = await self._call(
            "upload", group_id, name, content, size=size, content_type=content_type, keyvalues=keyvalues
        )
        return result

    def iter_files(self, group_id: str, *, name: str | None = None) -> AsyncIterator[FileRecord]:
        return self._stream("iter_files", self.inner.iter_files(group_id, name=name))

    async def delete_file(self, file: FileRecord) -> None:
        await self._call("delete_file", file)

    def read(self, file: FileRecord, *, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        return self._stream("read", self.inner.read(file, offset=offset, length=length))

    async def aclose(self) -> None:
        await self.inner.aclose()
