"""Liveness, readiness and metrics."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.gateway.test_inputs import SOME_ID, assert_error
from tests.support.gateway import running_gateway
from tests.support.storage import running_storage


async def test_healthz_answers_without_backends(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_503_naming_each_backend_that_is_down(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert_error(response, 503, "unavailable", "storage and generator are down")
    assert response.json()["checks"] == {"storage": "unavailable", "generator": "unavailable"}


async def test_metrics_count_requests_by_route_template_and_status(client: httpx.AsyncClient) -> None:
    await client.get(f"/api/v1/jobs/{SOME_ID}")
    await client.get("/api/v1/jobs/not-an-id")
    await client.get("/no/such/route")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'dreamforge_http_requests_total{method="GET",route="/api/v1/jobs/{job_id}",status="503"} 1.0' in text
    assert 'dreamforge_http_requests_total{method="GET",route="/api/v1/jobs/{job_id}",status="400"} 1.0' in text
    assert 'dreamforge_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert 'dreamforge_http_request_duration_seconds_count{method="GET",route="/api/v1/jobs/{job_id}"} 2.0' in text
    assert SOME_ID not in text  # raw paths never become labels
    assert "dreamforge_jobs_submitted_total" in text


async def test_readyz_names_only_the_backend_that_is_down(tmp_path: Path, redis_url: str) -> None:
    async with (
        running_storage(tmp_path, redis_url) as storage,
        running_gateway(storage.address, None) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=30) as http,
    ):
        response = await http.get("/readyz")
    assert_error(response, 503, "unavailable", "not ready: generator is down")
    assert response.json()["checks"] == {"storage": "serving", "generator": "unavailable"}
