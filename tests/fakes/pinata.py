"""A fake Pinata, written from `shared/reference/pinata-v3.md`, served over real HTTP by uvicorn.

One server plays all three hosts: the API (`/data/testAuthentication`, `/v3/groups/...`,
`/v3/files/{network}...`, download links), the upload host (`POST /v3/files`, multipart)
and the dedicated gateway (`/ipfs/{cid}` and signed `/files/{cid}` links). Responses use
Pinata's JSON shapes: the `{"data": ...}` envelope, `next_page_token` pagination with
opaque tokens and small pages, `created_at` with Go-style trimmed fractions ending in
`Z`, and error bodies in the shapes seen from Pinata. The `name` filters match loosely
(case-insensitive substring), as the real ones may, so clients must re-check names.

Faults are injected from Python (`fail(...)`): the next N requests matching a method and
a path pattern answer 429 with `Retry-After`, 500, hang until the client gives up, drop
the connection without an answer, or are processed and then dropped unanswered. A fault
can wait for a trigger (`after=`): "drop the DELETEs that follow the next upload".

    with running_fake_pinata() as fake:
        store = PinataFileStore(Secret(fake.jwt), gateway=fake.url, api_url=fake.url, upload_url=fake.url)
"""

from __future__ import annotations

import asyncio
import base64
import email.parser
import email.policy
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from services.storage.cid import cid_for_bytes

NETWORKS = ("public", "private")
ALL_SCOPES = frozenset({"org:files:read", "org:files:write", "org:groups:read", "org:groups:write"})
FAULT_KINDS = ("429", "500", "503", "hang", "drop", "drop_after", "cut")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_CHUNK = 16 * 1024


def go_timestamp(moment: datetime) -> str:
    """RFC 3339 the way Pinata's Go services print it: UTC, `Z`, trailing zeros of the fraction trimmed."""
    text = moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


@dataclass
class FakeGroup:
    id: str
    name: str
    network: str
    created_at: datetime

    def to_json(self, date_key: str) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "is_public": False, date_key: go_timestamp(self.created_at)}


@dataclass
class FakeFile:
    id: str
    name: str
    cid: str
    size: int
    mime_type: str
    group_id: str | None
    keyvalues: dict[str, str]
    network: str
    created_at: datetime

    def to_json(self, date_key: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "cid": self.cid,
            "size": self.size,
            "number_of_files": 1,
            "mime_type": self.mime_type,
            "group_id": self.group_id,
            "keyvalues": dict(self.keyvalues),
            date_key: go_timestamp(self.created_at),
        }


@dataclass
class Fault:
    """The next `remaining` requests matching `method` and `path` (a regex searched in the path) fail as `kind`."""

    method: str
    path: str
    kind: str
    remaining: int
    retry_after: str | None = None
    # When set, the fault lies dormant until a request matching (method, path regex) succeeds,
    # and, with `after_name`, only an upload whose `name` field matches that regex.
    after: tuple[str, str] | None = None
    after_name: str | None = None
    armed: bool = True
    # Strike only every `every`-th matching request (a storm that thins out traffic instead of stopping it).
    every: int = 1
    seen: int = 0

    def strikes(self, method: str, path: str) -> bool:
        if not (self.armed and _route_matches((self.method, self.path), method, path)):
            return False
        self.seen += 1
        return self.seen % self.every == 0


