"""The page is served at / and at its deep links; its files never point at another origin."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from services.gateway.settings import DEFAULT_WEB_DIR
from tests.gateway.test_inputs import SOME_ID, assert_error


async def test_the_page_is_served_at_the_root_and_at_deep_links(client: httpx.AsyncClient) -> None:
    root = await client.get("/")
    assert root.status_code == 200
    assert root.headers["content-type"].startswith("text/html")
    assert "<title>DreamForge</title>" in root.text
    assert root.headers["cache-control"] == "no-cache"
    for path in (f"/stories/{SOME_ID}", f"/jobs/{SOME_ID}"):
        deep = await client.get(path)
        assert deep.status_code == 200
        assert deep.text == root.text


async def test_a_deep_link_with_a_malformed_id_is_an_error_not_the_page(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/stories/nope"), 400, "invalid_argument")


async def test_static_files_are_served_with_their_types(client: httpx.AsyncClient) -> None:
    for name, media in (("app.js", "javascript"), ("style.css", "text/css"), ("icon.svg", "image/svg+xml")):
        response = await client.get(f"/static/{name}")
        assert response.status_code == 200, name
        assert media in response.headers["content-type"]


def _web_files() -> list[Path]:
    return [p for p in DEFAULT_WEB_DIR.rglob("*") if p.is_file()]


def test_no_web_file_loads_anything_from_another_origin() -> None:
    files = _web_files()
    assert len(files) >= 4
    for path in files:
        text = path.read_text()
        # The SVG's XML namespace is an identifier, not a fetch.
        text = text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE), path
        assert "@import" not in text, path


def test_the_page_has_no_inline_script_or_style_the_csp_would_block() -> None:
    html = (DEFAULT_WEB_DIR / "index.html").read_text()
    assert re.findall(r"<script\b[^>]*>", html) == ['<script type="module" src="/static/app.js">']
    assert "<style" not in html
    assert " style=" not in html
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handlers are blocked by the CSP"


def test_story_text_reaches_the_page_only_as_text() -> None:
    script = (DEFAULT_WEB_DIR / "static" / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink
