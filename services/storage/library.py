"""Stories on top of a `FileStore` and the index: drafts, assets, commits, reads, deletes and reindex.

A story is a group. From CreateStory until CommitStory it is a *draft*: its assets can
be stored and read, but it is not listed and GetStory says it is not committed yet.
CommitStory writes `story.json` and then adds the story to the index; the index entry
is what makes it committed for readers, so a crash between the two leaves a draft that
a repeated commit finishes. DeleteStory removes the index entry first (the story is
gone for readers at once), then the manifest, the other files and the group.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from typing import IO

import redis.asyncio

from services.common.errors import DataLoss, FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from services.common.logs import preview
from services.storage import keys, manifest
from services.storage.backends.base import FileRecord, FileStore, GroupRecord
from services.storage.cid import digest_from_cid
from services.storage.files import age_key, current_by_name, list_files, newest, our_keyvalues, read_small
from services.storage.index import StoryIndex
from services.storage.legacy import is_legacy_group, legacy_summary, rebuild_manifest
from services.storage.models import AssetRef, Manifest, Part, StoryFormat, StorySummary
from services.storage.names import (
    MANIFEST_NAME,
    check_asset_name,
    check_client_token,
    check_content_type,
    check_query,
    check_story_id,
    check_title,
    natural_key,
)
from services.storage.timestamps import utc_now

log = logging.getLogger(__name__)

DEFAULT_MAX_ASSET_BYTES = 50 * 1024 * 1024
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
SPOOL_MEMORY_BYTES = 1024 * 1024
DRAFT_TOKEN_TTL_SECONDS = 7 * 24 * 3600
SCAN_CONCURRENCY = 8
MANIFEST_CONTENT_TYPE = "application/json"

StepHook = Callable[[str], Awaitable[None]]


class Library:
    """Every storage operation, in domain terms (the gRPC servicer only translates)."""

    def __init__(
        self,
        store: FileStore,
        index: StoryIndex,
        client: redis.asyncio.Redis,
        *,
        max_asset_bytes: int = DEFAULT_MAX_ASSET_BYTES,
        draft_token_ttl_seconds: int = DRAFT_TOKEN_TTL_SECONDS,
        on_step: StepHook | None = None,
    ) -> None:
        self._store = store
        self.index = index
        self._redis = client
        self.max_asset_bytes = max_asset_bytes
        self._draft_token_ttl = draft_token_ttl_seconds
        self._on_step = on_step

    async def _step(self, name: str) -> None:
        if self._on_step is not None:
            await self._on_step(name)

    async def _story_files(self, story_id: str, name: str | None = None) -> list[FileRecord]:
        """The story's files; NotFound like `_story_group`. The group is looked at only when no file is found."""
        if story_id == await self.index.group_id():
            raise NotFound(f"no story {story_id}")
        files = await list_files(self._store, story_id, name=name)
        if not files:
            await self._story_group(story_id)
        return files

    async def _story_group(self, story_id: str) -> GroupRecord:
        """The story's group; NotFound for unknown ids and for the index group (it is not a story)."""
        if story_id == await self.index.group_id():
            raise NotFound(f"no story {story_id}")
        try:
            return await self._store.get_group(story_id)
        except NotFound:
            raise NotFound(f"no story {story_id}") from None

    # -- drafts ---------------------------------------------------------------------------------

    async def create_story(self, title: str, client_token: str = "") -> tuple[str, bool]:
        """A new draft named after `title`; with a `client_token` seen before, that draft (created=False)."""
        title = check_title(title)
        token = check_client_token(client_token)
        token_key = keys.draft_token(await self.index.group_id(), token) if token else None
        stale = False
        if token_key is not None:
            existing = await self._redis.get(token_key)
            if existing is not None:
                story_id = existing.decode() if isinstance(existing, bytes) else str(existing)
                try:
                    await self._store.get_group(story_id)
                    return story_id, False
                except NotFound:
                    stale = True  # that draft was deleted: the token starts a new one
        group = await self._store.create_group(title)
        # NX so two calls racing with one token end with one draft; a stale token is overwritten.
        if token_key is not None and not await self._redis.set(
            token_key, group.id, ex=self._draft_token_ttl, nx=not stale
        ):
            winner = await self._redis.get(token_key)
            if winner is not None:
                await self._store.delete_group(group.id)
                return (winner.decode() if isinstance(winner, bytes) else str(winner)), False
            await self._redis.set(token_key, group.id, ex=self._draft_token_ttl)
        log.info("created draft %s %r", group.id, preview(title))
        return group.id, True

    async def put_asset(self, story_id: str, name: str, content_type: str, chunks: AsyncIterable[bytes]) -> AssetRef:
        """Store one file of a draft from a stream of chunks; a file of the same name is replaced.

        The bytes go to a spooled temp file (memory up to 1 MiB, then disk), and the stream is
        refused as soon as it passes the size limit. On a committed story, putting the exact
        bytes it already has is accepted (a retried upload); anything else is refused, as the
        manifest would no longer match.
        """
        story_id = check_story_id(story_id)
        name = check_asset_name(name)
        content_type = check_content_type(content_type)
        files = await self._story_files(story_id)
        if is_legacy_group(files):
            raise FailedPrecondition(f"story {story_id} was written by the original app; its files cannot be changed")
        committed = any(f.name == MANIFEST_NAME for f in files)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
            size, digest = await self._receive(spool, chunks, name)
            current = newest(f for f in files if f.name == name)
            if committed:
                if current is not None and await self._holds(current, size, digest):
                    return AssetRef.of(current)
                raise FailedPrecondition(
                    f"story {story_id} is committed; its assets cannot change (asset {name!r} would no longer "
                    "match the manifest)"
                )
            spool.seek(0)
            record = await self._store.upload(
                story_id,
                name,
                spool,  # type: ignore[arg-type]  # SpooledTemporaryFile is a binary file
                size=size,
                content_type=content_type,
                keyvalues=our_keyvalues("asset"),
            )
        await self._step("asset-uploaded")
        try:
            await self._story_group(story_id)
        except NotFound:
            # DeleteStory ran while the bytes were arriving: the file went into a group that is gone.
            await self._store.delete_file(record)
            raise NotFound(f"story {story_id} was deleted while {name!r} was being stored") from None
        await self._remove_older(record, files)
        log.info("stored %s/%s (%d bytes, %s)", story_id, name, size, record.cid)
        return AssetRef.of(record)

    async def _receive(self, spool: IO[bytes], chunks: AsyncIterable[bytes], name: str) -> tuple[int, bytes]:
        """Spool the stream; its size and sha2-256 digest."""
        digest = hashlib.sha256()
        size = 0

        def write(chunk: bytes) -> None:
            digest.update(chunk)
            spool.write(chunk)

        async for chunk in chunks:
            size += len(chunk)
            if size > self.max_asset_bytes:
                raise ResourceExhausted(
                    f"asset {name!r} is larger than the limit of {self.max_asset_bytes} bytes (MAX_ASSET_BYTES)"
                )
            if size <= SPOOL_MEMORY_BYTES:
                write(chunk)
            else:
                await asyncio.to_thread(write, chunk)  # past the memory part the spool writes to disk
        if size == 0:
            raise InvalidArgument(f"asset {name!r} is empty; send its bytes after the header")
        return size, digest.digest()

    async def _holds(self, record: FileRecord, size: int, digest: bytes) -> bool:
        """True when the stored file has exactly these bytes."""
        if record.size != size:
            return False
        try:
            return digest_from_cid(record.cid) == digest
        except ValueError:
            pass  # another kind of CID (Pinata's dag-pb for large files): compare the bytes themselves
        stored = hashlib.sha256()
        async for chunk in self._store.read(record):
            stored.update(chunk)
        return stored.digest() == digest

    async def _remove_older(self, record: FileRecord, listed: list[FileRecord]) -> None:
        """Delete the earlier files of the record's name seen in `listed` (taken before it was uploaded).

        Only earlier ones, so concurrent puts of one name leave the newest; one they race with may stay
        behind until the name is put again, harmlessly, as readers always take the newest.
        """
        for other in listed:
            if other.name == record.name and age_key(other) < age_key(record):
                try:
                    await self._store.delete_file(other)  # already gone is fine
                except Exception as exc:
                    # The new file is in place and wins on every read, so the call succeeded; the old one
                    # stays until the name is written again.
                    log.warning("could not remove the replaced %s of %s: %s", other.name, other.group_id, exc)

    # -- commit ---------------------------------------------------------------------------------

    async def commit_story(self, story_id: str, requested: Manifest) -> Manifest:
        """Write the manifest, then add the story to the index. The same content again is a no-op.

        Committing again with different content (e.g. a new title) replaces the manifest and keeps
        the original creation time; the assets it names must still match what is stored.
        """
        story_id = check_story_id(story_id)
        checked = manifest.check_for_commit(requested)
        files = await self._story_files(story_id)
        if is_legacy_group(files):
            raise FailedPrecondition(f"story {story_id} was written by the original app and cannot be committed")
        current = current_by_name(files)
        parts = tuple(self._resolve_part(story_id, part, current) for part in checked.parts)
        previous = await self._read_manifest_or_none(current.get(MANIFEST_NAME), story_id)
        final = Manifest(
            **{
                **{name: getattr(checked, name) for name in checked.__dataclass_fields__},
                "story_id": story_id,
                "created_at": previous.created_at if previous else utc_now(),
                "format": StoryFormat.MANIFEST,
                "parts": parts,
            }
        )
        if previous is not None and manifest.same_content(previous, final):
            if await self.index.get(story_id) != previous.summary():
                # The last attempt stopped between the manifest and the index entry: finish the job.
                await self.index.add(previous.summary())
            return previous
        data = manifest.encode(final)
        record = await self._store.upload(
            story_id,
            MANIFEST_NAME,
            io.BytesIO(data),
            size=len(data),
            content_type=MANIFEST_CONTENT_TYPE,
            keyvalues=our_keyvalues("manifest"),
        )
        await self._step("manifest-uploaded")
        await self.index.add(final.summary())
        await self._remove_older(record, files)
        log.info("committed %s %r (%d parts)", story_id, preview(final.title), len(parts))
        return final

    def _resolve_part(self, story_id: str, part: Part, current: Mapping[str, FileRecord]) -> Part:
        def resolve(asset: AssetRef | None) -> AssetRef | None:
            if asset is None:
                return None
            stored = current.get(asset.name)
            if stored is None:
                raise FailedPrecondition(
                    f"part {part.index} names asset {asset.name!r}, which story {story_id} does not have; "
                    "store it with PutAsset first"
                )
            if asset.cid and asset.cid != stored.cid:
                raise FailedPrecondition(
                    f"part {part.index} names asset {asset.name!r} with CID {asset.cid}, "
                    f"but the stored file has CID {stored.cid}"
                )
            return AssetRef.of(stored)

        return Part(
            index=part.index,
            title=part.title,
            text=part.text,
            illustration_prompt=part.illustration_prompt,
            text_asset=resolve(part.text_asset),
            image_asset=resolve(part.image_asset),
        )

    async def _read_manifest_or_none(self, record: FileRecord | None, story_id: str) -> Manifest | None:
        if record is None:
            return None
        try:
            return await self._read_manifest(record, story_id)
        except DataLoss as exc:
            log.warning("the old manifest of %s is unreadable and will be replaced: %s", story_id, exc)
            return None

    async def _read_manifest(self, record: FileRecord, story_id: str) -> Manifest:
        return manifest.decode(await read_small(self._store, record, limit=manifest.MAX_MANIFEST_BYTES), story_id)

    # -- reading --------------------------------------------------------------------------------

    async def get_story(self, story_id: str) -> Manifest:
        """The manifest of a committed story, or one rebuilt from a legacy group."""
        story_id = check_story_id(story_id)
        summary = await self.index.get(story_id)
        if summary is not None and summary.format == StoryFormat.MANIFEST:
            record = newest(await list_files(self._store, story_id, name=MANIFEST_NAME))
            if record is None:
                raise NotFound(f"story {story_id} is listed but its manifest (story.json) is gone; run Reindex")
            return await self._read_manifest(record, story_id)
        if await self.index.is_tombstoned(story_id):
            raise NotFound(f"no story {story_id} (it was deleted)")
        group = await self._story_group(story_id)
        files = await list_files(self._store, story_id)
        if summary is not None or is_legacy_group(files):
            return await rebuild_manifest(self._store, group, summary.title if summary else None, files)
        raise NotFound(f"story {story_id} is not committed yet: it is a draft until CommitStory writes its manifest")

    async def list_assets(self, story_id: str) -> list[AssetRef]:
        """The current file of every name in the story (drafts too), in natural name order."""
        story_id = check_story_id(story_id)
        current = current_by_name(await self._story_files(story_id))
        return [AssetRef.of(current[name]) for name in sorted(current, key=natural_key)]

    async def open_asset(
        self, story_id: str, name: str, *, offset: int = 0, length: int = 0
    ) -> tuple[AssetRef, AsyncIterator[bytes]]:
        """The file's info and its bytes from `offset`, `length` of them (0: to the end)."""
        story_id = check_story_id(story_id)
        name = check_asset_name(name, allow_manifest=True)
        if offset < 0:
            raise InvalidArgument(f"offset must not be negative; got {offset}")
        if length < 0:
            raise InvalidArgument(f"length must not be negative; got {length}")
        record = newest(await self._story_files(story_id, name=name))
        if record is None:
            raise NotFound(f"story {story_id} has no asset {name!r}")
        if offset > record.size:
            raise InvalidArgument(f"offset {offset} is past the end of {name!r} ({record.size} bytes)")
        if offset == record.size:
            return AssetRef.of(record), _no_bytes()
        return AssetRef.of(record), self._store.read(record, offset=offset, length=length or None)

    async def list_stories(self, page_size: int, page_token: str, query: str) -> tuple[list[StorySummary], str]:
        if page_size < 0 or page_size > MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size must be between 1 and {MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE})")
        return await self.index.page(page_size or DEFAULT_PAGE_SIZE, page_token, check_query(query))

    # -- delete and reindex ---------------------------------------------------------------------

    async def delete_story(self, story_id: str) -> None:
        """Unlist the story first, then delete its manifest, its other files and its group."""
        story_id = check_story_id(story_id)
        if story_id == await self.index.group_id():
            raise NotFound(f"no story {story_id}")
        listed = await self.index.get(story_id) is not None
        if listed:
            await self.index.remove(story_id)
            await self._step("unlisted")
        else:
            await self._story_group(story_id)  # NotFound for unknown ids
        files = await list_files(self._store, story_id)
        # The manifest first: a crash after it leaves plain files nobody lists or reindexes.
        for record in sorted(files, key=lambda f: f.name != MANIFEST_NAME):
            await self._store.delete_file(record)  # already gone is fine
        try:
            await self._store.delete_group(story_id)
        except NotFound:
            if not listed:
                raise NotFound(f"no story {story_id}") from None
        log.info("deleted story %s (%d files)", story_id, len(files))

    async def reindex(self) -> int:
        """Rebuild the index from the groups; returns how many stories it lists."""
        return await self.index.reindex(self._scan)

    async def _scan(self, legacy_titles: Mapping[str, str]) -> list[StorySummary]:
        """Every committed or legacy story found among the groups (the index group aside)."""
        index_group = await self.index.group_id()
        groups = [g async for g in self._store.iter_groups() if g.id != index_group]
        limit = asyncio.Semaphore(SCAN_CONCURRENCY)

        async def summarise(group: GroupRecord) -> StorySummary | None:
            async with limit:
                files = await list_files(self._store, group.id)
                record = newest(f for f in files if f.name == MANIFEST_NAME)
                if record is not None:
                    try:
                        return (await self._read_manifest(record, group.id)).summary()
                    except (DataLoss, NotFound) as exc:
                        # A broken manifest is skipped (and said); a backend failure fails the reindex instead,
                        # so a passing outage never drops stories from the index.
                        log.error("reindex skips story %s: %s", group.id, exc)
                        return None
                if is_legacy_group(files):
                    return legacy_summary(group, legacy_titles.get(group.id), files)
                return None

        found = await asyncio.gather(*(summarise(g) for g in groups))
        return [summary for summary in found if summary is not None]


async def _no_bytes() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover  (makes this an async generator)
