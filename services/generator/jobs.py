"""Job records in Redis: the states a job goes through, submitting (idempotent), reading, listing, cancelling.

A job is a hash (`Keys.job`); its id is also in a sorted set per state, so jobs
can be listed by state, newest first. Every change of state happens in one Lua
script together with the matching stream, index and event writes, so no reader
ever sees half of a transition. The worker-side transitions live in `queue.py`.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

import redis.asyncio as aioredis

from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from services.common.ids import is_id, new_id
from services.generator import events
from services.generator.keys import WORKER_GROUP, Keys
from services.generator.validation import StoryRequest


class JobState(str, Enum):
    """Where a job is. QUEUED and RUNNING are live; the other three are final."""

    #: Waiting for a worker: new, waiting for its retry to come due, or handed back at shutdown.
    QUEUED = "queued"
    #: A worker holds it (its lease is renewed by heartbeats; a lapsed lease lets another worker reclaim it).
    RUNNING = "running"
    #: The story is committed; `story_id` names it.
    SUCCEEDED = "succeeded"
    #: Gave up: a permanent error, or retries spent. `error_code`/`error_message` say why; it is a dead letter.
    FAILED = "failed"
    #: A client cancelled it.
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class Job:
    id: str
    state: JobState
    stage: str
    progress: int
    attempts: int
    prompt: str
    parts: int
    style: str
    seed: int
    created_ms: int
    updated_ms: int
    story_id: str = ""
    title: str = ""
    error_code: str = ""
    error_message: str = ""
    idempotency_key: str = ""
    cancel_requested: bool = False

    @classmethod
    def from_hash(cls, fields: dict[str, str]) -> Job:
        return cls(
            id=fields["id"],
            state=JobState(fields["state"]),
            stage=fields.get("stage", ""),
            progress=int(fields.get("progress", "0")),
            attempts=int(fields.get("attempts", "0")),
            prompt=fields.get("prompt", ""),
            parts=int(fields.get("parts", "0")),
            style=fields.get("style", ""),
            seed=int(fields.get("seed", "0")),
            created_ms=int(fields.get("created_ms", "0")),
            updated_ms=int(fields.get("updated_ms", "0")),
            story_id=fields.get("story_id", ""),
            title=fields.get("title", ""),
            error_code=fields.get("error_code", ""),
            error_message=fields.get("error_message", ""),
            idempotency_key=fields.get("idempotency_key", ""),
            cancel_requested=fields.get("cancel_requested", "0") == "1",
        )


# Shared by the scripts: move a job's id from its old state's sorted set to the new one's.
LUA_SET_STATE = """
local function set_state(job_key, state_prefix, job_id, new_state)
  local old = redis.call('HGET', job_key, 'state')
  local order = redis.call('HGET', job_key, 'seq') or '0'
  if old then redis.call('ZREM', state_prefix .. old, job_id) end
  redis.call('ZADD', state_prefix .. new_state, order, job_id)
  redis.call('HSET', job_key, 'state', new_state)
end
"""

# KEYS: job, idempotency key (or the job key when none), all jobs, stream, events, sequence
# ARGV: state prefix, job id, has idempotency key (0/1), now ms, event data, then hash field/value pairs
_SUBMIT = (
    LUA_SET_STATE
    + """
if ARGV[3] == '1' then
  local existing = redis.call('GET', KEYS[2])
  if existing then
    local job_prefix = string.sub(KEYS[1], 1, string.len(KEYS[1]) - string.len(ARGV[2]))
    if redis.call('EXISTS', job_prefix .. existing) == 1 then return {0, existing} end
  end
  redis.call('SET', KEYS[2], ARGV[2])
