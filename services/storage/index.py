"""The story index: which stories the library lists, kept as immutable files in the index group.

Files in the index group (`PINATA_INDEX_GROUP_NAME`, default `DREAMFORGE`):

- ``index-entry-<seq>.json``: one change (add a story, remove one, or a reindex mark),
  written once, never changed. ``seq`` is the change's sequence number.
- ``index-snapshot-<seq>.json``: every change up to ``seq`` folded into one document.
- ``index.txt``: the original app's index (lines ``groupId<TAB>title``); read, never touched.

The index is the newest readable snapshot plus the entries after it, in sequence order.

Writing (`StoryIndex.add` / `remove`): under a Redis lock, read the published sequence
number S from Redis, upload entry S+1, then publish S+1 with a compare-and-set that
only succeeds if the number is still S. A writer whose lock expired mid-commit loses
that race, and writes its entry again under a fresh number: two writers never both
"succeed" on one number, and its stray file only repeats its own (idempotent) change.
A commit uploads one small file, whatever the number of stories.

Compaction (off the commit path: a background task started after a commit once enough
entries pile up, one compactor at a time through a second Redis lock) writes a snapshot
of the published state, and only then removes the entries and older snapshots it folds.
A crash between the two leaves both; readers take the highest snapshot and ignore the
entries at or below it. There is never a moment without a readable index.

Reading: every replica keeps the folded index in memory. Before answering it compares
the sequence number in Redis with the one it has seen, and fetches just the missing
entries by name; anything unexpected (a gap, a new snapshot, Redis flushed) makes it
reload from the store, which is the source of truth. With Redis flushed, the number is
recovered as the highest one found in the store.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import hashlib
import io
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio

from services.common.errors import DataLoss, InvalidArgument, NotFound, Unavailable
from services.storage import keys
from services.storage.backends.base import FileRecord, FileStore
from services.storage.files import age_key, list_files, newest, our_keyvalues, read_small
from services.storage.legacy import INDEX_TXT, MAX_INDEX_TXT_BYTES, parse_index_txt, resolve_summary
from services.storage.metrics import StorageMetrics
from services.storage.models import StorySummary
from services.storage.redis_lock import RedisLock
from services.storage.timestamps import to_micros

log = logging.getLogger(__name__)

ENTRY_PREFIX = "index-entry-"
SNAPSHOT_PREFIX = "index-snapshot-"
_INDEX_FILE = re.compile(r"^index-(entry|snapshot)-(\d{1,18})\.json$")
MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024
MAX_ENTRY_BYTES = 1024 * 1024
# Beyond this many missing entries one listing of the group is cheaper than fetching each by name.
MAX_INCREMENTAL_ENTRIES = 32
MAX_FENCED_RETRIES = 5
MAX_LOAD_ATTEMPTS = 5
LEGACY_RESOLVE_CONCURRENCY = 8

ADD = "add"
REMOVE = "remove"
MARK = "mark"

# Compare-and-set of the published sequence number: the fence against a writer whose lock expired.
_PUBLISH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

StepHook = Callable[[str], Awaitable[None]]
Scan = Callable[[Mapping[str, str]], Awaitable[list[StorySummary]]]


def _parsed_name(record: FileRecord) -> tuple[str, int] | None:
    return parse_index_file_name(record.name)


def entry_name(seq: int) -> str:
    return f"{ENTRY_PREFIX}{seq:012d}.json"


def snapshot_name(seq: int) -> str:
    return f"{SNAPSHOT_PREFIX}{seq:012d}.json"


def parse_index_file_name(name: str) -> tuple[str, int] | None:
    """``("entry", 42)`` for ``index-entry-000000000042.json``; None for other names."""
    match = _INDEX_FILE.match(name)
    return (match.group(1), int(match.group(2))) if match else None


@dataclass(frozen=True)
class Entry:
    """One change to the index."""

    seq: int
    op: str
    story: StorySummary | None = None
    story_id: str = ""
    # For a removal: the story is listed in the original app's index.txt, so a tombstone must hide it.
    legacy: bool = False

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"seq": self.seq, "op": self.op}
        if self.op == ADD and self.story is not None:
            document["story"] = self.story.to_json()
        if self.op == REMOVE:
            document["story_id"] = self.story_id
            document["legacy"] = self.legacy
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Entry:
        op = str(document["op"])
        if op == ADD:
            story = StorySummary.from_json(document["story"])
            return cls(seq=int(document["seq"]), op=op, story=story, story_id=story.story_id)
        if op == REMOVE:
            return cls(
                seq=int(document["seq"]),
                op=op,
                story_id=str(document["story_id"]),
                legacy=bool(document.get("legacy", False)),
            )
        if op == MARK:
            return cls(seq=int(document["seq"]), op=op)
        raise ValueError(f"unknown index operation {op!r}")


@dataclass
class IndexState:
    """The index folded up to `seq`. Pure data: applying entries and (de)serialising, no I/O."""

    seq: int = 0
    stories: dict[str, StorySummary] = field(default_factory=dict)
    # Stories of index.txt that were deleted: index.txt itself is never changed.
    tombstones: set[str] = field(default_factory=set)
    # The index.txt (by CID) that `legacy` was resolved from, and its resolved rows (None: group gone).
    legacy_source: str | None = None
    legacy: dict[str, StorySummary | None] = field(default_factory=dict)

    def apply(self, entry: Entry) -> None:
        if entry.op == ADD and entry.story is not None:
            self.stories[entry.story.story_id] = entry.story
            self.tombstones.discard(entry.story.story_id)
        elif entry.op == REMOVE:
            self.stories.pop(entry.story_id, None)
            if entry.legacy:
                self.tombstones.add(entry.story_id)
        self.seq = max(self.seq, entry.seq)

    def copy(self) -> IndexState:
        return IndexState(
            seq=self.seq,
            stories=dict(self.stories),
            tombstones=set(self.tombstones),
            legacy_source=self.legacy_source,
            legacy=dict(self.legacy),
        )

    def lookup(self, story_id: str) -> StorySummary | None:
        found = self.stories.get(story_id)
        if found is not None or story_id in self.tombstones:
            return found
        return self.legacy.get(story_id)

    def visible(self) -> dict[str, StorySummary]:
        """Every listed story by id: ours, then the original app's that are neither ours nor deleted."""
        rows = dict(self.stories)
        for story_id, summary in self.legacy.items():
            if summary is not None and story_id not in rows and story_id not in self.tombstones:
                rows[story_id] = summary
        return rows

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "stories": [s.to_json() for s in self.stories.values()],
            "tombstones": sorted(self.tombstones),
            "legacy": {
                "source": self.legacy_source,
                "stories": [s.to_json() for s in self.legacy.values() if s is not None],
                "missing": sorted(k for k, v in self.legacy.items() if v is None),
            },
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> IndexState:
        legacy_doc = document.get("legacy") or {}
        legacy: dict[str, StorySummary | None] = {}
        for row in legacy_doc.get("stories") or ():
            summary = StorySummary.from_json(row)
            legacy[summary.story_id] = summary
        for story_id in legacy_doc.get("missing") or ():
            legacy[str(story_id)] = None
        stories = (StorySummary.from_json(row) for row in document.get("stories") or ())
        return cls(
            seq=int(document["seq"]),
            stories={s.story_id: s for s in stories},
            tombstones={str(t) for t in document.get("tombstones") or ()},
            legacy_source=legacy_doc.get("source"),
            legacy=legacy,
        )


