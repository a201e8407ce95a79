"""The request context every answer goes through: request id, body limit, security headers, metrics, last-resort 500."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable

from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.logs import request_id_var
from services.gateway.errors import ApiError, error_body, is_legacy_path
from services.gateway.metrics import HttpMetrics, route_template

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# Everything the page needs comes from this origin; pictures may also be blob:/data: URLs.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def payload_too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"request body is larger than {limit} bytes")


class RequestContextMiddleware:
    """Wraps every HTTP request of the app (inside Starlette's error middleware, outside its exception handlers)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: HttpMetrics,
        max_body_bytes: int,
        routes: Callable[[], list[BaseRoute]],
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        headers = Headers(scope=scope)
        given = headers.get(REQUEST_ID_HEADER, "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        status = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = int(message["status"])
                out = MutableHeaders(scope=message)
                out[REQUEST_ID_HEADER] = request_id
                for name, value in SECURITY_HEADERS.items():
                    if name not in out:
                        out[name] = value
            await send(message)

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # Streamed (chunked) bodies have no Content-Length to check up front.
                    raise payload_too_large(self.max_body_bytes)
            return message

        try:
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_body_bytes:
                await self._send_json(send_with_headers, payload_too_large(self.max_body_bytes), scope["path"])
            else:
                await self.app(scope, limited_receive, send_with_headers)
        except Exception:
            log.exception("unhandled error answering %s %s", scope["method"], scope["path"])
            if response_started:
                raise  # the client already has a status line; all we can do is drop the connection
            await self._send_json(
                send_with_headers,
                ApiError(500, "internal", f"internal error (request id {request_id})"),
                scope["path"],
            )
        finally:
            elapsed = time.monotonic() - started
            route = route_template(scope, self.routes())
            self.metrics.observe(scope["method"], route, status, elapsed)
            log.info("%s %s -> %d in %.1f ms", scope["method"], route, status, elapsed * 1000)
            request_id_var.reset(token)

    @staticmethod
    async def _send_json(send: Send, error: ApiError, path: str) -> None:
        payload = error_body(error.code, error.message)
        if is_legacy_path(path):
            payload["message"] = error.message  # the original app's shape, as in errors.error_response
        body = json.dumps(payload).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
        if error.status == 413:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
