"""Helpers over a group's file records: which are ours, which version of a name is current, reading small files."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from services.common.errors import DataLoss, NotFound
from services.storage.backends.base import FileRecord, FileStore

# Every file we upload carries these keyvalues; the original app's files carry none.
APP_KEY = "app"
APP_VALUE = "dreamforge"
KIND_KEY = "kind"


def our_keyvalues(kind: str) -> dict[str, str]:
    return {APP_KEY: APP_VALUE, KIND_KEY: kind}


def is_ours(record: FileRecord) -> bool:
    return record.keyvalues.get(APP_KEY) == APP_VALUE


def age_key(record: FileRecord) -> tuple[Any, str]:
    """Orders versions of a name: a later upload sorts after an earlier one."""
    return (record.created_at, record.id)


def newest(records: Iterable[FileRecord]) -> FileRecord | None:
    return max(records, key=age_key, default=None)


def current_by_name(records: Iterable[FileRecord]) -> dict[str, FileRecord]:
    """The newest file of each name: "put again replaces" is upload-new-then-delete-old, so both may show briefly."""
    current: dict[str, FileRecord] = {}
    for record in records:
        seen = current.get(record.name)
        if seen is None or age_key(record) > age_key(seen):
            current[record.name] = record
    return current


async def list_files(store: FileStore, group_id: str, *, name: str | None = None) -> list[FileRecord]:
    """The group's files (named `name` when given); none for a group that does not exist."""
    try:
        return [record async for record in store.iter_files(group_id, name=name)]
    except NotFound:
        return []


async def read_small(store: FileStore, record: FileRecord, *, limit: int) -> bytes:
    """The whole file, refusing (DataLoss) one larger than `limit` bytes: these files are ours and small."""
    if record.size > limit:
        raise DataLoss(f"file {record.name!r} ({record.cid}) is {record.size} bytes; expected at most {limit}")
    buffer = io.BytesIO()
    async for chunk in store.read(record):
        buffer.write(chunk)
        if buffer.tell() > limit:
            raise DataLoss(f"file {record.name!r} ({record.cid}) is larger than {limit} bytes")
    return buffer.getvalue()