def _sort_key(summary: StorySummary) -> tuple[int, str]:
    return (to_micros(summary.created_at), summary.story_id)


def _query_tag(query: str) -> str:
    return hashlib.sha256(query.casefold().encode()).hexdigest()[:12]


def encode_page_token(summary: StorySummary, query: str) -> str:
    """Opaque: where the next page starts (just after this story in newest-first order), for this query."""
    micros, story_id = _sort_key(summary)
    raw = json.dumps({"v": 1, "t": micros, "i": story_id, "q": _query_tag(query)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(token: str, query: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        document = json.loads(raw)
        key = (int(document["t"]), str(document["i"]))
        tag = str(document["q"])
        if document.get("v") != 1:
            raise ValueError("version")
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument("page_token is not one this service issued; start again without it") from None
    if tag != _query_tag(query):
        raise InvalidArgument("page_token was issued for a different query; start again without it")
    return key


class _Listing:
    """Visible stories sorted oldest first (so bisect works); pages walk it backwards."""

    def __init__(self, rows: Iterable[StorySummary]) -> None:
        self.rows = sorted(rows, key=_sort_key)
        self.keys = [_sort_key(row) for row in self.rows]


class StoryIndex:
    """The index as one replica sees it, and the only code that writes it."""

    def __init__(
        self,
        store: FileStore,
        client: redis.asyncio.Redis,
        *,
        group_name: str = "DREAMFORGE",
        metrics: StorageMetrics | None = None,
        lock_ttl_ms: int = 15_000,
        lock_wait_seconds: float = 30.0,
        compact_every: int = 64,
        compaction_lock_ttl_ms: int = 120_000,
        reindex_lock_ttl_ms: int = 600_000,
        on_step: StepHook | None = None,
    ) -> None:
        self._store = store
        self._redis = client
        self.group_name = group_name
        self._metrics = metrics or StorageMetrics()
        self._lock_ttl_ms = lock_ttl_ms
        self._lock_wait_seconds = lock_wait_seconds
        self.compact_every = compact_every
        self._compaction_lock_ttl_ms = compaction_lock_ttl_ms
        self._reindex_lock_ttl_ms = reindex_lock_ttl_ms
        self._on_step = on_step
        self._publish = client.register_script(_PUBLISH)
        self._group_id: str | None = None
        self._state = IndexState()
        self._synced: int | None = None  # the published number `_state` reflects; None: never loaded
        self._snapshot_seq = 0  # highest snapshot this replica knows of
        self._listing: _Listing | None = None
        self._ready_lock = asyncio.Lock()
        self._refresh_lock = asyncio.Lock()
        self._append_lock = asyncio.Lock()
        self._compaction: asyncio.Task[None] | None = None

    # -- the index group ------------------------------------------------------------------------

    async def group_id(self) -> str:
        """The index group's id: the oldest group with exactly the configured name, created when missing."""
        if self._group_id is not None:
            return self._group_id
        async with self._ready_lock:
            if self._group_id is None:
                self._group_id = await self._find_or_create_group()
                log.info("index group %s (%s)", self.group_name, self._group_id)
            return self._group_id

    async def _find_or_create_group(self) -> str:
        groups = await self._store.find_groups(self.group_name)
        if not groups:
            creation = RedisLock(
                self._redis, keys.index_group_creation(self.group_name), ttl_ms=30_000, wait_seconds=60.0
            )
            async with creation.held():
                groups = await self._store.find_groups(self.group_name)
                if not groups:
                    created = await self._store.create_group(self.group_name)
                    log.info("created the index group %s (%s)", self.group_name, created.id)
                    groups = await self._store.find_groups(self.group_name) or [created]
        # Several (a race, or someone else's) are possible: everyone picks the same, the oldest.
        return min(groups, key=lambda g: (g.created_at, g.id)).id

    # -- reading --------------------------------------------------------------------------------

    async def get(self, story_id: str) -> StorySummary | None:
        """The listed story with this id (ours or the original app's), or None."""
        await self.refresh()
        return self._state.lookup(story_id)

    async def is_tombstoned(self, story_id: str) -> bool:
        """True for a story of index.txt that was deleted."""
        await self.refresh()
        return story_id in self._state.tombstones

    async def page(self, page_size: int, page_token: str, query: str) -> tuple[list[StorySummary], str]:
        """Up to `page_size` stories newest first whose title contains `query` (any case), and the next token.

        The token names the last story returned, so stories added meanwhile (newer) do not shift later pages.
        """
        start_key = decode_page_token(page_token, query) if page_token else None
        await self.refresh()
        listing = self._listing_now()
        position = len(listing.rows) if start_key is None else bisect.bisect_left(listing.keys, start_key)
        needle = query.casefold()
        found: list[StorySummary] = []
        has_more = False
        for row in reversed(listing.rows[:position]):
            if needle and needle not in row.title.casefold():
                continue
            if len(found) == page_size:
                has_more = True
                break
            found.append(row)
        next_token = encode_page_token(found[-1], query) if has_more else ""
        return found, next_token

    def _listing_now(self) -> _Listing:
        if self._listing is None:
            self._listing = _Listing(self._state.visible().values())
        return self._listing

    def _install(self, state: IndexState, synced: int | None) -> None:
        self._state = state
        self._synced = synced
        self._listing = None

    async def _published(self) -> int | None:
        value = await self._redis.get(keys.index_seq(await self.group_id()))
        return None if value is None else int(value)

    async def refresh(self) -> None:
        """Bring the in-memory index up to the published state: usually one Redis GET and nothing else."""
        published = await self._published()
        if published is not None and published == self._synced:
            return
        async with self._refresh_lock:
            published = await self._published()
            synced = self._synced
            if published is not None and published == synced:
                return
            if published is None:
                # Redis lost its data (flushed, or a new server): the store is the truth. Whatever number
                # Redis holds afterwards, this state reflects `highest`; a difference is caught up next time.
                state, highest = await self._load_from_store()
                await self._redis.set(keys.index_seq(await self.group_id()), highest, nx=True)
                self._install_if_unchanged(synced, state, highest)
                return
            if synced is not None and synced < published <= synced + MAX_INCREMENTAL_ENTRIES:
                entries = await self._fetch_entries(range(synced + 1, published + 1))
                if entries is not None:
                    state = self._state.copy()
                    for entry in entries:
                        state.apply(entry)
                    self._install_if_unchanged(synced, state, published)
                    self._metrics.index_reloads.labels("incremental").inc()
                    return
            # `published` was read before the files were listed, so every entry up to it is in the listing.
            state, _ = await self._load_from_store()
            self._install_if_unchanged(synced, state, published)

    def _install_if_unchanged(self, synced: int | None, state: IndexState, new_synced: int) -> None:
        """Install what a refresh built, unless a commit of this replica moved the state on meanwhile."""
        if self._synced == synced:
            self._install(state, new_synced)

    async def _fetch_entries(self, seqs: Iterable[int]) -> list[Entry] | None:
        """The entries with these numbers, in order; None when one has no file (compacted away, or a gap)."""
        group_id = await self.group_id()
        entries: list[Entry] = []
        for seq in seqs:
            records = await list_files(self._store, group_id, name=entry_name(seq))
            if not records:
                return None
            for record in sorted(records, key=age_key):
                try:
                    entry = await self._read_entry(record)
                except NotFound:
                    return None
                if entry is not None:
                    entries.append(entry)
        return entries

    async def _read_entry(self, record: FileRecord) -> Entry | None:
        """The entry, or None when it is unreadable; NotFound when it is gone (compacted since it was listed)."""
        try:
            return Entry.from_json(json.loads(await read_small(self._store, record, limit=MAX_ENTRY_BYTES)))
        except (DataLoss, ValueError, KeyError, TypeError) as exc:
            # Files appear whole (atomic uploads), so this is damage from outside; skip it loudly.
            log.error("index entry %s (%s) is unreadable and skipped: %s", record.name, record.cid, exc)
            return None

    async def _index_files(self) -> list[tuple[str, int, FileRecord]]:
        files = await list_files(self._store, await self.group_id())
        found = []
        for record in files:
            parsed = parse_index_file_name(record.name)
            if parsed is not None:
                found.append((parsed[0], parsed[1], record))
        return found

    async def _load_from_store(self) -> tuple[IndexState, int]:
        """The index from its files alone (newest readable snapshot + later entries), and the highest number seen.

        Listing and reading are not one atomic step: a compaction elsewhere may write a snapshot and
        delete the entries it folds in between. It writes the snapshot first, so a listing taken after
        the reads shows a newer snapshot whenever that happened, and the load starts again from it.
        """
        group_id = await self.group_id()
        for _attempt in range(MAX_LOAD_ATTEMPTS):
            records = await list_files(self._store, group_id)
            state, base, highest = await self._fold_listing(records)
            again = await list_files(self._store, group_id)
            if not any(p[0] == "snapshot" and p[1] > base for p in map(_parsed_name, again) if p is not None):
                break
            log.info("the index was compacted while it was being read; reading it again")
        await self._resolve_legacy(state, newest(r for r in records if r.name == INDEX_TXT))
        self._metrics.index_reloads.labels("full").inc()
        return state, highest

    async def _fold_listing(self, records: list[FileRecord]) -> tuple[IndexState, int, int]:
        """The state the listed files hold, the snapshot number it starts from, and the highest number listed."""
        snapshots: list[tuple[int, FileRecord]] = []
        entries: list[tuple[int, FileRecord]] = []
        for record in records:
            parsed = parse_index_file_name(record.name)
            if parsed is not None:
                (snapshots if parsed[0] == "snapshot" else entries).append((parsed[1], record))
        state: IndexState | None = None
        for seq, record in sorted(snapshots, key=lambda item: (item[0], age_key(item[1])), reverse=True):
            try:
                data = await read_small(self._store, record, limit=MAX_SNAPSHOT_BYTES)
                state = IndexState.from_json(json.loads(data))
                self._snapshot_seq = max(self._snapshot_seq, seq)
                break
            except NotFound:
                continue  # superseded and removed since the listing: the caller's second look will see why
            except (DataLoss, ValueError, KeyError, TypeError) as exc:
                log.error("index snapshot %s is unreadable, trying an older one: %s", record.name, exc)
        if state is None:
            state = IndexState()
        base = state.seq
        for _seq, record in sorted((e for e in entries if e[0] > base), key=lambda item: (item[0], age_key(item[1]))):
            try:
                entry = await self._read_entry(record)
            except NotFound:
                continue  # compacted away since the listing: the caller's second look sees the snapshot
            if entry is not None:
                state.apply(entry)
        highest = max((seq for seq, _ in (*snapshots, *entries)), default=0)
        return state, base, max(highest, state.seq)

    async def _resolve_legacy(self, state: IndexState, record: FileRecord | None) -> None:
        """Fill `state.legacy` from index.txt; only lines not resolved before cost a look at their group."""
        if record is None:
            state.legacy_source, state.legacy = None, {}
            return
        if record.cid == state.legacy_source:
            return
        titles = parse_index_txt(await read_small(self._store, record, limit=MAX_INDEX_TXT_BYTES))
        resolved = {k: v for k, v in state.legacy.items() if k in titles}
        pending = [story_id for story_id in titles if story_id not in resolved]
        limit = asyncio.Semaphore(LEGACY_RESOLVE_CONCURRENCY)

        async def resolve(story_id: str) -> None:
            async with limit:
                resolved[story_id] = await resolve_summary(self._store, story_id, titles[story_id])

        await asyncio.gather(*(resolve(story_id) for story_id in pending))
        state.legacy = {story_id: resolved[story_id] for story_id in titles}
        state.legacy_source = record.cid
        if pending:
            log.info("read %d stories of the original app's index.txt", len(pending))
            # Persist the resolved rows in a snapshot so other replicas and restarts need not look again.
            self._schedule_compaction(force=True)

    # -- writing --------------------------------------------------------------------------------

    async def add(self, summary: StorySummary) -> int:
        """List the story (again, with this summary); returns the entry's sequence number."""
        return await self._append(lambda seq: Entry(seq=seq, op=ADD, story=summary, story_id=summary.story_id))

    async def remove(self, story_id: str) -> int:
        """Stop listing the story; a story of index.txt gets a tombstone."""
        await self.refresh()
        legacy = story_id in self._state.legacy
        return await self._append(lambda seq: Entry(seq=seq, op=REMOVE, story_id=story_id, legacy=legacy))

    async def _step(self, name: str) -> None:
        if self._on_step is not None:
            await self._on_step(name)

    async def _append(self, make: Callable[[int], Entry]) -> int:
        group_id = await self.group_id()
        lock = RedisLock(
            self._redis, keys.index_lock(group_id), ttl_ms=self._lock_ttl_ms, wait_seconds=self._lock_wait_seconds
        )
        async with self._append_lock:  # one writer per process queues here, not on the Redis lock
            for _attempt in range(MAX_FENCED_RETRIES):
                async with lock.held():
                    current = await self._published_for_writer()
                    entry = make(current + 1)
                    await self._upload_json(entry_name(entry.seq), entry.to_json(), "index-entry")
                    await self._step("entry-uploaded")
                    published = bool(await self._publish(keys=[keys.index_seq(group_id)], args=[current, entry.seq]))
                if published:
                    break
                self._metrics.index_fenced.inc()
                log.warning("index entry %d fenced off (lock expired, another writer published); retrying", entry.seq)
            else:
                raise Unavailable(f"could not publish an index change after {MAX_FENCED_RETRIES} attempts; retry")
        if self._synced == current:
            state = self._state.copy()
            state.apply(entry)
            self._install(state, entry.seq)
        self._metrics.index_entries.labels(entry.op).inc()
        if entry.seq - self._snapshot_seq >= self.compact_every:
            self._schedule_compaction()
        return entry.seq

    async def _published_for_writer(self) -> int:
        value = await self._published()
        if value is None:
            _, highest = await self._load_from_store()
            await self._redis.set(keys.index_seq(await self.group_id()), highest, nx=True)
            value = await self._published()
            if value is None:
                raise Unavailable("the index sequence number vanished from Redis while it was being recovered")
        return value

    async def _upload_json(self, name: str, document: Mapping[str, Any], kind: str) -> FileRecord:
        data = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        return await self._store.upload(
            await self.group_id(),
            name,
            io.BytesIO(data),
            size=len(data),
            content_type="application/json",
            keyvalues=our_keyvalues(kind),
        )

    # -- compaction and reindex -----------------------------------------------------------------

    def _schedule_compaction(self, *, force: bool = False) -> None:
        if self._compaction is not None and not self._compaction.done():
            return
        self._compaction = asyncio.get_running_loop().create_task(self._compact_in_background(force=force))

    async def _compact_in_background(self, *, force: bool) -> None:
        try:
            await self.compact(force=force, only_if_due=not force)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The next commit tries again; the index stays correct without compaction.
            log.exception("index compaction failed")

    async def compact(self, *, force: bool = False, only_if_due: bool = False) -> bool:
        """Fold the published entries into a snapshot, then remove what it folds; False when nothing was done.

        `force` writes a snapshot even at a number that has one (to store resolved legacy rows);
        `only_if_due` skips the work unless `compact_every` entries followed the newest snapshot in
        the store (another replica may have compacted since this one last looked) or files that
        snapshot folds are still there.
        """
        group_id = await self.group_id()
        lock = RedisLock(
            self._redis, keys.compaction_lock(group_id), ttl_ms=self._compaction_lock_ttl_ms, wait_seconds=0
        )
        token = await lock.try_acquire()
        if token is None:
            return False  # another replica is at it
        try:
            await self.refresh()
            published = self._synced
            if published is None or (published <= self._snapshot_seq and not force):
                return False
            state = self._state.copy()
            state.seq = published
            files = await self._index_files()
            stored = max((seq for kind, seq, _ in files if kind == "snapshot"), default=0)
            self._snapshot_seq = max(self._snapshot_seq, stored)
            # Files a snapshot already folds are left over from a compaction that failed half-way.
            leftovers = any(seq < stored or (kind == "entry" and seq == stored) for kind, seq, _ in files)
            if only_if_due and published - stored < self.compact_every and not leftovers:
                return False
            if force or not any(kind == "snapshot" and seq >= published for kind, seq, _ in files):
                written = await self._upload_json(snapshot_name(published), state.to_json(), "index-snapshot")
                await self._step("snapshot-uploaded")
                files.append(("snapshot", published, written))
            await self._remove_folded(files, published)
            self._snapshot_seq = max(self._snapshot_seq, published)
            self._metrics.index_compactions.labels("compaction").inc()
            log.info("index compacted at entry %d (%d stories)", published, len(state.stories))
            return True
        finally:
            await lock.release(token)

    async def _remove_folded(self, files: list[tuple[str, int, FileRecord]], snapshot_seq: int) -> None:
        """Delete entries at or below the snapshot and every older snapshot: only after the snapshot is stored.

        Of several snapshots with the snapshot's number (two compactors, or a forced one), the newest stays.
        """
        keep = newest(record for kind, seq, record in files if kind == "snapshot" and seq == snapshot_seq)
        for kind, seq, record in files:
            folded = kind == "entry" and seq <= snapshot_seq
            superseded = kind == "snapshot" and seq <= snapshot_seq and record is not keep
            if folded or superseded:
                await self._store.delete_file(record)  # already gone is fine

    async def reindex(self, scan: Scan) -> int:
        """Rebuild the index from the story groups (`scan`), keep index.txt's tombstones; returns the story count.

        Changes committed while the scan runs are kept: a mark entry closes the scan, and
        every entry published between the start and the mark is applied on top of it.
        """
        group_id = await self.group_id()
        lock = RedisLock(
            self._redis,
            keys.compaction_lock(group_id),
            ttl_ms=self._reindex_lock_ttl_ms,
            wait_seconds=self._lock_wait_seconds,
        )
        async with lock.held():
            self._synced = None  # a full reload: index.txt may have changed
            await self.refresh()
            start = self._synced or 0
            before = self._state.copy()
            titles = {k: v.title for k, v in before.legacy.items() if v is not None}
            found = await scan(titles)
            mark = await self._append(lambda seq: Entry(seq=seq, op=MARK))
            state = IndexState(
                seq=mark,
                stories={s.story_id: s for s in found if s.story_id not in before.tombstones},
                tombstones=set(before.tombstones),
                legacy_source=before.legacy_source,
                legacy=dict(before.legacy),
            )
            for seq in range(start + 1, mark):
                entries = await self._fetch_entries([seq])
                if entries is None:
                    log.warning("index entry %d is missing while reindexing; the scan stands in for it", seq)
                    continue
                for entry in entries:
                    state.apply(entry)
            state.seq = mark
            await self._upload_json(snapshot_name(mark), state.to_json(), "index-snapshot")
            await self._step("snapshot-uploaded")
            await self._remove_folded(await self._index_files(), mark)
            self._snapshot_seq = max(self._snapshot_seq, mark)
            self._install(state, mark if self._synced == mark else None)
            self._metrics.index_compactions.labels("reindex").inc()
            count = len(state.visible())
            log.info("reindexed: %d stories (snapshot at entry %d)", count, mark)
            return count

    async def aclose(self) -> None:
        """Let a running compaction finish (it is short), so a stop never leaves one half done needlessly."""
        task = self._compaction
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=10.0)
            except asyncio.TimeoutError:
                task.cancel()
