"""The `local` backend: Pinata's model of groups and immutable files, kept in a directory.

Layout under the root (``DATA_DIR/store``)::

    groups/<group id>.json              a group record
    files/<group id>/<file id>.json     a file record ("_" instead of a group id for ungrouped files)
    blobs/<cid[-2:]>/<cid>              file bytes, addressed by CID (stored once however many records name them)
    refs/<cid>/<file id>                one empty marker per file record naming the blob
    tmp/                                files being written
    locks/<cid[-2:]>.lock               flock files serialising reference changes per CID shard

Every file appears through write-to-temp + fsync + rename + fsync of the directory, so a
``kill -9`` at any instant leaves either the old state or the new one, never a torn file.
Order makes crashes harmless: an upload writes the blob and its reference before the
record (a crash leaves an unreferenced blob, never a record without bytes); a delete
removes the record first, then the reference, then the blob when no reference is left.
Deleting a file is O(1): one reference directory is looked at, not every record.
Blocking file I/O runs in worker threads so large files never stall the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from services.common.errors import InvalidArgument, NotFound, Unavailable
from services.common.ids import is_id, new_id
from services.storage.backends.base import PUBLIC, FileRecord, GroupRecord
from services.storage.cid import cid_from_digest
from services.storage.timestamps import format_time, parse_time, utc_now

log = logging.getLogger(__name__)

CHUNK_BYTES = 1024 * 1024
MAX_KEYVALUES = 10  # Pinata's limit; kept here so both backends refuse the same requests
_UNGROUPED = "_"
_STALE_TMP_SECONDS = 3600.0


class LocalFileStore:
    """A `FileStore` in a directory; several processes may share it."""

    def __init__(self, root: Path, *, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.root = root
        self._chunk_bytes = chunk_bytes
        self._groups = root / "groups"
        self._files = root / "files"
        self._blobs = root / "blobs"
        self._refs = root / "refs"
        self._tmp = root / "tmp"
        self._locks = root / "locks"
        for directory in (self._groups, self._files, self._blobs, self._refs, self._tmp, self._locks):
            directory.mkdir(parents=True, exist_ok=True)
        self._clock_lock = threading.Lock()
        self._last_time = utc_now()
        self._remove_stale_temp_files()

    def __repr__(self) -> str:
        return f"LocalFileStore({str(self.root)!r})"

    # -- groups ---------------------------------------------------------------------------------

    async def check(self) -> None:
        await asyncio.to_thread(self._check)

    def _check(self) -> None:
        for directory in (self._groups, self._files, self._blobs, self._tmp):
            if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
                raise Unavailable(f"local store directory {directory} is missing or not writable")

    async def create_group(self, name: str) -> GroupRecord:
        group = GroupRecord(id=new_id(), name=name, created_at=self._now(), network=PUBLIC)
        await asyncio.to_thread(self._write_json, self._group_path(group.id), _group_json(group))
        return group

    async def get_group(self, group_id: str) -> GroupRecord:
        return await asyncio.to_thread(self._read_group, group_id)

    async def find_groups(self, name: str) -> list[GroupRecord]:
        groups = await asyncio.to_thread(self._all_groups)
        return sorted((g for g in groups if g.name == name), key=lambda g: (g.created_at, g.id))

    async def iter_groups(self) -> AsyncIterator[GroupRecord]:
        for group in await asyncio.to_thread(self._all_groups):
            yield group

    async def delete_group(self, group_id: str) -> None:
        await asyncio.to_thread(self._delete_group, group_id)

    def _group_path(self, group_id: str) -> Path:
        if not is_id(group_id):
            raise NotFound(f"no group {group_id!r}")
        return self._groups / f"{group_id}.json"

    def _read_group(self, group_id: str) -> GroupRecord:
        path = self._group_path(group_id)
        try:
            return _group_from_json(json.loads(path.read_bytes()))
        except FileNotFoundError:
            raise NotFound(f"no group {group_id!r}") from None

    def _all_groups(self) -> list[GroupRecord]:
        groups = []
        for path in self._groups.glob("*.json"):
            try:
                groups.append(_group_from_json(json.loads(path.read_bytes())))
            except FileNotFoundError:
                continue  # deleted while we listed
        return groups

    def _delete_group(self, group_id: str) -> None:
        path = self._group_path(group_id)
        try:
            path.unlink()
        except FileNotFoundError:
            raise NotFound(f"no group {group_id!r}") from None
        _fsync_dir(self._groups)
        # Pinata keeps a deleted group's files; so do we. An empty file directory can go.
        with contextlib.suppress(OSError):
            (self._files / group_id).rmdir()

    # -- files ----------------------------------------------------------------------------------

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
        values = dict(keyvalues or {})
        if len(values) > MAX_KEYVALUES:
            raise InvalidArgument(f"a file carries at most {MAX_KEYVALUES} keyvalues; got {len(values)}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in values.items()):
            raise InvalidArgument("keyvalues must map strings to strings")
        return await asyncio.to_thread(self._upload, group_id, name, content, size, content_type, values)

    def _upload(
        self,
        group_id: str | None,
        name: str,
        content: BinaryIO,
        size: int,
        content_type: str,
        keyvalues: dict[str, str],
    ) -> FileRecord:
        if group_id is not None:
            self._read_group(group_id)  # NotFound for an unknown group
        temp = self._tmp / f"{uuid.uuid4().hex}.blob"
        digest = hashlib.sha256()
        written = 0
        try:
            with open(temp, "xb") as out:
                while True:
                    chunk = content.read(self._chunk_bytes)
                    if not chunk:
                        break
                    digest.update(chunk)
                    out.write(chunk)
                    written += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            if written != size:
                raise InvalidArgument(f"upload of {name!r} said {size} bytes but sent {written}")
            cid = cid_from_digest(digest.digest())
            file_id = new_id()
            with self._cid_lock(cid):
                # The reference goes first: a blob is never without one while a record may point at it.
                refs = self._refs / cid
                if not refs.is_dir():
                    refs.mkdir()
                    _fsync_dir(self._refs)
                os.close(os.open(refs / file_id, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
                _fsync_dir(refs)
                blob = self._blob_path(cid)
                if blob.exists():
                    temp.unlink()
                else:
                    self._ensure_dir(blob.parent)
                    os.replace(temp, blob)
                    _fsync_dir(blob.parent)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        record = FileRecord(
            id=file_id,
            name=name,
            cid=cid,
            size=written,
            content_type=content_type,
            group_id=group_id,
            created_at=self._now(),
            keyvalues=keyvalues,
            network=PUBLIC,
        )
        # The record last: once it is visible, its bytes are in place.
        self._write_json(self._record_path(group_id, file_id), _file_json(record))
        return record

    async def iter_files(self, group_id: str, *, name: str | None = None) -> AsyncIterator[FileRecord]:
        for record in await asyncio.to_thread(self._group_files, group_id):
            if name is None or record.name == name:
                yield record

    def _group_files(self, group_id: str) -> list[FileRecord]:
        if not is_id(group_id) or not self._group_path(group_id).exists():
            # As on Pinata: no such group, no files; a deleted group's files no longer list under it
            # (not even one whose upload raced with the deletion).
            return []
        records = []
        for path in (self._files / group_id).glob("*.json"):
            try:
                records.append(_file_from_json(json.loads(path.read_bytes())))
            except FileNotFoundError:
                continue  # deleted while we listed
        return records

    async def delete_file(self, file: FileRecord) -> None:
        await asyncio.to_thread(self._delete_file, file)

    def _delete_file(self, file: FileRecord) -> None:
        if not is_id(file.id):
            raise NotFound(f"no file {file.id!r}")
        path = self._record_path(file.group_id, file.id)
        try:
            path.unlink()
            _fsync_dir(path.parent)
        except FileNotFoundError:
            pass  # already gone: still drop the reference below in case a crash left it
        with self._cid_lock(file.cid):
            refs = self._refs / file.cid
            with contextlib.suppress(FileNotFoundError):
                (refs / file.id).unlink()
            if not _has_entries(refs):
                blob = self._blob_path(file.cid)
                with contextlib.suppress(FileNotFoundError):
                    blob.unlink()
                    _fsync_dir(blob.parent)
                with contextlib.suppress(FileNotFoundError, OSError):
                    refs.rmdir()

    async def read(self, file: FileRecord, *, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        if offset < 0 or (length is not None and length < 0):
            raise InvalidArgument("offset and length must not be negative")
        try:
            handle = await asyncio.to_thread(open, self._blob_path(file.cid), "rb")
        except (FileNotFoundError, ValueError):
            raise NotFound(f"the bytes of file {file.name!r} ({file.cid}) are gone") from None
        try:
            await asyncio.to_thread(handle.seek, offset)
            remaining = length
            while remaining is None or remaining > 0:
                want = self._chunk_bytes if remaining is None else min(self._chunk_bytes, remaining)
                chunk = await asyncio.to_thread(handle.read, want)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            handle.close()

    async def aclose(self) -> None:
        return None

    # -- helpers --------------------------------------------------------------------------------

    def _now(self) -> datetime:
        """Strictly increasing within this process, so "newest file of a name" is never a tie."""
        with self._clock_lock:
            now = utc_now()
            if now <= self._last_time:
                now = self._last_time + timedelta(microseconds=1)
            self._last_time = now
            return now

    def _record_path(self, group_id: str | None, file_id: str) -> Path:
        if group_id is not None and not is_id(group_id):
            raise NotFound(f"no group {group_id!r}")
        return self._files / (group_id or _UNGROUPED) / f"{file_id}.json"

    def _blob_path(self, cid: str) -> Path:
        if not cid.isalnum():
            raise ValueError(f"not a CID: {cid!r}")
        return self._blobs / cid[-2:] / cid

    @contextlib.contextmanager
    def _cid_lock(self, cid: str) -> Iterator[None]:
        # flock, not a thread lock: other processes share this directory. The kernel drops it on kill -9.
        fd = os.open(self._locks / f"{cid[-2:]}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _ensure_dir(self, directory: Path) -> None:
        if not directory.is_dir():
            directory.mkdir(parents=True, exist_ok=True)
            _fsync_dir(directory.parent)

    def _write_json(self, path: Path, document: dict[str, Any]) -> None:
        self._ensure_dir(path.parent)
        data = json.dumps(document, ensure_ascii=False).encode()
        temp = self._tmp / f"{uuid.uuid4().hex}.json"
        try:
            with open(temp, "xb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        _fsync_dir(path.parent)

    def _remove_stale_temp_files(self) -> None:
        # Left by a process killed mid-write; live writers finish in far less than an hour.
        cutoff = time.time() - _STALE_TMP_SECONDS
        for path in self._tmp.iterdir():
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()


def _has_entries(directory: Path) -> bool:
    try:
        with os.scandir(directory) as entries:
            return next(entries, None) is not None
    except FileNotFoundError:
        return False


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _group_json(group: GroupRecord) -> dict[str, Any]:
    return {"id": group.id, "name": group.name, "created_at": format_time(group.created_at), "network": group.network}


def _group_from_json(data: Mapping[str, Any]) -> GroupRecord:
    return GroupRecord(
        id=str(data["id"]),
        name=str(data["name"]),
        created_at=parse_time(str(data["created_at"])),
        network=str(data.get("network", PUBLIC)),
    )


def _file_json(record: FileRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "cid": record.cid,
        "size": record.size,
        "content_type": record.content_type,
        "group_id": record.group_id,
        "created_at": format_time(record.created_at),
        "keyvalues": dict(record.keyvalues),
        "network": record.network,
    }


def _file_from_json(data: Mapping[str, Any]) -> FileRecord:
    return FileRecord(
        id=str(data["id"]),
        name=str(data["name"]),
        cid=str(data["cid"]),
        size=int(data["size"]),
        content_type=str(data["content_type"]),
        group_id=data.get("group_id"),
        created_at=parse_time(str(data["created_at"])),
        keyvalues={str(k): str(v) for k, v in (data.get("keyvalues") or {}).items()},
        network=str(data.get("network", PUBLIC)),
    )
