"""Every answer carries a request id and security headers."""

from __future__ import annotations

import httpx

from services.gateway.middleware import CONTENT_SECURITY_POLICY


async def test_a_request_id_is_made_up_when_absent_and_echoed_when_given(client: httpx.AsyncClient) -> None:
    made_up = (await client.get("/healthz")).headers["x-request-id"]
    assert len(made_up) >= 16
    assert (await client.get("/healthz")).headers["x-request-id"] != made_up
    given = await client.get("/healthz", headers={"X-Request-ID": "trace-123"})
    assert given.headers["x-request-id"] == "trace-123"


async def test_an_unsafe_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "x" * 500})
    assert response.headers["x-request-id"] != "x" * 500


async def test_errors_carry_the_request_id_and_security_headers_too(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere", headers={"X-Request-ID": "abc"})
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "abc"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_content_security_policy_allows_only_this_origin() -> None:
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
