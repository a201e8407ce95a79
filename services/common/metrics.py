"""Serving a service's Prometheus registry over HTTP on its own port."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from services.common.config import split_host_port

log = logging.getLogger(__name__)


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: Thread
    port: int

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_metrics(
    address: str | None, registry: CollectorRegistry, *, setting: str = "METRICS_ADDR"
) -> MetricsServer | None:
    """Expose ``registry`` at ``http://address/metrics``; ``None`` or ``""`` turns it off."""
    if not address:
        return None
    host, port = split_host_port(setting, address)
    server, thread = start_http_server(port, addr=host, registry=registry)
    bound = int(server.server_address[1])
    log.info("metrics on http://%s:%d/metrics", host, bound)
    return MetricsServer(server=server, thread=thread, port=bound)
