"""Fixtures for the storage tests: a `FileStore` per backend and a running service on it.

`store` is parametrised by backend name. The `pinata` parameter runs against the fake
Pinata in `tests/fakes/pinata.py` (real HTTP on loopback) and is skipped, saying why,
while `services/storage/backends/pinata.py` or that fake is not there yet. Service tests
that take `storage` therefore run against both backends.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.common.config import Secret
from services.storage.backends.base import FileStore
from services.storage.backends.local import LocalFileStore
from tests.support.storage import RunningStorage, running_storage

BACKENDS = ("local", "pinata")
_PINATA_MODULES = ("services.storage.backends.pinata", "tests.fakes.pinata")


def pinata_missing() -> str | None:
    """Why the pinata backend cannot be tested here, or None when it can."""
    for module in _PINATA_MODULES:
        try:
            found = importlib.util.find_spec(module)
        except ModuleNotFoundError:
            found = None
        if found is None:
            return f"pinata backend not available yet: {module} does not exist"
    return None


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    name = str(request.param)
    if name == "pinata":
        reason = pinata_missing()
        if reason is not None:
            pytest.skip(reason)
    return name


@pytest.fixture
async def store(backend_name: str, tmp_path: Path) -> AsyncIterator[FileStore]:
    """An empty store of the given backend."""
    if backend_name == "local":
        local = LocalFileStore(tmp_path / "store")
        yield local
        await local.aclose()
        return
    fake_module: Any = importlib.import_module("tests.fakes.pinata")
    pinata_module: Any = importlib.import_module("services.storage.backends.pinata")
    with fake_module.running_fake_pinata() as fake:
        pinata: FileStore = pinata_module.PinataFileStore(
            Secret(fake.jwt), gateway=fake.url, api_url=fake.url, upload_url=fake.url
        )
        try:
            yield pinata
        finally:
            await pinata.aclose()


@pytest.fixture
async def storage(store: FileStore, tmp_path: Path, redis_url: str) -> AsyncIterator[RunningStorage]:
    """The storage service over a real gRPC channel, on `store`."""
    async with running_storage(tmp_path, redis_url, store=store) as running:
        yield running
