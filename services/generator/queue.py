"""The worker side of the job queue: claim, keep, finish, retry, hand back; all against one Redis stream.

Jobs wait in a stream read by the consumer group `workers`. A worker claims an
entry with `XREADGROUP` (new ones) or `XAUTOCLAIM` (entries whose holder stopped
renewing them for the visibility timeout: a crashed worker). While it runs a job
it renews its claim with `XCLAIM ... JUSTID` under a lease token kept in the job
hash, so a slow but alive job is never stolen and a stalled worker learns it lost
the job. Entries are acknowledged only when the job ends (story committed,
failed, cancelled) or moves to the delayed set to retry later.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from services.generator import events
from services.generator.jobs import LUA_SET_STATE, Job, JobState, JobStore, now_ms
from services.generator.keys import WORKER_GROUP, Keys

log = logging.getLogger(__name__)

# KEYS: job. ARGV: state prefix, job id, lease, now ms, entry id
_CLAIM = (
    LUA_SET_STATE
    + """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'gone', 0} end
if state == 'succeeded' or state == 'failed' or state == 'cancelled' then return {'finished', 0} end
local entry = redis.call('HGET', KEYS[1], 'entry_id')
if entry ~= ARGV[5] then return {'stale', 0} end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
set_state(KEYS[1], ARGV[1], ARGV[2], 'running')
redis.call('HSET', KEYS[1], 'lease', ARGV[3], 'updated_ms', ARGV[4])
return {'ok', attempts}
"""
)

# KEYS: job, stream. ARGV: group, consumer, entry id, lease. Returns -1 (lease lost), else the cancel flag.
_EXTEND = """
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[4] then return -1 end
redis.call('XCLAIM', KEYS[2], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return tonumber(redis.call('HGET', KEYS[1], 'cancel_requested') or '0')
"""

# KEYS: job, stream, events, checkpoint, dead letters
# ARGV: state prefix, job id, group, entry id, lease, new state, now ms, retention s, event kind, event data,
#       idempotency prefix, then hash field/value pairs
_FINISH = (
    LUA_SET_STATE
    + """
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[5] then return 0 end
set_state(KEYS[1], ARGV[1], ARGV[2], ARGV[6])
for i = 12, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'lease', '', 'entry_id', '', 'updated_ms', ARGV[7], 'finished_ms', ARGV[7])
redis.call('XACK', KEYS[2], ARGV[3], ARGV[4])
redis.call('XDEL', KEYS[2], ARGV[4])
redis.call('XADD', KEYS[3], '*', 'kind', ARGV[9], 'data', ARGV[10], 'time', ARGV[7])
redis.call('EXPIRE', KEYS[1], ARGV[8])
redis.call('EXPIRE', KEYS[3], ARGV[8])
redis.call('DEL', KEYS[4])
local idem = redis.call('HGET', KEYS[1], 'idempotency_key')
if idem and idem ~= '' then redis.call('EXPIRE', ARGV[11] .. idem, ARGV[8]) end
if ARGV[6] == 'failed' then
  redis.call('LPUSH', KEYS[5], ARGV[2])
  redis.call('LTRIM', KEYS[5], 0, 9999)