end
for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
-- A counter, not the clock, orders the listings: jobs submitted in the same millisecond stay in order.
local seq = redis.call('INCR', KEYS[6])
redis.call('HSET', KEYS[1], 'seq', seq)
set_state(KEYS[1], ARGV[1], ARGV[2], 'queued')
redis.call('ZADD', KEYS[3], seq, ARGV[2])
local entry = redis.call('XADD', KEYS[4], '*', 'job_id', ARGV[2])
redis.call('HSET', KEYS[1], 'entry_id', entry)
redis.call('XADD', KEYS[5], '*', 'kind', 'progress', 'data', ARGV[5], 'time', ARGV[4])
return {1, ARGV[2]}
"""
)

# KEYS: job, delayed, stream, events, checkpoint
# ARGV: state prefix, job id, now ms, retention s, event data, idempotency prefix, group, message
_CANCEL = (
    LUA_SET_STATE
    + """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'missing' end
if state == 'succeeded' or state == 'failed' or state == 'cancelled' then return state end
if state == 'running' then
  redis.call('HSET', KEYS[1], 'cancel_requested', '1', 'updated_ms', ARGV[3])
  return 'running'
end
set_state(KEYS[1], ARGV[1], ARGV[2], 'cancelled')
redis.call('HSET', KEYS[1], 'stage', 'cancelled', 'error_code', 'cancelled', 'error_message', ARGV[8],
  'updated_ms', ARGV[3], 'finished_ms', ARGV[3], 'cancel_requested', '1')
redis.call('ZREM', KEYS[2], ARGV[2])
local entry = redis.call('HGET', KEYS[1], 'entry_id')
if entry and entry ~= '' then
  redis.call('XACK', KEYS[3], ARGV[7], entry)
  redis.call('XDEL', KEYS[3], entry)
end
redis.call('XADD', KEYS[4], '*', 'kind', 'failed', 'data', ARGV[5], 'time', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[4], ARGV[4])
redis.call('DEL', KEYS[5])
local idem = redis.call('HGET', KEYS[1], 'idempotency_key')
if idem and idem ~= '' then redis.call('EXPIRE', ARGV[6] .. idem, ARGV[4]) end
return 'now_cancelled'
"""
)

CANCEL_MESSAGE = "cancelled by a client"
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


def now_ms() -> int:
    return int(time.time() * 1000)


class JobStore:
    """Reads and writes job records; the API side of the queue (submit, get, list, cancel)."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, *, retention_seconds: int) -> None:
        self._redis: Any = redis  # redis-py's types do not know decode_responses=True
        self._keys = keys
        self._retention = retention_seconds
        self._submit = redis.register_script(_SUBMIT)
        self._cancel = redis.register_script(_CANCEL)

    @property
    def keys(self) -> Keys:
        return self._keys

    async def submit(
        self, request: StoryRequest, *, idempotency_key: str = "", seed: int | None = None
    ) -> tuple[Job, bool]:
        """Store and enqueue a job; with a known idempotency key, the existing job and False."""
        job_id = new_id()
        created = now_ms()
        job_seed = seed if seed is not None else secrets.randbelow(2**31)
        fields = {
            "id": job_id,
            "stage": "queued",
            "progress": "0",
            "attempts": "0",
            "prompt": request.prompt,
            "parts": str(request.parts),
            "style": request.style,
            "seed": str(job_seed),
            "created_ms": str(created),
            "updated_ms": str(created),
            "idempotency_key": idempotency_key,
            "cancel_requested": "0",
        }
        event = events.encode(
            events.PROGRESS,
            {"state": JobState.QUEUED.value, "stage": "queued", "progress": 0, "attempt": 0, "message": "Queued"},
            created,
        )["data"]
        idem_key = self._keys.idempotency(idempotency_key) if idempotency_key else self._keys.job(job_id)
        flat = [item for pair in fields.items() for item in pair]
        created_flag, found_id = await self._submit(
            keys=[
                self._keys.job(job_id),
                idem_key,
                self._keys.all_jobs,
                self._keys.stream,
                self._keys.events(job_id),
                self._keys.sequence,
            ],
            args=[self._keys.by_state(""), job_id, "1" if idempotency_key else "0", created, event, *flat],
        )
        return await self.get(str(found_id)), bool(int(created_flag))

    async def find(self, job_id: str) -> Job | None:
        if not is_id(job_id):
            return None
        fields = await self._redis.hgetall(self._keys.job(job_id))
        return Job.from_hash(fields) if fields else None

    async def get(self, job_id: str) -> Job:
        if not is_id(job_id):
            raise InvalidArgument(f"job_id {job_id!r} is not a job id (a UUID)")
        job = await self.find(job_id)
        if job is None:
            raise NotFound(f"job {job_id} does not exist (or has expired)")
        return job

    async def list_jobs(self, state: JobState | None, page_size: int, page_token: str) -> tuple[list[Job], str]:
        """Jobs newest first (one state, or all), a page at a time; the token is an offset."""
        if page_size == 0:
            page_size = DEFAULT_PAGE_SIZE
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
        if page_token and not page_token.isdigit():
            raise InvalidArgument("page_token is not one this service returned")
        offset = int(page_token or "0")
        index_key = self._keys.by_state(state.value) if state else self._keys.all_jobs
        jobs: list[Job] = []
        while len(jobs) < page_size:
            ids = await self._redis.zrevrange(index_key, offset, offset + page_size - len(jobs) - 1)
            if not ids:
                return jobs, ""
            async with self._redis.pipeline(transaction=False) as pipe:
                for job_id in ids:
                    pipe.hgetall(self._keys.job(job_id))
                found = await pipe.execute()
            for job_id, fields in zip(ids, found, strict=True):
                if fields:
                    jobs.append(Job.from_hash(fields))
                else:
                    await self._forget(job_id)  # expired: drop it from the indexes
                    offset -= 1
            offset += len(ids)
        more = await self._redis.zcard(index_key) > offset
        return jobs, str(offset) if more else ""

    async def _forget(self, job_id: str) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrem(self._keys.all_jobs, job_id)
            for state in JobState:
                pipe.zrem(self._keys.by_state(state.value), job_id)
            pipe.lrem(self._keys.dead_letters, 0, job_id)
            await pipe.execute()

    async def cancel(self, job_id: str) -> Job:
        """Cancel at once when queued; ask the worker to stop at its next step when running."""
        job, _ = await self.cancel_with_outcome(job_id)
        return job

    async def cancel_with_outcome(self, job_id: str) -> tuple[Job, bool]:
        """Like `cancel`; the flag is True when the job ended here (it was queued), False when a worker will end it."""
        job = await self.get(job_id)
        failed = events.encode(
            events.FAILED, {"state": JobState.CANCELLED.value, "code": "cancelled", "message": CANCEL_MESSAGE}
        )["data"]
        outcome = await self._cancel(
            keys=[
                self._keys.job(job.id),
                self._keys.delayed,
                self._keys.stream,
                self._keys.events(job.id),
                self._keys.checkpoint(job.id),
            ],
            args=[
                self._keys.by_state(""),
                job.id,
                now_ms(),
                self._retention,
                failed,
                self._keys.idempotency(""),
                WORKER_GROUP,
                CANCEL_MESSAGE,
            ],
        )
        if outcome == "missing":
            raise NotFound(f"job {job_id} does not exist (or has expired)")
        if outcome in (JobState.SUCCEEDED.value, JobState.FAILED.value, JobState.CANCELLED.value):
            raise FailedPrecondition(f"job {job_id} has already finished ({outcome}); it cannot be cancelled")
        return await self.get(job.id), outcome == "now_cancelled"

    async def dead_letters(self, limit: int = 100) -> list[str]:
        """Ids of failed jobs, newest first."""
        return [str(item) for item in await self._redis.lrange(self._keys.dead_letters, 0, limit - 1)]

    async def queue_depth(self) -> int:
        return int(await self._redis.zcard(self._keys.by_state(JobState.QUEUED.value)))
