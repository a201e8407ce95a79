"""The `pinata` backend: `FileStore` over Pinata's v3 Files API (groups, files, gateways) with httpx.

API calls go to `PINATA_API_URL` (files, groups, download links) and uploads to
`PINATA_UPLOAD_URL`; content is read from the dedicated gateway: public files at
`/ipfs/{cid}`, private ones (the original app's) through short-lived signed
`/files/{cid}` links. Groups and files exist per network (`public` / `private`);
new ones go to the configured network, and both networks are read. Pinata's
`name` filters may match loosely, so every name is re-checked exactly here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import httpx

from services.common.config import ConfigError, Secret
from services.common.errors import DreamForgeError, InvalidArgument, NotFound, PermissionDenied, Unavailable
from services.storage.backends.base import PRIVATE, PUBLIC, FileRecord, GroupRecord
from services.storage.backends.pinata_http import PinataHttp, RetryPolicy, Sleep, unwrap
from services.storage.backends.pinata_json import file_from_json, group_from_json, page

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.pinata.cloud"
DEFAULT_UPLOAD_URL = "https://uploads.pinata.cloud"
NETWORKS = (PUBLIC, PRIVATE)
GATEWAY_TOKEN_HEADER = "x-pinata-gateway-token"
MAX_KEYVALUES = 10
READ_CHUNK = 64 * 1024
# Health checks: trust recent successful traffic this long; repeat a failed verdict this long.
RECENT_SUCCESS_SECONDS = 60.0
FAILED_CHECK_SECONDS = 10.0
# Pinata ids are UUIDs; anything else cannot name a group and must not reach a URL path.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_CID = re.compile(r"^[A-Za-z0-9]{1,200}$")
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


@dataclass(frozen=True)
class PinataConfig:
    """Everything the backend needs, named after the environment variables in DESIGN.md (lower-case).

    The storage service's `Settings` builds it; nothing here reads the environment.
    """

    pinata_jwt: Secret
    pinata_gateway: str
    pinata_gateway_token: Secret = field(default_factory=lambda: Secret(""))
    pinata_network: str = PUBLIC
    pinata_api_url: str = DEFAULT_API_URL
    pinata_upload_url: str = DEFAULT_UPLOAD_URL
    timeout_seconds: float = 30.0
    connect_timeout_seconds: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def gateway_base(gateway: str) -> str:
    """`example.mypinata.cloud` -> `https://example.mypinata.cloud`; a full URL keeps its scheme."""
    text = gateway.strip().rstrip("/")
    if not text:
        raise ConfigError(
            "Config 'PINATA_GATEWAY' is missing: Pinata serves file content only through a gateway; "
            "set it to your dedicated gateway's domain (e.g. example-words-123.mypinata.cloud)"
        )
    if "://" not in text:
        text = f"https://{text}"
    url = _url(text)
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(f"Config 'PINATA_GATEWAY' must be a domain or an http(s) URL, got {gateway!r}")
    return text


def _origin(name: str, value: str) -> str:
    text = value.strip().rstrip("/")
    # The settings name the origin; tolerate a pasted `/v3` rather than calling `/v3/v3/...`.
    text = text.removesuffix("/v3")
    url = _url(text)
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(f"Config '{name}' must be an http(s) URL, got {value!r}")
    return text


def _url(text: str) -> httpx.URL | None:
    try:
        return httpx.URL(text)
    except httpx.InvalidURL:
        return None


def _other(network: str) -> str:
    return PRIVATE if network == PUBLIC else PUBLIC


class _Window:
    """The first `size` bytes of a seekable binary file, as the file-like object httpx's multipart reads.

    httpx learns the length through `seek`/`tell` (so the upload has a Content-Length)
    and rewinds with `seek(0)` before each attempt, so a retried upload resends from the start.
    """

    def __init__(self, raw: BinaryIO, size: int) -> None:
        self._raw = raw
        self._size = size
        self._position = 0

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._size}[whence]
        self._position = min(max(0, base + offset), self._size)
        self._raw.seek(self._position)
        return self._position

    def read(self, count: int = -1) -> bytes:
        remaining = self._size - self._position
        if remaining <= 0:
            return b""
        data = self._raw.read(remaining if count < 0 else min(count, remaining))
        if not data:
            raise InvalidArgument(f"the content ended after {self._position} of the {self._size} bytes announced")
        self._position += len(data)
        return data


class _LinkRefused(Exception):
    """The gateway refused a signed link (expired or revoked): sign a new one and try once more."""

    def __init__(self, status: int) -> None:
        super().__init__(f"signed link refused with {status}")
        self.status = status


class PinataFileStore:
    """`FileStore` on Pinata: groups and immutable files on the public and private networks."""

    def __init__(
        self,
        jwt: Secret,
        *,
        gateway: str,
        gateway_token: Secret | None = None,
        network: str = PUBLIC,
        api_url: str = DEFAULT_API_URL,
        upload_url: str = DEFAULT_UPLOAD_URL,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        page_size: int | None = None,
        signed_link_seconds: int = 300,
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not jwt:
            raise ConfigError("Config 'PINATA_JWT' is missing: the pinata backend needs a Pinata API key's JWT")
        if network not in NETWORKS:
            raise ConfigError(f"Config 'PINATA_NETWORK' must be public or private, got {network!r}")
        if page_size is not None and page_size < 1:
            raise ValueError("page_size must be positive")
        if signed_link_seconds < 10:
            raise ValueError("signed_link_seconds must be at least 10")
        self.network = network
        self._gateway = gateway_base(gateway)
        self._gateway_token = gateway_token if gateway_token else None
        self._api = _origin("PINATA_API_URL", api_url)
        self._uploads = _origin("PINATA_UPLOAD_URL", upload_url)
        self._page_size = page_size
        self._link_seconds = signed_link_seconds
        self._owns_client = client is None
        if client is None:
            client = httpx.AsyncClient(
                transport=transport,
                timeout=httpx.Timeout(timeout, connect=connect_timeout),
                headers={"User-Agent": "dreamforge-storage"},
                follow_redirects=True,
            )
        self._http = PinataHttp(client, jwt, retry=retry or RetryPolicy(), sleep=sleep, clock=clock)
        self._sleep = sleep
        self._jwt = jwt
        # Groups never change network, so one lookup per group is enough.
        self._networks: dict[str, str] = {}
        self._links: dict[str, tuple[str, float]] = {}
        self._sign_path = "/v3/files/private/download_link"
        self._unavailable_networks: set[str] = set()
        self._verified = False
        self._failed_check: tuple[float, DreamForgeError] | None = None

    @classmethod
    def from_config(
        cls,
        config: PinataConfig,
        *,
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> PinataFileStore:
        return cls(
            config.pinata_jwt,
            gateway=config.pinata_gateway,
            gateway_token=config.pinata_gateway_token,
            network=config.pinata_network,
            api_url=config.pinata_api_url,
            upload_url=config.pinata_upload_url,
            timeout=config.timeout_seconds,
            connect_timeout=config.connect_timeout_seconds,
            retry=config.retry,
            client=client,
            transport=transport,
        )

    def __repr__(self) -> str:
        return (
            f"PinataFileStore(api={self._api!r}, uploads={self._uploads!r}, gateway={self._gateway!r}, "
            f"network={self.network!r}, jwt={self._jwt!r})"
        )

    @property
    def gateway(self) -> str:
        return self._gateway

    # -- health ---------------------------------------------------------------------------

    async def check(self) -> None:
        """Pinata answers and accepts the key; cheap enough for a health loop.

        The first check (and the first after a failure) is thorough: testAuthentication
        proves the JWT is valid but answers 200 even for a key with no scopes, so one
        listing per scope family follows. Afterwards a check costs nothing while other
        calls have succeeded within `RECENT_SUCCESS_SECONDS`, else one small listing.
        A failed verdict is repeated for `FAILED_CHECK_SECONDS` without asking Pinata
        again, so a health loop polling every second cannot run into the rate limits.
        """
        now = self._http.clock()
        if self._failed_check is not None and now - self._failed_check[0] < FAILED_CHECK_SECONDS:
            failure = self._failed_check[1]
            raise type(failure)(failure.message)
        if self._verified and now - self._http.last_success < RECENT_SUCCESS_SECONDS:
            return
        try:
            if not self._verified:
                await self._http.call(
                    "GET", f"{self._api}/data/testAuthentication", "GET /data/testAuthentication", attempts=2
                )
            for kind in ("files", "groups") if not self._verified else ("groups",):
                path = f"/v3/{kind}/{self.network}"
                await self._http.call("GET", self._api + path, f"GET {path}", params={"limit": "1"}, attempts=2)
        except DreamForgeError as failure:
            self._failed_check = (self._http.clock(), failure)
            self._verified = False
            raise
        self._failed_check = None
        self._verified = True

    # -- groups ---------------------------------------------------------------------------

    async def create_group(self, name: str) -> GroupRecord:
        if not name:
            raise InvalidArgument("a group needs a name")
        path = f"/v3/groups/{self.network}"
        response = await self._http.call(
            "POST", self._api + path, f"POST {path}", repeatable=False, json_body={"name": name}
        )
        group = group_from_json(unwrap(response, f"POST {path}"), self.network)
        self._networks[group.id] = group.network
        return group

    async def get_group(self, group_id: str) -> GroupRecord:
        if not _ID.match(group_id):
            raise NotFound(f"there is no group {group_id!r}")
        known = self._networks.get(group_id)
        for network in (known,) if known else (self.network, _other(self.network)):
            path = f"/v3/groups/{network}/{group_id}"
            try:
                response = await self._http.call("GET", self._api + path, f"GET {path}")
            except NotFound:
                continue
            except PermissionDenied:
                if network == self.network:
                    raise
                self._note_unavailable(network)
                continue
            group = group_from_json(unwrap(response, f"GET {path}"), network)
            self._networks[group.id] = network
            return group
        self._networks.pop(group_id, None)
        raise NotFound(f"Pinata has no group {group_id!r} on either network")

    async def _network_of(self, group_id: str) -> str:
        """The group's network: remembered from an earlier answer (it never changes), else looked up."""
        known = self._networks.get(group_id)
        return known if known is not None else (await self.get_group(group_id)).network

    async def find_groups(self, name: str) -> list[GroupRecord]:
        found = [group async for group in self._groups({"name": name}) if group.name == name]
        return sorted(found, key=lambda group: (group.created_at, group.id))

    def iter_groups(self) -> AsyncIterator[GroupRecord]:
        return self._groups({})

    async def _groups(self, params: Mapping[str, str]) -> AsyncIterator[GroupRecord]:
        for network in (self.network, _other(self.network)):
            path = f"/v3/groups/{network}"
            try:
                async for item in self._pages(path, params, "groups"):
                    group = group_from_json(item, network)
                    self._networks[group.id] = network
                    yield group
            except PermissionDenied:
                # The configured network was readable with the same key, so this refusal is
                # the plan (private IPFS is an Enterprise feature), not a missing scope.
                if network == self.network:
                    raise
                self._note_unavailable(network)

    async def delete_group(self, group_id: str) -> None:
        group = await self.get_group(group_id)
        path = f"/v3/groups/{group.network}/{group.id}"
        await self._http.call("DELETE", self._api + path, f"DELETE {path}", not_found=f"there is no group {group_id!r}")
        self._networks.pop(group_id, None)

    # -- files ----------------------------------------------------------------------------

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
        if not name:
            raise InvalidArgument("a file needs a name")
        if size < 0:
            raise InvalidArgument(f"a file cannot have {size} bytes")
        pairs = dict(keyvalues or {})
        if len(pairs) > MAX_KEYVALUES:
            raise InvalidArgument(f"Pinata keeps at most {MAX_KEYVALUES} key-values per file, got {len(pairs)}")
        if not all(isinstance(key, str) and isinstance(value, str) for key, value in pairs.items()):
            raise InvalidArgument("Pinata key-values must be strings")
        actual = content.seek(0, os.SEEK_END)
        content.seek(0)
        if actual != size:
            raise InvalidArgument(f"upload of {name!r} said {size} bytes but sent {actual}")
        # A file goes to its group's network (Pinata requires it), else to the configured one.
        network = await self._network_of(group_id) if group_id else self.network
        form = {"network": network, "name": name}
        if group_id:
            form["group_id"] = group_id
        if pairs:
            form["keyvalues"] = json.dumps(pairs)

        def files() -> dict[str, Any]:
            return {"file": (name, _Window(content, size), content_type)}

        what = f"POST /v3/files (upload of {name!r}, {size} bytes)"
        response = await self._http.call(
            "POST", f"{self._uploads}/v3/files", what, repeatable=False, build_files=files, form=form
        )
        sent = {
            "name": name,
            "size": size,
            "mime_type": content_type,
            "group_id": group_id,
            "keyvalues": pairs,
            "network": network,
        }
        record = file_from_json(unwrap(response, what), network, fallback=sent)
        if not record.cid or record.cid == "pending":
            raise Unavailable(f"Pinata accepted {name!r} but sent no CID for it")
        return record

    def iter_files(self, group_id: str, *, name: str | None = None) -> AsyncIterator[FileRecord]:
        return self._files(group_id, name)

    async def _files(self, group_id: str, name: str | None) -> AsyncIterator[FileRecord]:
        try:
            network = await self._network_of(group_id)
        except NotFound:
            return  # as Pinata's own list answers (and the local backend): no such group, no files
        params = {"group": group_id}
        if name is not None:
            params["name"] = name
        async for item in self._pages(f"/v3/files/{network}", params, "files"):
            record = file_from_json(item, network)
            # Filters are re-checked: `name` may match loosely, and a filter the API ignored must not leak files in.
            if record.group_id != group_id or (name is not None and record.name != name):
                continue
            if not record.cid or record.cid == "pending":
                logger.info("skipping Pinata file %s (%r): its CID is still pending", record.id, record.name)
                continue
            yield record

    async def delete_file(self, file: FileRecord) -> None:
        if not _ID.match(file.id):
            return
        network = file.network if file.network in NETWORKS else self.network
        path = f"/v3/files/{network}/{file.id}"
        try:
            await self._http.call("DELETE", self._api + path, f"DELETE {path} ({file.name!r})")
        except NotFound:
            logger.debug("Pinata file %s was already gone", file.id)

    # -- content --------------------------------------------------------------------------

    def read(self, file: FileRecord, *, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        if offset < 0 or (length is not None and length < 0):
            raise InvalidArgument(f"cannot read {length} bytes at offset {offset}")
        if not _CID.match(file.cid):
            raise NotFound(f"{file.name!r} has no readable content yet (CID {file.cid!r})")
        return self._read(file, offset, length)

    async def _read(self, file: FileRecord, offset: int, length: int | None) -> AsyncIterator[bytes]:
        if length == 0:
            return
        position, remaining = offset, length
        failures = 0
        refreshed_link = False
        while True:
            url, headers, what = await self._content_location(file)
            if position > 0 or remaining is not None:
                end = "" if remaining is None else str(position + remaining - 1)
                headers["Range"] = f"bytes={position}-{end}"
            try:
                async with self._http.open_stream(
                    url,
                    what,
                    headers=headers,
                    not_found=f"the gateway has no content for {file.name!r} (CID {file.cid})",
                    refused=lambda response: self._refused(file, response),
                ) as response:
                    if response.status_code == 416:
                        return  # the range starts at or past the end: nothing to read
                    skip = self._bytes_to_skip(response, position, what)
                    async for chunk in response.aiter_bytes(READ_CHUNK):
                        if skip:
                            dropped = min(skip, len(chunk))
                            chunk, skip = chunk[dropped:], skip - dropped
                        if remaining is not None:
                            chunk = chunk[:remaining]
                            remaining -= len(chunk)
                        if chunk:
                            position += len(chunk)
                            yield chunk
                        if remaining == 0:
                            return
                    return
            except _LinkRefused as refusal:
                self._links.pop(file.cid, None)
                if refreshed_link:
                    raise PermissionDenied(
                        f"the gateway {self._gateway} refused a fresh signed link for {file.name!r} "
                        f"({refusal.status}); check that PINATA_GATEWAY is this account's dedicated gateway"
                    ) from None
                refreshed_link = True
            except httpx.TransportError as exc:
                # The body broke off mid-way: resume from the last byte we passed on.
                failures += 1
                if failures >= self._http.retry.max_attempts:
                    raise self._http.transport_failure(exc, what, failures, True) from exc
                delay = self._http.retry.backoff(failures)
                logger.warning("reading %s broke off at byte %d (%s); resuming in %.2f s", what, position, exc, delay)
                await self._sleep(delay)

    def _bytes_to_skip(self, response: httpx.Response, position: int, what: str) -> int:
        if response.status_code != 206:
            # A gateway that ignores Range sends everything from byte 0.
            return position
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if match is None or int(match[1]) > position:
            raise Unavailable(f"the gateway answered {what} with a partial response for the wrong range")
        return position - int(match[1])

    async def _content_location(self, file: FileRecord) -> tuple[str, dict[str, str], str]:
        """The URL to GET the file's bytes from, with its headers, and how to name it in messages."""
        headers: dict[str, str] = {}
        if self._gateway_token:
            headers[GATEWAY_TOKEN_HEADER] = self._gateway_token.reveal()
        if file.network == PRIVATE:
            return await self._signed_link(file.cid), headers, f"GET /files/{file.cid} (signed link)"
        return f"{self._gateway}/ipfs/{file.cid}", headers, f"GET /ipfs/{file.cid}"

    async def _signed_link(self, cid: str) -> str:
        cached = self._links.get(cid)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        body = {
            "url": f"{self._gateway}/files/{cid}",
            "date": int(time.time()),
            "expires": self._link_seconds,
            "method": "GET",
        }
        try:
            response = await self._sign(body)
        except NotFound:
            if self._sign_path == "/v3/files/sign":
                raise
            # Older accounts and SDKs sign at /v3/files/sign; use it from now on if it answers.
            self._sign_path = "/v3/files/sign"
            response = await self._sign(body)
        link = unwrap(response, f"POST {self._sign_path}")
        if not isinstance(link, str) or not link.startswith(("https://", "http://")):
            raise Unavailable(f"Pinata answered POST {self._sign_path} without a signed link")
        # Reuse a link for half its life, so it never expires between signing and fetching.
        self._links[cid] = (link, time.monotonic() + self._link_seconds / 2)
        return link

    async def _sign(self, body: Mapping[str, Any]) -> httpx.Response:
        return await self._http.call(
            "POST",
            self._api + self._sign_path,
            f"POST {self._sign_path}",
            json_body=body,
            not_found=f"Pinata cannot sign links at {self._sign_path}",
        )

    def _refused(self, file: FileRecord, response: httpx.Response) -> Exception:
        if file.network == PRIVATE:
            return _LinkRefused(response.status_code)
        hint = "check PINATA_GATEWAY_TOKEN" if self._gateway_token else "set PINATA_GATEWAY_TOKEN"
        return PermissionDenied(
            f"the gateway {self._gateway} refused /ipfs/{file.cid} ({response.status_code}); it has access "
            f"controls: {hint} to one of its access tokens"
        )

    # -- plumbing -------------------------------------------------------------------------

    async def _pages(self, path: str, params: Mapping[str, str], key: str) -> AsyncIterator[Any]:
        """Every item of a paginated list, following `next_page_token` until the list ends."""
        token = ""
        seen: set[str] = set()
        while True:
            query = dict(params)
            if self._page_size is not None:
                query["limit"] = str(self._page_size)
            if token:
                query["pageToken"] = token
            response = await self._http.call("GET", self._api + path, f"GET {path}", params=query)
            items, token = page(unwrap(response, f"GET {path}"), key)
            for item in items:
                yield item
            if not items or not token:
                return
            if token in seen:
                logger.warning("Pinata repeated a page token for GET %s; treating the list as complete", path)
                return
            seen.add(token)

    def _note_unavailable(self, network: str) -> None:
        if network not in self._unavailable_networks:
            self._unavailable_networks.add(network)
            logger.warning(
                "Pinata refused the %s network to this API key; reading the %s network only", network, self.network
            )

    async def aclose(self) -> None:
        if self._owns_client:
            await self._http.client.aclose()
