"""An exported story is one self-contained file: pictures embedded, story text never treated as markup."""

from __future__ import annotations

import base64
from typing import Any

from services.cli.export import to_html, to_markdown

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def _story() -> dict[str, Any]:
    return {
        "id": "0193a4b2-0000-7000-8000-000000000001",
        "title": "The Bear <and> the Honey",
        "prompt": "a bear who finds a mine full of honey",
        "engine": {"label": "Offline engine (not an AI model)"},
        "characters": [{"name": "Bruno", "description": "a big brown bear with a red scarf"}],
        "parts": [
            {
                "index": 0,
                "title": "The Mine",
                "text": "Bruno found <script>alert(1)</script> a mine.",
                "image": {"url": "/api/v1/stories/x/assets/image_0", "content_type": "image/png"},
            },
            {"index": 1, "title": "Home", "text": "He went home.", "image": None},
        ],
    }


def _fetch(url: str) -> tuple[bytes, str]:
    assert url == "/api/v1/stories/x/assets/image_0"
    return PNG, "image/png"


def test_html_embeds_pictures_as_data_uris_and_escapes_text() -> None:
    document = to_html(_story(), _fetch)
    assert "data:image/png;base64," + base64.b64encode(PNG).decode() in document
    assert "<script>" not in document
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document
    assert "The Bear &lt;and&gt; the Honey" in document
    assert "Offline engine (not an AI model)" in document
    assert "http://" not in document and "https://" not in document  # opens offline


def test_markdown_has_title_characters_parts_and_embedded_picture() -> None:
    document = to_markdown(_story(), _fetch)
    assert document.startswith("# The Bear <and> the Honey")
    assert "- **Bruno**: a big brown bear with a red scarf" in document
    assert "## The Mine" in document and "## Home" in document
    assert "](data:image/png;base64," in document
    assert document.count("data:image/png") == 1  # the second part has no picture
