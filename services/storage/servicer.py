"""`StorageService` over gRPC: messages in, a `Library` call, messages out. No storage logic here.

Domain errors raised below become status codes in the shared server interceptor.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from dreamforge.v1 import storage_pb2, storage_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.errors import InvalidArgument
from services.storage import manifest as manifest_module
from services.storage.library import Library
from services.storage.models import AssetRef, Character, Generation, Manifest, Part, StoryFormat, StorySummary
from services.storage.timestamps import utc_now

# The largest chunk sent back in GetAsset; well under the 8 MiB message limit.
MAX_SEND_CHUNK = 1024 * 1024

_FORMAT_TO_PROTO = {
    StoryFormat.MANIFEST: storage_pb2.STORY_FORMAT_MANIFEST,
    StoryFormat.LEGACY: storage_pb2.STORY_FORMAT_LEGACY,
}


# -- proto -> domain --------------------------------------------------------------------------


def _asset_from_proto(message: storage_pb2.AssetRef, present: bool) -> AssetRef | None:
    if not present:
        return None
    return AssetRef(name=message.name, cid=message.cid, content_type=message.content_type, size=message.size)


def manifest_from_proto(message: storage_pb2.StoryManifest) -> Manifest:
    """A commit request's manifest; the fields storage sets (id, created_at, format) are ignored."""
    generation = message.generation
    return Manifest(
        story_id="",
        title=message.title,
        created_at=utc_now(),
        prompt=message.prompt,
        style=message.style,
        characters=tuple(Character(name=c.name, description=c.description) for c in message.characters),
        parts=tuple(
            Part(
                index=p.index,
                title=p.title,
                text=p.text,
                illustration_prompt=p.illustration_prompt,
                text_asset=_asset_from_proto(p.text_asset, p.HasField("text_asset")),
                image_asset=_asset_from_proto(p.image_asset, p.HasField("image_asset")),
            )
            for p in message.parts
        ),
        generation=Generation(
            text_engine=generation.text_engine,
            text_model=generation.text_model,
            image_engine=generation.image_engine,
            image_model=generation.image_model,
            offline=generation.offline,
            seed=generation.seed,
            parameters=dict(generation.parameters),
            timings_seconds=dict(generation.timings_seconds),
            job_id=generation.job_id,
        ),
        extra=manifest_module.parse_extra(message.extra_json),
    )


# -- domain -> proto --------------------------------------------------------------------------


def asset_to_proto(asset: AssetRef) -> storage_pb2.AssetRef:
    return storage_pb2.AssetRef(name=asset.name, cid=asset.cid, content_type=asset.content_type, size=asset.size)


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def manifest_to_proto(manifest: Manifest) -> storage_pb2.StoryManifest:
    parts = []
    for part in manifest.parts:
        message = storage_pb2.StoryPart(
            index=part.index, title=part.title, text=part.text, illustration_prompt=part.illustration_prompt
        )
        if part.text_asset is not None:
            message.text_asset.CopyFrom(asset_to_proto(part.text_asset))
        if part.image_asset is not None:
            message.image_asset.CopyFrom(asset_to_proto(part.image_asset))
        parts.append(message)
    generation = manifest.generation
    return storage_pb2.StoryManifest(
        story_id=manifest.story_id,
        title=manifest.title,
        prompt=manifest.prompt,
        style=manifest.style,
        created_at=_timestamp(manifest.created_at),
        characters=[storage_pb2.Character(name=c.name, description=c.description) for c in manifest.characters],
        parts=parts,
        generation=storage_pb2.GenerationInfo(
            text_engine=generation.text_engine,
            text_model=generation.text_model,
            image_engine=generation.image_engine,
            image_model=generation.image_model,
            offline=generation.offline,
            seed=generation.seed,
            parameters=dict(generation.parameters),
            timings_seconds=dict(generation.timings_seconds),
            job_id=generation.job_id,
        ),
        format=_FORMAT_TO_PROTO[manifest.format],
        extra_json=json.dumps(dict(manifest.extra), ensure_ascii=False) if manifest.extra else "",
    )


def summary_to_proto(summary: StorySummary) -> storage_pb2.StorySummary:
    message = storage_pb2.StorySummary(
        story_id=summary.story_id,
        title=summary.title,
        created_at=_timestamp(summary.created_at),
        format=_FORMAT_TO_PROTO[summary.format],
    )
    if summary.cover is not None:
        message.cover.CopyFrom(asset_to_proto(summary.cover))
    return message


