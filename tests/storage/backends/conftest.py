"""Fixtures for the backend tests: a fake Pinata over real HTTP, stores wired to it, and both backends side by side."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from services.common.config import Secret
from services.storage.backends.base import FileStore
from services.storage.backends.local import LocalFileStore
from services.storage.backends.pinata import PinataFileStore
from services.storage.backends.pinata_http import RetryPolicy
from tests.fakes.pinata import FakePinata, running_fake_pinata

# Fast but real backoff: tests must not wait seconds for each retry.
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_retry_after=2.0)


class SleepLog:
    """Records every wait the store asks for (to check Retry-After is honoured) and waits a little for real."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(min(delay, 0.05))


@pytest.fixture
def fake_pinata() -> Iterator[FakePinata]:
    with running_fake_pinata() as fake:
        yield fake


@pytest.fixture
def sleeps() -> SleepLog:
    return SleepLog()


def pinata_store_for(fake: FakePinata, sleeps: SleepLog | None = None, **overrides: object) -> PinataFileStore:
    """A store pointed at the fake for all three hosts (API, uploads, gateway), with fast retries."""
    options: dict[str, object] = {
        "gateway": fake.url,
        "api_url": fake.url,
        "upload_url": fake.url,
        "retry": FAST_RETRY,
        "timeout": 10.0,
    }
    if sleeps is not None:
        options["sleep"] = sleeps
    options.update(overrides)
    jwt = options.pop("jwt", Secret(fake.jwt))
    return PinataFileStore(jwt, **options)  # type: ignore[arg-type]


@pytest.fixture
async def pinata_store(fake_pinata: FakePinata, sleeps: SleepLog) -> AsyncIterator[PinataFileStore]:
    store = pinata_store_for(fake_pinata, sleeps)
    try:
        yield store
    finally:
        await store.aclose()


@pytest.fixture(params=["local", "pinata"])
async def file_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[FileStore]:
    """Each backend in turn, empty: the contract tests run once per backend."""
    if request.param == "local":
        store: FileStore = LocalFileStore(tmp_path / "store")
    else:
        store = pinata_store_for(request.getfixturevalue("fake_pinata"))
    try:
        yield store
    finally:
        await store.aclose()
