"""The generator's only way to store anything: a thin client of the storage service.

Every call has a deadline; a failed call becomes a domain error (`error_from_rpc`),
so the pipeline can tell a storage outage (UNAVAILABLE: retry later) from a
rejected request (INVALID_ARGUMENT: a bug, fail).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from dreamforge.v1 import storage_pb2, storage_pb2_grpc

from services.common.errors import DreamForgeError
from services.common.grpc_client import check_health
from services.common.grpc_errors import error_from_rpc

CHUNK_BYTES = 256 * 1024


def _storage_error(exc: grpc.aio.AioRpcError) -> DreamForgeError:
    """The domain error, its message saying it came from storage (job errors are read by people)."""
    error = error_from_rpc(exc)
    return type(error)(f"storage service: {error.message}")


@dataclass(frozen=True)
class StoredAsset:
    name: str
    cid: str
    content_type: str
    size: int

    def to_proto(self) -> storage_pb2.AssetRef:
        return storage_pb2.AssetRef(name=self.name, cid=self.cid, content_type=self.content_type, size=self.size)

    @classmethod
    def from_proto(cls, ref: storage_pb2.AssetRef) -> StoredAsset:
        return cls(name=ref.name, cid=ref.cid, content_type=ref.content_type, size=ref.size)


class StorageClient:
    def __init__(self, channel: grpc.aio.Channel, *, timeout: float = 30.0) -> None:
        self._channel = channel
        self._stub = storage_pb2_grpc.StorageServiceStub(channel)
        self._timeout = timeout

    async def healthy(self) -> bool:
        return await check_health(self._channel)

    async def create_story(self, title: str, client_token: str) -> str:
        """The draft for ``client_token`` (the job id): created now, or the one an earlier attempt made."""
        try:
            reply = await self._stub.CreateStory(
                storage_pb2.CreateStoryRequest(title=title, client_token=client_token), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise _storage_error(exc) from None
        return reply.story_id

    async def put_asset(self, story_id: str, name: str, content_type: str, data: bytes) -> StoredAsset:
        """Store (or replace) one file of the draft."""

        async def messages() -> AsyncIterator[storage_pb2.PutAssetRequest]:
            header = storage_pb2.PutAssetHeader(story_id=story_id, name=name, content_type=content_type)
            yield storage_pb2.PutAssetRequest(header=header)
            for start in range(0, len(data), CHUNK_BYTES):
                yield storage_pb2.PutAssetRequest(chunk=data[start : start + CHUNK_BYTES])

        try:
            reply = await self._stub.PutAsset(messages(), timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise _storage_error(exc) from None
        return StoredAsset.from_proto(reply.asset)

    async def list_assets(self, story_id: str) -> list[StoredAsset]:
        try:
            reply = await self._stub.ListAssets(storage_pb2.ListAssetsRequest(story_id=story_id), timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise _storage_error(exc) from None
        return [StoredAsset.from_proto(ref) for ref in reply.assets]

    async def commit_story(self, story_id: str, manifest: storage_pb2.StoryManifest) -> storage_pb2.StoryManifest:
        try:
            reply = await self._stub.CommitStory(
                storage_pb2.CommitStoryRequest(story_id=story_id, manifest=manifest), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise _storage_error(exc) from None
        return reply.manifest

    async def delete_story(self, story_id: str) -> None:
        try:
            await self._stub.DeleteStory(storage_pb2.DeleteStoryRequest(story_id=story_id), timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise _storage_error(exc) from None