# -- the servicer -----------------------------------------------------------------------------


async def _chunks_after_header(requests: AsyncIterator[storage_pb2.PutAssetRequest]) -> AsyncIterator[bytes]:
    async for request in requests:
        kind = request.WhichOneof("content")
        if kind == "header":
            raise InvalidArgument("PutAsset got a second header; only the first message may carry one")
        if kind == "chunk":
            yield request.chunk


class StorageServicer(storage_pb2_grpc.StorageServiceServicer):
    def __init__(self, library: Library) -> None:
        self._library = library

    async def CreateStory(
        self, request: storage_pb2.CreateStoryRequest, context: Any
    ) -> storage_pb2.CreateStoryResponse:
        story_id, created = await self._library.create_story(request.title, request.client_token)
        return storage_pb2.CreateStoryResponse(story_id=story_id, created=created)

    async def PutAsset(
        self, request_iterator: AsyncIterator[storage_pb2.PutAssetRequest], context: Any
    ) -> storage_pb2.PutAssetResponse:
        first = await anext_or_none(request_iterator)
        if first is None or first.WhichOneof("content") != "header":
            raise InvalidArgument("PutAsset's first message must be the header (story_id, name, content_type)")
        header = first.header
        asset = await self._library.put_asset(
            header.story_id, header.name, header.content_type, _chunks_after_header(request_iterator)
        )
        return storage_pb2.PutAssetResponse(asset=asset_to_proto(asset))

    async def CommitStory(
        self, request: storage_pb2.CommitStoryRequest, context: Any
    ) -> storage_pb2.CommitStoryResponse:
        if not request.HasField("manifest"):
            raise InvalidArgument("CommitStory needs a manifest")
        committed = await self._library.commit_story(request.story_id, manifest_from_proto(request.manifest))
        return storage_pb2.CommitStoryResponse(manifest=manifest_to_proto(committed))

    async def GetStory(self, request: storage_pb2.GetStoryRequest, context: Any) -> storage_pb2.GetStoryResponse:
        return storage_pb2.GetStoryResponse(manifest=manifest_to_proto(await self._library.get_story(request.story_id)))

    async def ListAssets(self, request: storage_pb2.ListAssetsRequest, context: Any) -> storage_pb2.ListAssetsResponse:
        assets = await self._library.list_assets(request.story_id)
        return storage_pb2.ListAssetsResponse(assets=[asset_to_proto(a) for a in assets])

    async def GetAsset(
        self, request: storage_pb2.GetAssetRequest, context: Any
    ) -> AsyncIterator[storage_pb2.GetAssetResponse]:
        info, content = await self._library.open_asset(
            request.story_id, request.name, offset=request.offset, length=request.length
        )
        async with contextlib.aclosing(content):  # type: ignore[type-var]
            yield storage_pb2.GetAssetResponse(info=asset_to_proto(info))
            async for chunk in content:
                for start in range(0, len(chunk), MAX_SEND_CHUNK):
                    yield storage_pb2.GetAssetResponse(chunk=chunk[start : start + MAX_SEND_CHUNK])

    async def ListStories(
        self, request: storage_pb2.ListStoriesRequest, context: Any
    ) -> storage_pb2.ListStoriesResponse:
        stories, next_token = await self._library.list_stories(request.page_size, request.page_token, request.query)
        return storage_pb2.ListStoriesResponse(
            stories=[summary_to_proto(s) for s in stories], next_page_token=next_token
        )

    async def DeleteStory(
        self, request: storage_pb2.DeleteStoryRequest, context: Any
    ) -> storage_pb2.DeleteStoryResponse:
        await self._library.delete_story(request.story_id)
        return storage_pb2.DeleteStoryResponse()

    async def Reindex(self, request: storage_pb2.ReindexRequest, context: Any) -> storage_pb2.ReindexResponse:
        return storage_pb2.ReindexResponse(story_count=await self._library.reindex())


async def anext_or_none(iterator: AsyncIterator[storage_pb2.PutAssetRequest]) -> storage_pb2.PutAssetRequest | None:
    """The next message, or None at the end of the stream (`anext` with a default is 3.10+ but untyped in places)."""
    try:
        return await iterator.__anext__()
    except StopAsyncIteration:
        return None