end
return 1
"""
)

# KEYS: job, stream, delayed, events
# ARGV: state prefix, job id, group, entry id, lease, now ms, due (s), event data, then hash field/value pairs
_RETRY_LATER = (
    LUA_SET_STATE
    + """
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[5] then return 0 end
set_state(KEYS[1], ARGV[1], ARGV[2], 'queued')
for i = 9, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'lease', '', 'entry_id', '', 'updated_ms', ARGV[6])
redis.call('XACK', KEYS[2], ARGV[3], ARGV[4])
redis.call('XDEL', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[7], ARGV[2])
redis.call('XADD', KEYS[4], '*', 'kind', 'progress', 'data', ARGV[8], 'time', ARGV[6])
return 1
"""
)

# KEYS: job, stream, events. ARGV: state prefix, job id, group, entry id, lease, now ms, event data
_HAND_BACK = (
    LUA_SET_STATE
    + """
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[5] then return 0 end
set_state(KEYS[1], ARGV[1], ARGV[2], 'queued')
redis.call('HINCRBY', KEYS[1], 'attempts', -1)
redis.call('XACK', KEYS[2], ARGV[3], ARGV[4])
redis.call('XDEL', KEYS[2], ARGV[4])
local entry = redis.call('XADD', KEYS[2], '*', 'job_id', ARGV[2])
redis.call('HSET', KEYS[1], 'lease', '', 'entry_id', entry, 'stage', 'queued', 'updated_ms', ARGV[6])
redis.call('XADD', KEYS[3], '*', 'kind', 'progress', 'data', ARGV[7], 'time', ARGV[6])
return 1
"""
)

# KEYS: delayed, stream. ARGV: now (s), job key prefix, limit. Moves due retries back onto the stream.
_PROMOTE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local key = ARGV[2] .. id
  if redis.call('HGET', key, 'state') == 'queued' then
    local entry = redis.call('XADD', KEYS[2], '*', 'job_id', id)
    redis.call('HSET', key, 'entry_id', entry)
  end
end
return #ids
"""


@dataclass(frozen=True)
class Claim:
    """A job this worker holds: the stream entry, the lease token, and which attempt this is."""

    job: Job
    entry_id: str
    lease: str
    attempt: int
    reclaimed: bool


class LeaseLostError(RuntimeError):
    pass


