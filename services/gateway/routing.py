"""One route per path with a handler per method, so a wrong method gets 405 with the full ``Allow`` list."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Handler = Callable[[Request], Awaitable[Response]]


def resource(path: str, name: str, handlers: dict[str, Handler], *, head: bool = True) -> Route:
    """A route for ``path`` that calls ``handlers[method]``; HEAD is served by the GET handler unless ``head=False``."""
    table = dict(handlers)
    if "GET" in table and head:
        table.setdefault("HEAD", table["GET"])

    async def endpoint(request: Request) -> Response:
        return await table[request.method](request)

    endpoint.__name__ = name
    route = Route(path, endpoint, methods=list(table), name=name)
    if not head:
        # Starlette adds HEAD to every GET route; an event stream has no meaningful HEAD.
        route.methods = set(table)
    return route
