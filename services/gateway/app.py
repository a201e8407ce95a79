"""The composition root: ``create_app(settings)`` builds the Starlette app; ``main()`` serves it with uvicorn."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import uvicorn
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from services.common.errors import DreamForgeError
from services.common.logs import configure_logging
from services.gateway import api_v1, errors, legacy, probes
from services.gateway.backends import Backends
from services.gateway.metrics import HttpMetrics
from services.gateway.middleware import RequestContextMiddleware
from services.gateway.openapi import openapi_document
from services.gateway.routing import resource
from services.gateway.settings import Settings
from services.gateway.web import web_routes

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, registry: CollectorRegistry | None = None) -> Starlette:
    """The gateway app. gRPC channels open in its lifespan and reach handlers via ``request.state``."""
    metrics = HttpMetrics(registry or CollectorRegistry())
    document = openapi_document()

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        backends = Backends.open(settings)
        log.info("gateway ready: %s", settings.describe())
        try:
            yield {"backends": backends, "settings": settings, "metrics": metrics}
        finally:
            await backends.close()

    routes: list[BaseRoute] = [
        *api_v1.routes,
        resource("/api/v1/openapi.json", "openapi", {"GET": openapi}),
        *legacy.routes,
        *probes.routes,
        *web_routes(settings.web_dir),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(
                RequestContextMiddleware,
                metrics=metrics,
                max_body_bytes=settings.max_body_bytes,
                routes=lambda: routes,
            )
        ],
        exception_handlers={
            errors.ApiError: errors.handle_api_error,
            grpc.aio.AioRpcError: errors.handle_rpc_error,
            DreamForgeError: errors.handle_domain_error,
            HTTPException: errors.handle_http_exception,
            Exception: errors.handle_unexpected,
        },
    )
    return app


def main() -> None:
    settings = Settings.from_env()
    configure_logging("gateway", fmt=settings.log_format, level=settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,  # the request-context middleware logs one line per request, with its id
        proxy_headers=True,
        timeout_graceful_shutdown=5,
    )