class JobQueue:
    """Claiming and ending jobs for one worker process (`consumer` names it in the group)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        store: JobStore,
        *,
        consumer: str,
        visibility_timeout: float,
        retention_seconds: int,
    ) -> None:
        self._redis: Any = redis  # redis-py's types do not know decode_responses=True
        self._store = store
        self._keys: Keys = store.keys
        self.consumer = consumer
        self._visibility_ms = int(visibility_timeout * 1000)
        self._retention = retention_seconds
        self._claim = redis.register_script(_CLAIM)
        self._extend = redis.register_script(_EXTEND)
        self._finish = redis.register_script(_FINISH)
        self._retry_later = redis.register_script(_RETRY_LATER)
        self._hand_back = redis.register_script(_HAND_BACK)
        self._promote = redis.register_script(_PROMOTE)
        self._lease_counter = 0

    async def ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self._keys.stream, WORKER_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def promote_due(self, limit: int = 100) -> int:
        """Put retries whose time has come back on the stream; safe to run from every worker."""
        return int(
            await self._promote(
                keys=[self._keys.delayed, self._keys.stream], args=[time.time(), self._keys.job(""), limit]
            )
        )

    async def next_job(self, block_ms: int) -> Claim | None:
        """A reclaimed job whose worker died, else a new one (waiting up to ``block_ms``), else None."""
        await self.promote_due()
        reclaimed = await self._redis.xautoclaim(
            self._keys.stream, WORKER_GROUP, self.consumer, self._visibility_ms, start_id="0-0", count=1
        )
        entries = reclaimed[1] if reclaimed else []
        if entries:
            entry_id, fields = entries[0]
            if fields is None:  # the entry was deleted while pending
                await self._redis.xack(self._keys.stream, WORKER_GROUP, entry_id)
                return None
            return await self._take(entry_id, fields, reclaimed=True)
        replies = await self._redis.xreadgroup(
            WORKER_GROUP, self.consumer, {self._keys.stream: ">"}, count=1, block=block_ms
        )
        for _stream, stream_entries in replies or []:
            for entry_id, fields in stream_entries:
                return await self._take(entry_id, fields, reclaimed=False)
        return None

    async def _take(self, entry_id: str, fields: dict[str, str], *, reclaimed: bool) -> Claim | None:
        job_id = fields.get("job_id", "")
        self._lease_counter += 1
        lease = f"{self.consumer}#{self._lease_counter}"
        outcome, attempt = await self._claim(
            keys=[self._keys.job(job_id)], args=[self._keys.by_state(""), job_id, lease, now_ms(), entry_id]
        )
        if outcome != "ok":
            # Finished, expired, cancelled while queued, or an old entry of a job re-enqueued since.
            log.info("dropping stream entry %s of job %s (%s)", entry_id, job_id, outcome)
            await self._redis.xack(self._keys.stream, WORKER_GROUP, entry_id)
            await self._redis.xdel(self._keys.stream, entry_id)
            return None
        job = await self._store.get(job_id)
        return Claim(job=job, entry_id=entry_id, lease=lease, attempt=int(attempt), reclaimed=reclaimed)

    async def extend(self, claim: Claim) -> bool:
        """Renew the claim; True when a client asked to cancel. `LeaseLostError` if another worker took it."""
        result = await self._extend(
            keys=[self._keys.job(claim.job.id), self._keys.stream],
            args=[WORKER_GROUP, self.consumer, claim.entry_id, claim.lease],
        )
        if int(result) < 0:
            raise LeaseLostError(f"job {claim.job.id} was reclaimed by another worker")
        return int(result) == 1

    async def cancel_requested(self, job_id: str) -> bool:
        return await self._redis.hget(self._keys.job(job_id), "cancel_requested") == "1"

    async def finish(
        self,
        claim: Claim,
        state: JobState,
        *,
        event_kind: str,
        event_data: dict[str, object],
        fields: dict[str, str],
    ) -> bool:
        """End the job (SUCCEEDED, FAILED or CANCELLED): record, acknowledge, expire later; False if not ours."""
        flat = [item for pair in fields.items() for item in pair]
        done = await self._finish(
            keys=[
                self._keys.job(claim.job.id),
                self._keys.stream,
                self._keys.events(claim.job.id),
                self._keys.checkpoint(claim.job.id),
                self._keys.dead_letters,
            ],
            args=[
                self._keys.by_state(""),
                claim.job.id,
                WORKER_GROUP,
                claim.entry_id,
                claim.lease,
                state.value,
                now_ms(),
                self._retention,
                event_kind,
                events.encode(event_kind, event_data)["data"],
                self._keys.idempotency(""),
                *flat,
            ],
        )
        return bool(done)

    async def retry_later(
        self, claim: Claim, delay: float, event_data: dict[str, object], fields: dict[str, str]
    ) -> bool:
        flat = [item for pair in fields.items() for item in pair]
        done = await self._retry_later(
            keys=[self._keys.job(claim.job.id), self._keys.stream, self._keys.delayed, self._keys.events(claim.job.id)],
            args=[
                self._keys.by_state(""),
                claim.job.id,
                WORKER_GROUP,
                claim.entry_id,
                claim.lease,
                now_ms(),
                time.time() + delay,
                events.encode(events.PROGRESS, event_data)["data"],
                *flat,
            ],
        )
        return bool(done)

    async def hand_back(self, claim: Claim, event_data: dict[str, object]) -> bool:
        """Give a running job back to the queue at once (shutdown), without counting the attempt."""
        done = await self._hand_back(
            keys=[self._keys.job(claim.job.id), self._keys.stream, self._keys.events(claim.job.id)],
            args=[
                self._keys.by_state(""),
                claim.job.id,
                WORKER_GROUP,
                claim.entry_id,
                claim.lease,
                now_ms(),
                events.encode(events.PROGRESS, event_data)["data"],
            ],
        )
        return bool(done)

    async def set_progress(self, job_id: str, fields: dict[str, str]) -> None:
        await self._redis.hset(self._keys.job(job_id), mapping={**fields, "updated_ms": str(now_ms())})

    async def has_work(self) -> bool:
        """True while anything is queued, delayed or held by a worker (burst mode runs until this is False)."""
        if await self._redis.zcard(self._keys.delayed):
            return True
        return bool(await self._redis.xlen(self._keys.stream))