@dataclass
class RecordedRequest:
    """What the fake saw: enough for tests to check headers, forms and the order of calls."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int | None = None
    fault: str | None = None
    form: dict[str, str] = field(default_factory=dict)
    upload: dict[str, Any] = field(default_factory=dict)
    json_body: Any = None


def _route_matches(route: tuple[str, str], method: str, path: str) -> bool:
    wanted, pattern = route
    return wanted in ("*", method) and re.search(pattern, path) is not None


class _Fail(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


Handler = Callable[["FakePinata", Request], Awaitable[Any]]


def _api(scope: str | None) -> Callable[[Handler], Callable[[FakePinata, Request], Awaitable[Response]]]:
    """Wrap a handler: Bearer JWT check (401), key scope check (403), network check, errors as JSON."""

    def decorate(handler: Handler) -> Callable[[FakePinata, Request], Awaitable[Response]]:
        async def endpoint(self: FakePinata, request: Request) -> Response:
            try:
                self._authorize(request, scope)
                network = request.path_params.get("network")
                if network is not None:
                    self._check_network(network)
                result = await handler(self, request)
            except _Fail as failure:
                return JSONResponse(failure.body, status_code=failure.status)
            if isinstance(result, Response):
                return result
            return JSONResponse({"data": result})

        return endpoint

    return decorate


class FakePinata:
    """Pinata's state (groups, files, blobs per network) and its HTTP API as an ASGI app."""

    def __init__(
        self,
        *,
        jwt: str = "fake-pinata-jwt.eyJzY29wZXMiOiJhbGwifQ.signature",
        gateway_token: str | None = None,
        page_size: int = 3,
        max_page_size: int = 10,
        honour_ranges: bool = True,
        download_link_route: bool = True,
        private_network: bool = True,
        date_key: str = "created_at",
    ) -> None:
        self.jwt = jwt
        self.keys: dict[str, frozenset[str]] = {jwt: ALL_SCOPES}
        self.gateway_token = gateway_token
        self.page_size = page_size
        self.max_page_size = max_page_size
        self.honour_ranges = honour_ranges
        self.download_link_route = download_link_route
        self.private_network = private_network
        self.date_key = date_key
        # Misbehaviour on demand: ignore pageToken and send the first page (and its token) again.
        self.repeat_page_tokens = False
        # Misbehaviour on demand: every page carries a token, an empty one a fresh token each time.
        self.tokens_on_every_page = False
        self.url = ""
        self.groups: dict[str, FakeGroup] = {}
        self.files: dict[str, FakeFile] = {}
        self.blobs: dict[str, bytes] = {}
        self.requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._expired_links = 0
        self._lock = threading.Lock()
        self._signing_key = uuid.uuid4().bytes
        self._last_time = datetime.now(timezone.utc)
        self._server: uvicorn.Server | None = None
        self._app = Starlette(routes=self._routes())

    # -- control from tests ---------------------------------------------------------------

    def fail(
        self,
        method: str,
        path: str,
        kind: str,
        *,
        times: int = 1,
        retry_after: str | None = None,
        after: tuple[str, str] | None = None,
        after_name: str | None = None,
        every: int = 1,
    ) -> None:
        """Make the next `times` requests matching `method` ("*" for any) and the regex `path` fail as `kind`.

        Kinds: "429" (with `retry_after` as the Retry-After header, when given), "500", "503",
        "hang" (no answer until the client disconnects), "drop" (close the connection without
        processing or answering), "drop_after" (process the request, then drop it unanswered),
        "cut" (answer, but drop the connection half-way through the body).
        `after` / `after_name` keep the fault dormant until a matching request (an upload of a
        matching name) has succeeded; `every=n` strikes only every n-th matching request.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULT_KINDS}")
        if after_name is not None and after is None:
            after = ("POST", r"^/v3/files$")
        fault = Fault(method, path, kind, times, retry_after, after, after_name, armed=after is None, every=every)
        with self._lock:
            self._faults.append(fault)

    def drop_between_upload_and_delete(self, *, upload_named: str | None = None, times: int = 100) -> None:
        """Once the next upload (of a name matching `upload_named`, if given) has succeeded,
        drop the connection of the next `times` file deletions."""
        self.fail(
            "DELETE", r"^/v3/files/", "drop", times=times, after=("POST", r"^/v3/files$"), after_name=upload_named
        )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending_faults(self) -> int:
        with self._lock:
            return sum(fault.remaining for fault in self._faults)

    def issue_expired_links(self, count: int = 1) -> None:
        """The next `count` signed download links are already expired when issued."""
        with self._lock:
            self._expired_links += count

    def add_key(self, jwt: str, scopes: Sequence[str]) -> None:
        """Another API key, with only these scopes (a key with none still passes testAuthentication)."""
        with self._lock:
            self.keys[jwt] = frozenset(scopes)

    def add_group(self, name: str, *, network: str = "public") -> FakeGroup:
        with self._lock:
            return self._new_group(name, network)

    def add_file(
        self,
        group_id: str | None,
        name: str,
        data: bytes,
        *,
        network: str | None = None,
        mime_type: str = "application/octet-stream",
        keyvalues: Mapping[str, str] | None = None,
    ) -> FakeFile:
        with self._lock:
            if network is None:
                network = self.groups[group_id].network if group_id else "public"
            return self._new_file(group_id, name, data, network, mime_type, dict(keyvalues or {}))

    def seed_original_app(
        self,
        stories: Sequence[tuple[str, Sequence[str], Sequence[bytes]]],
        *,
        index_group: str = "DREAMFORGE",
    ) -> list[str]:
        """Data as the original app left it, on the private network: per story a group named after its
        title holding `text_N` and `image_N`, and `index.txt` (`groupId<TAB>title` lines) in `index_group`.
        Returns the story group ids in order.
        """
        ids = []
        lines = []
        for title, texts, images in stories:
            group = self.add_group(title, network="private")
            for number, text in enumerate(texts):
                self.add_file(group.id, f"text_{number}", text.encode(), mime_type="text/plain")
            for number, image in enumerate(images):
                self.add_file(group.id, f"image_{number}", image, mime_type="image/png")
            ids.append(group.id)
            lines.append(f"{group.id}\t{title}\n")
        index = self.add_group(index_group, network="private")
        self.add_file(index.id, "index.txt", "".join(lines).encode(), mime_type="text/plain")
        return ids

    def files_named(self, name: str, *, group_id: str | None = None) -> list[FakeFile]:
        with self._lock:
            return [
                file
                for file in self.files.values()
                if file.name == name and (group_id is None or file.group_id == group_id)
            ]

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        """Recorded requests whose method matches ("*" for any) and whose path matches the regex."""
        with self._lock:
            return [seen for seen in self.requests if _route_matches((method, path), seen.method, seen.path)]

    # -- ASGI ---------------------------------------------------------------------------

    def attach(self, server: uvicorn.Server, url: str) -> None:
        self._server = server
        self.url = url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        seen = RecordedRequest(
            method=scope["method"],
            path=scope["path"],
            query={key: value for key, value in _query_pairs(scope)},
            headers={key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]},
        )
        with self._lock:
            self.requests.append(seen)
            fault = self._take_fault(seen.method, seen.path)
        scope["fake_request"] = seen
        if fault is None:
            await self._app(scope, receive, self._watch(seen, send))
            return
        seen.fault = fault.kind
        if fault.kind in ("429", "500", "503"):
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            body = {"error": "Too Many Requests" if fault.kind == "429" else "Internal Server Error"}
            seen.status = int(fault.kind)
            await JSONResponse(body, status_code=int(fault.kind), headers=headers)(scope, receive, send)
        elif fault.kind == "hang":
            await _drain_until_disconnect(receive)
        elif fault.kind == "drop":
            await self._drop(scope)
        elif fault.kind == "cut":
            await self._app(scope, receive, self._watch(seen, self._cut(scope, send)))
        else:  # drop_after: do the work, throw the answer away, then drop the connection
            await self._app(scope, receive, self._watch(seen, _discard))
            await self._drop(scope)

    def _cut(self, scope: Scope, send: Send) -> Send:
        """A `send` that passes the status and half of the body on (by Content-Length), then drops the connection."""
        half = 1
        sent = 0
        done = False

        async def cut(message: Message) -> None:
            nonlocal half, sent, done
            if done:
                return
            if message["type"] == "http.response.start":
                declared = dict(message.get("headers", [])).get(b"content-length")
                half = max(1, int(declared) // 2) if declared else 1
                await send(message)
                return
            body = message.get("body", b"")
            if sent + len(body) < half and message.get("more_body", False):
                sent += len(body)
                await send(message)
                return
            await send({"type": "http.response.body", "body": body[: max(1, half - sent)], "more_body": True})
            done = True
            await self._drop(scope)

        return cut

    def _watch(self, seen: RecordedRequest, send: Send) -> Send:
        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen.status = message["status"]
                if 200 <= seen.status < 300:
                    with self._lock:
                        self._arm(seen)
            await send(message)

        return watched

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self._faults:
            if fault.strikes(method, path):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _arm(self, seen: RecordedRequest) -> None:
        for fault in self._faults:
            if fault.armed or fault.after is None or not _route_matches(fault.after, seen.method, seen.path):
                continue
            if fault.after_name is None or re.search(fault.after_name, seen.form.get("name", "")):
                fault.armed = True

    async def _drop(self, scope: Scope) -> None:
        """Abort the TCP connection the request came on: the client sees it vanish with no answer."""
        client = tuple(scope.get("client") or ())
        server = self._server
        if server is None:
            raise RuntimeError("dropping connections needs the fake served by uvicorn (running_fake_pinata)")
        for connection in list(server.server_state.connections):
            if getattr(connection, "client", None) == client:
                connection.transport.abort()
        # Let uvicorn notice the disconnect before this request "returns" without an answer.
        for _ in range(3):
            await asyncio.sleep(0)

    # -- routes -------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        return [
            Route("/data/testAuthentication", self._test_authentication, methods=["GET"]),
            Route("/v3/groups/{network}", self._create_group, methods=["POST"]),
            Route("/v3/groups/{network}", self._list_groups, methods=["GET"]),
            Route("/v3/groups/{network}/{group_id}", self._get_group, methods=["GET"]),
            Route("/v3/groups/{network}/{group_id}", self._delete_group, methods=["DELETE"]),
            Route("/v3/files", self._upload, methods=["POST"]),
            Route("/v3/files/private/download_link", self._download_link, methods=["POST"]),
            Route("/v3/files/sign", self._sign_legacy, methods=["POST"]),
            Route("/v3/files/{network}", self._list_files, methods=["GET"]),
            Route("/v3/files/{network}/{file_id}", self._get_file, methods=["GET"]),
            Route("/v3/files/{network}/{file_id}", self._delete_file, methods=["DELETE"]),
            Route("/ipfs/{cid}", self._gateway_ipfs, methods=["GET"]),
            Route("/files/{cid}", self._gateway_files, methods=["GET"]),
        ]

    def _authorize(self, request: Request, scope: str | None) -> None:
        header = request.headers.get("authorization", "")
        token = header[len("Bearer ") :] if header.startswith("Bearer ") else None
        with self._lock:
            scopes = self.keys.get(token) if token else None
        if scopes is None:
            raise _Fail(401, {"error": {"reason": "INVALID_CREDENTIALS", "details": "Invalid/expired credentials"}})
        if scope is not None and scope not in scopes:
            raise _Fail(
                403,
                {"error": {"reason": "NO_SCOPES_FOUND", "details": "This key does not have the required scopes"}},
            )

    def _check_network(self, network: str) -> None:
        if network not in NETWORKS:
            raise _Fail(400, {"error": f"Invalid network {network!r}: use public or private"})
        if network == "private" and not self.private_network:
            raise _Fail(403, {"error": {"reason": "FORBIDDEN", "details": "Private IPFS is not on your plan"}})

    @_api(None)
    async def _test_authentication(self, request: Request) -> Response:
        return JSONResponse({"message": "Congratulations! You are communicating with the Pinata API!"})

    @_api("org:groups:write")
    async def _create_group(self, request: Request) -> Any:
        body = await _json_body(request)
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name:
            raise _Fail(400, {"error": "Invalid request format."})
        with self._lock:
            return self._new_group(name, request.path_params["network"]).to_json(self.date_key)

    @_api("org:groups:read")
    async def _list_groups(self, request: Request) -> Any:
        network = request.path_params["network"]
        name = request.query_params.get("name")
        with self._lock:
            groups = [g for g in self.groups.values() if g.network == network and _loose(name, g.name)]
            items, token = self._page(groups, request)
            return {"groups": [group.to_json(self.date_key) for group in items], "next_page_token": token}

    @_api("org:groups:read")
    async def _get_group(self, request: Request) -> Any:
        with self._lock:
            group = self._group(request.path_params["network"], request.path_params["group_id"])
            return group.to_json(self.date_key)

    @_api("org:groups:write")
    async def _delete_group(self, request: Request) -> Any:
        with self._lock:
            group = self._group(request.path_params["network"], request.path_params["group_id"])
            del self.groups[group.id]
            # Pinata keeps the files; only the grouping goes.
            for file in self.files.values():
                if file.group_id == group.id:
                    file.group_id = None
        return None

    @_api("org:files:write")
    async def _upload(self, request: Request) -> Any:
        form, part = _parse_multipart(request.headers.get("content-type", ""), await request.body())
        seen: RecordedRequest = request.scope["fake_request"]
        seen.form = dict(form)
        if part is None:
            raise _Fail(400, {"error": "Invalid request format: no file part"})
        filename, mime_type, data = part
        seen.upload = {"filename": filename, "content_type": mime_type, "size": len(data)}
        network = form.get("network", "private")  # the server's default, per the OpenAPI
        self._check_network(network)
        keyvalues: dict[str, str] = {}
        if "keyvalues" in form:
            try:
                keyvalues = json.loads(form["keyvalues"])
            except ValueError:
                raise _Fail(400, {"error": "keyvalues must be a JSON object"}) from None
            if not isinstance(keyvalues, dict) or not all(isinstance(v, str) for v in keyvalues.values()):
                raise _Fail(400, {"error": "keyvalues must map strings to strings"})
            if len(keyvalues) > 10:
                raise _Fail(400, {"error": "at most 10 keyvalues"})
        group_id = form.get("group_id") or None
        with self._lock:
            if group_id is not None:
                group = self.groups.get(group_id)
                if group is None or group.network != network:
                    raise _Fail(400, {"error": f"group {group_id} not found on the {network} network"})
            duplicate = any(file.cid == cid_for_bytes(data) for file in self.files.values())
            file = self._new_file(group_id, form.get("name") or filename, data, network, mime_type, keyvalues)
            answer = file.to_json(self.date_key)
        answer.update({"network": network, "user_id": "fake-user", "is_duplicate": duplicate})
        return answer

    @_api("org:files:read")
    async def _list_files(self, request: Request) -> Any:
        network = request.path_params["network"]
        query = request.query_params
        name, group, cid = query.get("name"), query.get("group"), query.get("cid")
        with self._lock:
            files = [
                file
                for file in self.files.values()
                if file.network == network
                and _loose(name, file.name)
                and (group is None or file.group_id == (None if group == "null" else group))
                and (cid is None or file.cid == cid)
            ]
            items, token = self._page(files, request)
            return {"files": [file.to_json(self.date_key) for file in items], "next_page_token": token}

    @_api("org:files:read")
    async def _get_file(self, request: Request) -> Any:
        with self._lock:
            return self._file(request.path_params["network"], request.path_params["file_id"]).to_json(self.date_key)

    @_api("org:files:write")
    async def _delete_file(self, request: Request) -> Any:
        with self._lock:
            file = self._file(request.path_params["network"], request.path_params["file_id"])
            del self.files[file.id]
            if not any(other.cid == file.cid for other in self.files.values()):
                self.blobs.pop(file.cid, None)
        return None

    @_api("org:files:write")
    async def _download_link(self, request: Request) -> Any:
        if not self.download_link_route:
            raise _Fail(404, {"error": "Not Found"})
        return await self._signed_link(request)

    @_api("org:files:write")
    async def _sign_legacy(self, request: Request) -> Any:
        return await self._signed_link(request)

    async def _signed_link(self, request: Request) -> str:
        body = await _json_body(request)
        request.scope["fake_request"].json_body = body
        if not isinstance(body, dict):
            raise _Fail(400, {"error": "Invalid request format."})
        url, date, expires, method = body.get("url"), body.get("date"), body.get("expires"), body.get("method")
        if not isinstance(url, str) or not isinstance(date, int) or not isinstance(expires, int) or method != "GET":
            raise _Fail(400, {"error": "url, date, expires and method are required"})
        match = re.match(r"^https?://[^/]+(/files/[A-Za-z0-9]+)$", url)
        if match is None:
            raise _Fail(400, {"error": "url must be https://{gateway}/files/{cid}"})
        with self._lock:
            if self._expired_links:
                self._expired_links -= 1
                date -= expires + 60
        query = f"X-Algorithm=PINATA1&X-Date={date}&X-Expires={expires}&X-Method=GET"
        return f"{url}?{query}&X-Signature={self._signature(match[1], date, expires)}"

    def _signature(self, path: str, date: int, expires: int) -> str:
        return hmac.new(self._signing_key, f"{path}|{date}|{expires}|GET".encode(), hashlib.sha256).hexdigest()

    async def _gateway_ipfs(self, request: Request) -> Response:
        if self.gateway_token is not None:
            offered = request.headers.get("x-pinata-gateway-token") or request.query_params.get("pinataGatewayToken")
            if offered != self.gateway_token:
                return Response("Access denied: this gateway requires an access token", status_code=403)
        cid = request.path_params["cid"]
        with self._lock:
            pinned = any(file.cid == cid and file.network == "public" for file in self.files.values())
            data = self.blobs.get(cid) if pinned else None
        if data is None:
            return Response("Not found: this gateway serves only content pinned by its account", status_code=404)
        return self._content(request, data)

    async def _gateway_files(self, request: Request) -> Response:
        query = request.query_params
        try:
            date, expires = int(query["X-Date"]), int(query["X-Expires"])
            signature = query["X-Signature"]
        except (KeyError, ValueError):
            return Response("Unauthorized: a signed link is required", status_code=401)
        if not hmac.compare_digest(signature, self._signature(request.url.path, date, expires)):
            return Response("Forbidden: bad signature", status_code=403)
        if time.time() > date + expires:
            return Response("Forbidden: this link has expired", status_code=403)
        with self._lock:
            data = self.blobs.get(request.path_params["cid"])
        if data is None:
            return Response("Not found", status_code=404)
        return self._content(request, data)

    def _content(self, request: Request, data: bytes) -> Response:
        start, end, status = 0, len(data), 200
        headers = {"Accept-Ranges": "bytes"}
        wanted = _RANGE.match(request.headers.get("range", ""))
        if wanted is not None and self.honour_ranges:
            start = int(wanted[1])
            if start >= len(data):
                return Response(status_code=416, headers={"Content-Range": f"bytes */{len(data)}"})
            end = min(len(data), int(wanted[2]) + 1) if wanted[2] else len(data)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
        headers["Content-Length"] = str(end - start)

        async def chunks() -> Any:
            for offset in range(start, end, _CHUNK):
                yield data[offset : min(end, offset + _CHUNK)]

        return StreamingResponse(chunks(), status_code=status, headers=headers, media_type="application/octet-stream")

    # -- state (called with the lock held) ------------------------------------------------

    def _now(self) -> datetime:
        # Strictly increasing, so "newest" is always well defined.
        moment = max(datetime.now(timezone.utc), self._last_time + timedelta(microseconds=1))
        self._last_time = moment
        return moment

    def _new_group(self, name: str, network: str) -> FakeGroup:
        group = FakeGroup(str(uuid.uuid4()), name, network, self._now())
        self.groups[group.id] = group
        return group

    def _new_file(
        self,
        group_id: str | None,
        name: str,
        data: bytes,
        network: str,
        mime_type: str,
        keyvalues: dict[str, str],
    ) -> FakeFile:
        cid = cid_for_bytes(data)
        self.blobs[cid] = data
        file = FakeFile(str(uuid.uuid4()), name, cid, len(data), mime_type, group_id, keyvalues, network, self._now())
        self.files[file.id] = file
        return file

    def _group(self, network: str, group_id: str) -> FakeGroup:
        group = self.groups.get(group_id)
        if group is None or group.network != network:
            raise _Fail(404, {"error": {"reason": "NOT_FOUND", "details": f"group {group_id} not found"}})
        return group

    def _file(self, network: str, file_id: str) -> FakeFile:
        file = self.files.get(file_id)
        if file is None or file.network != network:
            raise _Fail(404, {"error": {"reason": "NOT_FOUND", "details": f"file {file_id} not found"}})
        return file

    def _page(self, items: Sequence[Any], request: Request) -> tuple[list[Any], str]:
        """Newest first, keyset-paginated; a full page always carries a token, so the last one may be empty."""
        ordered = sorted(items, key=lambda item: (item.created_at, item.id), reverse=True)
        limit_text = request.query_params.get("limit")
        try:
            limit = min(int(limit_text), self.max_page_size) if limit_text else self.page_size
        except ValueError:
            raise _Fail(400, {"error": "limit must be a number"}) from None
        if limit < 1:
            raise _Fail(400, {"error": "limit must be positive"})
        token = None if self.repeat_page_tokens else request.query_params.get("pageToken")
        if token:
            try:
                after = json.loads(base64.urlsafe_b64decode(token.encode()))
                key = (datetime.fromisoformat(after["t"]), after["id"])
            except (ValueError, KeyError, TypeError):
                raise _Fail(400, {"error": "invalid pageToken"}) from None
            ordered = [item for item in ordered if (item.created_at, item.id) < key]
        chosen = ordered[:limit]
        if len(chosen) < limit and not self.tokens_on_every_page:
            return chosen, ""
        if chosen:
            after_time, after_id = chosen[-1].created_at, chosen[-1].id
        else:
            after_time, after_id = datetime(1, 1, 1, tzinfo=timezone.utc), str(uuid.uuid4())
        marker = json.dumps({"t": after_time.isoformat(), "id": after_id}).encode()
        return chosen, base64.urlsafe_b64encode(marker).decode()


def _loose(wanted: str | None, name: str) -> bool:
    return wanted is None or wanted.lower() in name.lower()


def _query_pairs(scope: Scope) -> Iterator[tuple[str, str]]:
    from urllib.parse import parse_qsl

    yield from parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        raise _Fail(400, {"error": "Invalid request format."}) from None


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], tuple[str, str, bytes] | None]:
    """Form fields and the `file` part (filename, content type, bytes), read with the stdlib MIME parser."""
    if not content_type.startswith("multipart/form-data"):
        raise _Fail(400, {"error": "Invalid request format: expected multipart/form-data"})
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise _Fail(400, {"error": "Invalid request format: malformed multipart body"})
    form: dict[str, str] = {}
    part_found: tuple[str, str, bytes] | None = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            raise _Fail(400, {"error": "Invalid request format: a part without a name"})
        if name == "file":
            filename = part.get_filename()
            if not filename or part.get("content-type") is None:
                raise _Fail(400, {"error": "the file part needs a filename and a content type"})
            # Kept as sent, parameters included (e.g. "text/plain; charset=utf-8").
            raw_type = next(str(value) for key, value in part.raw_items() if key.lower() == "content-type")
            part_found = (filename, " ".join(raw_type.split()), payload)
        else:
            form[name] = payload.decode("utf-8")
    return form, part_found


async def _drain_until_disconnect(receive: Receive) -> None:
    """Read the request, then wait (at most a minute) for the client to give up and disconnect."""

    async def wait() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    with suppress(asyncio.TimeoutError):
        await asyncio.wait_for(wait(), timeout=60)


async def _discard(message: Message) -> None:
    return None


@contextmanager
def running_fake_pinata(fake: FakePinata | None = None) -> Iterator[FakePinata]:
    """Serve `fake` (a new one by default) over HTTP on a free loopback port, in a background thread."""
    fake = fake or FakePinata()
    # uvicorn binds port 0 itself: handing it a socket we bound made every answer ~40 ms slower.
    config = uvicorn.Config(
        fake,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        access_log=False,
        http="h11",
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fake-pinata", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake Pinata server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    fake.attach(server, f"http://127.0.0.1:{port}")
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(timeout=30)
