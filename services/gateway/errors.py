"""HTTP errors: one table from gRPC status codes to HTTP, and the one JSON shape every error has.

Every error the gateway answers with is ``{"error": {"code": "...", "message": "..."}}``;
the routes of the original app add their own ``"message"`` key beside it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import grpc
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.common.errors import DreamForgeError
from services.common.grpc_errors import status_code_for
from services.common.logs import request_id_var

log = logging.getLogger(__name__)

# gRPC status -> (HTTP status, error code in the body). FAILED_PRECONDITION and ABORTED are
# 409 Conflict: the request is fine, the resource's state (e.g. a finished job) is not.
# INTERNAL and UNKNOWN are a backend's fault, so the gateway answers 502 Bad Gateway.
HTTP_BY_GRPC: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "invalid_argument"),
    grpc.StatusCode.OUT_OF_RANGE: (400, "out_of_range"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "unauthenticated"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "permission_denied"),
    grpc.StatusCode.NOT_FOUND: (404, "not_found"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "already_exists"),
    grpc.StatusCode.FAILED_PRECONDITION: (409, "failed_precondition"),
    grpc.StatusCode.ABORTED: (409, "aborted"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "resource_exhausted"),
    grpc.StatusCode.CANCELLED: (503, "cancelled"),
    grpc.StatusCode.DATA_LOSS: (500, "data_loss"),
    grpc.StatusCode.UNIMPLEMENTED: (501, "unimplemented"),
    grpc.StatusCode.INTERNAL: (502, "backend_error"),
    grpc.StatusCode.UNKNOWN: (502, "backend_error"),
    grpc.StatusCode.UNAVAILABLE: (503, "unavailable"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "deadline_exceeded"),
}

# HTTP statuses Starlette itself raises (unknown route, wrong method, ...) -> error code.
_CODE_BY_HTTP_STATUS = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
}


class ApiError(Exception):
    """An error answer the gateway decided on itself (validation, limits, ...)."""

    def __init__(self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def invalid(field: str, problem: str) -> ApiError:
    """A 400 that names the offending field, e.g. ``prompt: must be a string``."""
    return ApiError(400, "invalid_argument", f"{field}: {problem}")


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def error_body(code: str, message: str) -> dict[str, object]:
    return {"error": {"code": code, "message": message}}


def is_legacy_path(path: str) -> bool:
    """The original app's API lives under ``/api/`` but not ``/api/v1/``."""
    return path.startswith("/api/") and not (path == "/api/v1" or path.startswith("/api/v1/"))


def error_response(error: ApiError, path: str = "") -> JSONResponse:
    body = error_body(error.code, error.message)
    if is_legacy_path(path):
        # The original app answered errors as {"message": ...}; its clients read that key.
        body["message"] = error.message
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def api_error_from_rpc(exc: grpc.aio.AioRpcError) -> ApiError:
    """The answer a failed backend call stands for; backend details pass through only where they are meant for users."""
    code = exc.code()
    status, name = HTTP_BY_GRPC.get(code, (502, "backend_error"))
    details = exc.details() or code.name.lower()
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
        # Channel-level messages ("failed to connect to all addresses; ipv4:...") say nothing useful to users.
        details = "A backend service did not answer; try again shortly."
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            details = "A backend service did not answer in time; try again shortly."
    headers = {"Retry-After": "1"} if status in (429, 503) else None
    return ApiError(status, name, details, headers=headers)


def api_error_from_domain(exc: DreamForgeError) -> ApiError:
    status, name = HTTP_BY_GRPC.get(status_code_for(exc), (500, "internal"))
    return ApiError(status, name, exc.message)


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc, request.url.path)


async def handle_rpc_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, grpc.aio.AioRpcError)
    error = api_error_from_rpc(exc)
    log.info("backend call failed: %s %s", exc.code().name, exc.details())
    return error_response(error, request.url.path)


async def handle_domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DreamForgeError)
    return error_response(api_error_from_domain(exc), request.url.path)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _CODE_BY_HTTP_STATUS.get(exc.status_code, "http_error")
    message = {
        404: f"no route for {request.url.path}",
        405: f"method {request.method} is not allowed here",
    }.get(exc.status_code, exc.detail)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Routes say what they allow; the static files (GET and HEAD only) do not.
        headers.setdefault("Allow", "GET, HEAD")
    return error_response(ApiError(exc.status_code, code, str(message), headers=headers), request.url.path)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """Last resort: a JSON 500 with the request id, never a traceback (that goes to the log)."""
    request_id = request_id_var.get() or "unknown"
    log.error("unhandled error answering %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body("internal", f"internal error (request id {request_id})"), status_code=500)
