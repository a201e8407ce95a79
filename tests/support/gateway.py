"""Running the real gateway in-process with uvicorn on a free port, against given storage and generator addresses."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from services.gateway.app import create_app
from services.gateway.settings import Settings


@dataclass
class RunningGateway:
    url: str
    port: int
    app: Starlette
    settings: Settings
    registry: CollectorRegistry


def closed_address() -> str:
    """An address where connections are refused at once: a backend that is down."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


@contextlib.asynccontextmanager
async def running_gateway(
    storage_address: str | None = None, generator_address: str | None = None, **overrides: Any
) -> AsyncIterator[RunningGateway]:
    """Serve the gateway on 127.0.0.1 (a free port) until the block exits; missing backends count as down."""
    settings = dataclasses.replace(
        Settings(),
        host="127.0.0.1",
        port=0,
        storage_addr=storage_address or closed_address(),
        generator_addr=generator_address or closed_address(),
        **overrides,
    )
    registry = CollectorRegistry()
    app = create_app(settings, registry=registry)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="on", ws="none", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it
                raise RuntimeError("the gateway stopped before it started")
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("the gateway did not start within 30 s")
            await asyncio.sleep(0.02)
        yield RunningGateway(url=f"http://127.0.0.1:{port}", port=port, app=app, settings=settings, registry=registry)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=15)
        sock.close()
