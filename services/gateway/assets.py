"""Serving a story's files: streamed bytes, ETag = CID, immutable caching, 304, single byte ranges (206/416)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TypeAlias

import grpc
from dreamforge.v1 import storage_pb2
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from services.gateway.backends import Backends
from services.gateway.errors import ApiError, not_found
from services.gateway.settings import Settings

log = logging.getLogger(__name__)

AssetCall: TypeAlias = "grpc.aio.UnaryStreamCall[storage_pb2.GetAssetRequest, storage_pb2.GetAssetResponse]"

IMMUTABLE = "public, max-age=31536000, immutable"
# An asset is never a page: even if one were served as HTML, it could run nothing.
ASSET_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(Exception):
    """The requested byte range lies outside the file."""


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_range(header: str, size: int) -> ByteRange | None:
    """The single byte range a ``Range`` header asks for; None to send the whole file.

    Malformed headers and multi-range requests are ignored, as RFC 9110 allows; a range
    wholly outside the file raises `RangeNotSatisfiable`.
    """
    match = _RANGE.match(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid, so ignored
    if start >= size:
        raise RangeNotSatisfiable
    return ByteRange(start, min(end, size - 1))


def etag_for(cid: str) -> str:
    return f'"{cid}"'


def etag_matches(header: str, etag: str) -> bool:
    """``If-None-Match`` semantics: weak comparison, a list of tags, or ``*``."""
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*":
            return True
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False


def _base_headers(info: storage_pb2.AssetRef) -> dict[str, str]:
    return {
        "ETag": etag_for(info.cid),
        "Cache-Control": IMMUTABLE,
        "Accept-Ranges": "bytes",
        "Content-Security-Policy": ASSET_CSP,
    }


def _media_type(info: storage_pb2.AssetRef) -> str:
    return info.content_type or "application/octet-stream"


async def asset_info(backends: Backends, story_id: str, name: str) -> storage_pb2.AssetRef:
    reply = await backends.storage.ListAssets(storage_pb2.ListAssetsRequest(story_id=story_id))
    for asset in reply.assets:
        if asset.name == name:
            return asset
    raise not_found(f"story {story_id} has no file named {name}")


async def _open(
    backends: Backends, settings: Settings, story_id: str, name: str, offset: int = 0, length: int = 0
) -> tuple[AssetCall, storage_pb2.AssetRef]:
    """Start GetAsset and wait (with the unary deadline) for its first message, the file's info."""
    request = storage_pb2.GetAssetRequest(story_id=story_id, name=name, offset=offset, length=length)
    call: AssetCall = backends.storage.GetAsset(request, timeout=settings.asset_timeout)
    try:
        first = await asyncio.wait_for(call.read(), timeout=settings.rpc_timeout)
    except asyncio.TimeoutError:
        call.cancel()
        raise ApiError(504, "deadline_exceeded", "storage did not answer in time; try again shortly") from None
    except BaseException:
        call.cancel()
        raise
    if not isinstance(first, storage_pb2.GetAssetResponse) or first.WhichOneof("content") != "info":
        call.cancel()
        raise ApiError(502, "backend_error", "storage sent a file without its info")
    return call, first.info


async def _chunks(call: AssetCall) -> AsyncIterator[bytes]:
    try:
        while True:
            message = await call.read()
            if not isinstance(message, storage_pb2.GetAssetResponse):
                return  # EOF
            if message.WhichOneof("content") == "chunk":
                yield message.chunk
    except grpc.aio.AioRpcError as exc:
        # The status line is gone already; dropping the connection is the only honest signal left.
        log.warning("asset stream broke after it started: %s %s", exc.code().name, exc.details())
        raise
    finally:
        call.cancel()


async def read_whole(backends: Backends, settings: Settings, story_id: str, name: str, limit: int) -> bytes:
    """A small file's bytes (e.g. a part's text), refusing files over ``limit``."""
    call, info = await _open(backends, settings, story_id, name)
    if info.size > limit:
        call.cancel()
        raise ApiError(413, "payload_too_large", f"{name} is larger than {limit} bytes")
    data = bytearray()
    async for chunk in _chunks(call):
        data += chunk
        if len(data) > limit:
            raise ApiError(413, "payload_too_large", f"{name} is larger than {limit} bytes")
    return bytes(data)


async def asset_response(
    request: Request, backends: Backends, settings: Settings, story_id: str, name: str
) -> Response:
    """The answer to GET or HEAD for one file, honouring If-None-Match, Range and If-Range."""
    range_header = request.headers.get("range", "")
    if_none_match = request.headers.get("if-none-match", "")
    call: AssetCall | None = None
    if request.method == "HEAD" or range_header or if_none_match:
        # These may need no bytes, or other bytes than the whole file: ask for the info alone first.
        info = await asset_info(backends, story_id, name)
    else:
        call, info = await _open(backends, settings, story_id, name)
    headers = _base_headers(info)
    etag = headers["ETag"]

    if if_none_match and etag_matches(if_none_match, etag):
        if call is not None:
            call.cancel()
        return Response(status_code=304, headers=headers)

    byte_range: ByteRange | None = None
    if_range = request.headers.get("if-range", "")
    if range_header and (not if_range or if_range.strip() == etag):
        try:
            byte_range = parse_range(range_header, info.size)
        except RangeNotSatisfiable:
            headers["Content-Range"] = f"bytes */{info.size}"
            raise ApiError(
                416, "range_not_satisfiable", f"{range_header} is outside the file ({info.size} bytes)", headers=headers
            ) from None

    status = 200
    length = info.size
    if byte_range is not None:
        status = 206
        length = byte_range.length
        headers["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{info.size}"
    headers["Content-Length"] = str(length)

    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=_media_type(info))
    if call is None:
        offset = byte_range.start if byte_range else 0
        call, _ = await _open(backends, settings, story_id, name, offset=offset, length=length)
    return StreamingResponse(_chunks(call), status_code=status, headers=headers, media_type=_media_type(info))
