"""The OpenAPI document is valid OpenAPI 3.1 and lists exactly the app's API routes and methods."""

from __future__ import annotations

import httpx
from openapi_spec_validator import validate
from starlette.routing import Route

from services.gateway.app import create_app
from services.gateway.openapi import openapi_document
from services.gateway.settings import Settings

# The page's own routes serve HTML, not the API; they are not part of the document.
PAGE_ROUTES = {"/", "/stories/{story_id}", "/jobs/{job_id}"}


def test_the_document_is_valid_openapi() -> None:
    validate(openapi_document())


def test_the_document_lists_exactly_the_routes_and_methods_of_the_app() -> None:
    app = create_app(Settings())
    served: dict[str, set[str]] = {}
    for route in app.routes:
        if isinstance(route, Route) and route.path not in PAGE_ROUTES:
            # HEAD comes with every GET; the document lists it only where it differs (files).
            served[route.path] = {m.lower() for m in route.methods or ()} - {"head"}
    documented: dict[str, set[str]] = {}
    for path, item in openapi_document()["paths"].items():
        documented[path] = {key for key in item if key in {"get", "post", "delete", "put", "patch"}}
    assert documented == served


def test_every_operation_documents_its_error_answers() -> None:
    for path, item in openapi_document()["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            responses = operation["responses"]
            for status in ("400", "405", "500", "503", "504", "default"):
                assert status in responses, (method, path, status)
            if "requestBody" in operation:
                assert {"413", "415"} <= set(responses), (method, path)


async def test_the_document_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.json() == openapi_document()
