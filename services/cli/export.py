"""Exporting a story as one self-contained file (Markdown or HTML) with its pictures embedded."""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Mapping
from typing import Any

# Fetches an asset by the URL the API gave for it: (bytes, content type).
FetchAsset = Callable[[str], tuple[bytes, str]]


def _data_uri(content: bytes, content_type: str) -> str:
    return f"data:{content_type.split(';')[0]};base64,{base64.b64encode(content).decode('ascii')}"


def _engine_line(story: Mapping[str, Any]) -> str:
    engine = story.get("engine") or {}
    if isinstance(engine, Mapping):
        label = engine.get("label") or engine.get("description")
        if label:
            return str(label)
        text, image = engine.get("text"), engine.get("image")
        if text or image:
            return f"text: {text or 'unknown'}, pictures: {image or 'none'}"
    return str(engine) if engine else "unknown engine"


def _pictures(story: Mapping[str, Any], fetch: FetchAsset) -> dict[int, str]:
    pictures: dict[int, str] = {}
    for part in story.get("parts", []):
        image = part.get("image")
        if image and image.get("url"):
            content, content_type = fetch(image["url"])
            pictures[int(part["index"])] = _data_uri(content, image.get("content_type") or content_type)
    return pictures


def to_markdown(story: Mapping[str, Any], fetch: FetchAsset) -> str:
    pictures = _pictures(story, fetch)
    lines = [f"# {story.get('title', 'Untitled')}", "", f"*{_engine_line(story)}*", ""]
    if story.get("prompt"):
        lines += [f"> {story['prompt']}", ""]
    characters = story.get("characters") or []
    if characters:
        lines += ["**Characters**", ""]
        lines += [f"- **{c.get('name', '')}**: {c.get('description', '')}" for c in characters]
        lines.append("")
    for part in story.get("parts", []):
        lines += [f"## {part.get('title') or 'Part ' + str(int(part['index']) + 1)}", ""]
        picture = pictures.get(int(part["index"]))
        if picture:
            lines += [f"![{part.get('title', '')}]({picture})", ""]
        lines += [str(part.get("text", "")), ""]
    return "\n".join(lines)


_STYLE = """
body{font:18px/1.6 Georgia,serif;max-width:42rem;margin:2rem auto;padding:0 1rem;color:#222;background:#fdfbf6}
h1{font-size:2rem;margin-bottom:.2rem}.engine{color:#666;font-style:italic}
img{max-width:100%;border-radius:8px;box-shadow:0 2px 8px rgba(0,0,0,.15)}
section{margin:2.5rem 0}.characters dt{font-weight:bold}.prompt{color:#555;border-left:3px solid #ccc;padding-left:1rem}
p{white-space:pre-wrap}
"""


def to_html(story: Mapping[str, Any], fetch: FetchAsset) -> str:
    pictures = _pictures(story, fetch)
    esc = html.escape
    title = esc(str(story.get("title", "Untitled")))
    body = [f"<h1>{title}</h1>", f'<p class="engine">{esc(_engine_line(story))}</p>']
    if story.get("prompt"):
        body.append(f'<blockquote class="prompt">{esc(str(story["prompt"]))}</blockquote>')
    characters = story.get("characters") or []
    if characters:
        items = "".join(
            f"<dt>{esc(str(c.get('name', '')))}</dt><dd>{esc(str(c.get('description', '')))}</dd>" for c in characters
        )
        body.append(f'<dl class="characters">{items}</dl>')
    for part in story.get("parts", []):
        index = int(part["index"])
        heading = esc(str(part.get("title") or f"Part {index + 1}"))
        picture = pictures.get(index)
        image = f'<img src="{picture}" alt="{heading}">' if picture else ""
        body.append(f"<section><h2>{heading}</h2>{image}<p>{esc(str(part.get('text', '')))}</p></section>")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )
