"""A Redis lock across processes and replicas: SET NX PX with a random token, released by compare-and-delete.

A lock can expire while its holder still works (a long pause); callers that must
not let two holders both succeed fence their writes with a compare-and-set on a
sequence number (see `services.storage.index`).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio

from services.common.errors import Unavailable

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLock:
    def __init__(self, client: redis.asyncio.Redis, key: str, *, ttl_ms: int, wait_seconds: float) -> None:
        self._client = client
        self.key = key
        self.ttl_ms = ttl_ms
        self._wait_seconds = wait_seconds
        self._release = client.register_script(_RELEASE)

    async def try_acquire(self) -> str | None:
        """The token when the lock was free, else None."""
        token = uuid.uuid4().hex
        if await self._client.set(self.key, token, nx=True, px=self.ttl_ms):
            return token
        return None

    async def acquire(self) -> str:
        """Wait (up to `wait_seconds`) for the lock; `Unavailable` when it stays taken."""
        deadline = time.monotonic() + self._wait_seconds
        delay = 0.005
        while True:
            token = await self.try_acquire()
            if token is not None:
                return token
            if time.monotonic() >= deadline:
                raise Unavailable(f"lock {self.key} stayed busy for {self._wait_seconds:.0f}s; retry")
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.1)

    async def release(self, token: str) -> bool:
        """Delete the lock only if it is still ours; False when it had expired (and maybe been taken)."""
        return bool(await self._release(keys=[self.key], args=[token]))

    @asynccontextmanager
    async def held(self) -> AsyncIterator[str]:
        token = await self.acquire()
        try:
            yield token
        finally:
            await self.release(token)
