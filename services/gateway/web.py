"""Serving the front end in ``web/``: the page at ``/`` and at its deep links, static files under ``/static``."""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from services.gateway.inputs import checked_id
from services.gateway.routing import resource

log = logging.getLogger(__name__)

# Short caching: a new release is picked up on the next visit without file-name hashing (no build step).
STATIC_CACHE = "public, max-age=300"


def web_routes(web_dir: Path) -> list[BaseRoute]:
    """The page's routes; none (and a warning) when ``web_dir`` has no index.html."""
    index = web_dir / "index.html"
    if not index.is_file():
        log.warning("no web page: %s does not exist", index)
        return []

    async def page(request: Request) -> Response:
        # Deep links (/stories/{id}, /jobs/{id}) are the same page; its script routes on the path.
        for key in ("story_id", "job_id"):
            if key in request.path_params:
                checked_id(request.path_params[key], key)
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    return [
        resource("/", "page", {"GET": page}),
        resource("/stories/{story_id}", "page_story", {"GET": page}),
        resource("/jobs/{job_id}", "page_job", {"GET": page}),
        Mount("/static", app=_CachedStatic(directory=web_dir / "static"), name="static"),
    ]


class _CachedStatic(StaticFiles):
    def file_response(self, *args, **kwargs) -> Response:  # type: ignore[no-untyped-def]
        response = super().file_response(*args, **kwargs)
        response.headers.setdefault("Cache-Control", STATIC_CACHE)
        return response
