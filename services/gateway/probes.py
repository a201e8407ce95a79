"""Liveness, readiness and metrics endpoints for orchestrators and Prometheus."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.gateway.api_v1 import metrics_of
from services.gateway.backends import backends_of, settings_of
from services.gateway.errors import error_body
from services.gateway.routing import resource


async def healthz(request: Request) -> Response:
    """The process answers HTTP; says nothing about the backends (that is /readyz)."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """200 when storage and the generator both answer their gRPC health check with SERVING, else 503 naming who."""
    checks = await backends_of(request).readiness(settings_of(request).health_timeout)
    report = {name: ("serving" if ok else "unavailable") for name, ok in checks.items()}
    down = [name for name, ok in checks.items() if not ok]
    if down:
        body = error_body("unavailable", f"not ready: {' and '.join(down)} {'is' if len(down) == 1 else 'are'} down")
        body["checks"] = report
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})
    return JSONResponse({"status": "ready", "checks": report})


async def metrics(request: Request) -> Response:
    return Response(generate_latest(metrics_of(request).registry), media_type=CONTENT_TYPE_LATEST)


routes = [
    resource("/healthz", "healthz", {"GET": healthz}),
    resource("/readyz", "readyz", {"GET": readyz}),
    resource("/metrics", "metrics", {"GET": metrics}),
]
