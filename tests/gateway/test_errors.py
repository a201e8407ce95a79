"""Every error is JSON: unknown routes, wrong methods, backends that are down; gRPC codes map through one table."""

from __future__ import annotations

import socket

import grpc
import httpx
import pytest

from services.common import errors as domain
from services.gateway.errors import HTTP_BY_GRPC, api_error_from_domain, is_legacy_path
from tests.gateway.test_inputs import SOME_ID, assert_error
from tests.support.gateway import running_gateway


async def test_an_unknown_route_is_404_json(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/nothing", "/api/v2/stories", "/nothing/here", "/static/missing.js"):
        assert_error(await client.get(path), 404, "not_found")


async def test_a_wrong_method_is_405_json_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.put("/api/v1/stories", json={"prompt": "x"})
    assert_error(response, 405, "method_not_allowed", "PUT")
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    response = await client.post(f"/api/v1/jobs/{SOME_ID}")
    assert_error(response, 405, "method_not_allowed")
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "DELETE"}
    response = await client.head(f"/api/v1/jobs/{SOME_ID}/events")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    response = await client.post("/static/app.js")
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/stories"),
        ("GET", "/api/v1/stories"),
        ("GET", f"/api/v1/stories/{SOME_ID}"),
        ("DELETE", f"/api/v1/stories/{SOME_ID}"),
        ("GET", f"/api/v1/stories/{SOME_ID}/assets/image_0"),
        ("HEAD", f"/api/v1/stories/{SOME_ID}/assets/image_0"),
        ("GET", f"/api/v1/jobs/{SOME_ID}"),
        ("DELETE", f"/api/v1/jobs/{SOME_ID}"),
        ("GET", f"/api/v1/jobs/{SOME_ID}/events"),
        ("POST", "/api/v1/admin/reindex"),
        ("GET", "/api/stories"),
        ("GET", f"/api/jobs/{SOME_ID}"),
    ],
)
async def test_a_backend_that_is_down_gives_503_json_not_a_hang(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    body = {"prompt": "a bear"} if path == "/api/v1/stories" else None
    response = await client.request(method, path, json=body)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    if method != "HEAD":
        assert_error(response, 503, "unavailable", "did not answer")
        assert "ipv4" not in response.text  # channel internals stay in the log


def test_the_status_table_follows_the_design() -> None:
    expected = {
        grpc.StatusCode.INVALID_ARGUMENT: 400,
        grpc.StatusCode.NOT_FOUND: 404,
        grpc.StatusCode.ALREADY_EXISTS: 409,
        grpc.StatusCode.FAILED_PRECONDITION: 409,
        grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
        grpc.StatusCode.UNAVAILABLE: 503,
        grpc.StatusCode.DEADLINE_EXCEEDED: 504,
        grpc.StatusCode.UNAUTHENTICATED: 401,
        grpc.StatusCode.PERMISSION_DENIED: 403,
        grpc.StatusCode.INTERNAL: 502,
    }
    for code, status in expected.items():
        assert HTTP_BY_GRPC[code][0] == status, code
    # Every code a server can end a call with has an answer (OK is never an error).
    assert set(HTTP_BY_GRPC) == set(grpc.StatusCode) - {grpc.StatusCode.OK}


def test_domain_errors_map_through_the_same_table() -> None:
    error = api_error_from_domain(domain.FailedPrecondition("job already finished"))
    assert (error.status, error.code, error.message) == (409, "failed_precondition", "job already finished")


def test_only_the_original_routes_count_as_legacy() -> None:
    assert is_legacy_path("/api/stories")
    assert is_legacy_path("/api/jobs/1")
    assert not is_legacy_path("/api/v1/stories")
    assert not is_legacy_path("/healthz")


async def test_a_backend_that_accepts_but_never_answers_gives_504_at_the_deadline() -> None:
    # A socket that listens and never speaks: the call can only end by its deadline.
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    address = f"127.0.0.1:{silent.getsockname()[1]}"
    try:
        async with (
            running_gateway(address, address, rpc_timeout=0.5, health_timeout=0.5) as gateway,
            httpx.AsyncClient(base_url=gateway.url, timeout=60) as http,
        ):
            assert_error(await http.get(f"/api/v1/stories/{SOME_ID}"), 504, "deadline_exceeded")
            assert_error(await http.get(f"/api/v1/stories/{SOME_ID}/assets/image_0"), 504, "deadline_exceeded")
            assert_error(await http.get("/readyz"), 503, "unavailable", "storage and generator are down")
    finally:
        silent.close()
