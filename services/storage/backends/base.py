"""The interface every storage backend implements: Pinata's model of groups and immutable files.

Everything above this layer (stories, manifests, the index) is written once
against `FileStore`; the `local` backend keeps the same model on disk so both
behave alike. Backends raise only `services.common.errors` exceptions:
`NotFound` for an unknown group or file, `Unavailable` / `DeadlineExceeded`
when the store is unreachable after retries, `Unauthenticated` /
`PermissionDenied` for refused credentials, `InvalidArgument` for a request
the store rejects as malformed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, Protocol, runtime_checkable

PUBLIC = "public"
PRIVATE = "private"


@dataclass(frozen=True)
class GroupRecord:
    """A named group of files; a story is one group, the index is another."""

    id: str
    name: str
    created_at: datetime
    network: str = PUBLIC


@dataclass(frozen=True)
class FileRecord:
    """One immutable file. Its bytes are addressed by `cid`; the record itself has an `id`."""

    id: str
    name: str
    cid: str
    size: int
    content_type: str
    group_id: str | None
    created_at: datetime
    keyvalues: Mapping[str, str] = field(default_factory=dict)
    network: str = PUBLIC


@runtime_checkable
class FileStore(Protocol):
    """Groups of immutable, content-addressed files (the Pinata v3 Files model)."""

    async def check(self) -> None:
        """Return when the store answers and accepts our credentials; raise otherwise (for health)."""

    async def create_group(self, name: str) -> GroupRecord:
        """A new, empty group (names need not be unique)."""

    async def get_group(self, group_id: str) -> GroupRecord:
        """The group with this id, on any network; `NotFound` if there is none."""

    async def find_groups(self, name: str) -> list[GroupRecord]:
        """Groups whose name is exactly `name`, oldest first."""

    def iter_groups(self) -> AsyncIterator[GroupRecord]:
        """Every group on every network we can read, in no particular order (pagination followed to the end)."""

    async def delete_group(self, group_id: str) -> None:
        """Remove the group (not its files); `NotFound` if there is none."""

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
        """Store `size` bytes read from `content` (a seekable binary file at offset 0) as a new file.

        Uploading the same name twice makes two files; callers delete the old one themselves.
        """

    def iter_files(self, group_id: str, *, name: str | None = None) -> AsyncIterator[FileRecord]:
        """Files in the group (only those named exactly `name` when given), in no particular order."""

    async def delete_file(self, file: FileRecord) -> None:
        """Remove the file; deleting a file that is already gone is not an error."""

    def read(self, file: FileRecord, *, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """The file's bytes from `offset`, `length` of them (all the rest when None), in chunks."""

    async def aclose(self) -> None:
        """Release connections and file handles."""
