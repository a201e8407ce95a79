"""The gateway's settings, read from the environment once at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.common.config import Env, split_host_port

# `web/` sits at the repository root, two levels above this package.
DEFAULT_WEB_DIR = Path(__file__).resolve().parents[2] / "web"


@dataclass(frozen=True)
class Settings:
    """Where the gateway listens, which backends it calls, and the limits it enforces."""

    host: str = "127.0.0.1"
    port: int = 8000
    storage_addr: str = "127.0.0.1:50051"
    generator_addr: str = "127.0.0.1:50052"
    log_format: str = "text"
    log_level: str = "INFO"
    # Request bodies larger than this are refused with 413 (declared or streamed).
    max_body_bytes: int = 64 * 1024
    # Deadline of every unary gRPC call made for a request.
    rpc_timeout: float = 5.0
    # Deadline of the readiness probe's health checks.
    health_timeout: float = 2.0
    # Deadline of the admin reindex call, which reads every stored story.
    reindex_timeout: float = 300.0
    # Deadline of one streamed asset download, start to end.
    asset_timeout: float = 300.0
    # A comment line is sent on an idle event stream this often so proxies keep it open.
    sse_heartbeat: float = 15.0
    # An event stream is closed after this long; the browser reconnects with Last-Event-ID.
    sse_max_duration: float = 3600.0
    # Milliseconds a browser waits before reconnecting a dropped event stream.
    sse_retry_ms: int = 2000
    web_dir: Path = field(default=DEFAULT_WEB_DIR)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = Env(environ)
        settings = cls(
            host=env.text("GATEWAY_HOST", cls.host),
            port=env.integer("GATEWAY_PORT", cls.port, minimum=0, maximum=65535),
            storage_addr=env.text("STORAGE_ADDR", cls.storage_addr),
            generator_addr=env.text("GENERATOR_ADDR", cls.generator_addr),
            log_format=env.log_format(),
            log_level=env.log_level(),
            max_body_bytes=env.integer("GATEWAY_MAX_BODY_BYTES", cls.max_body_bytes, minimum=1024),
            rpc_timeout=env.number("GATEWAY_RPC_TIMEOUT", cls.rpc_timeout, minimum=0.1),
            health_timeout=env.number("GATEWAY_HEALTH_TIMEOUT", cls.health_timeout, minimum=0.1),
            asset_timeout=env.number("GATEWAY_ASSET_TIMEOUT", cls.asset_timeout, minimum=1.0),
            sse_heartbeat=env.number("GATEWAY_SSE_HEARTBEAT", cls.sse_heartbeat, minimum=0.1),
            sse_max_duration=env.number("GATEWAY_SSE_MAX_DURATION", cls.sse_max_duration, minimum=1.0),
            web_dir=Path(env.text("WEB_DIR", str(DEFAULT_WEB_DIR))),
        )
        # Fail at start-up, not on the first request, when an address is malformed.
        split_host_port("STORAGE_ADDR", settings.storage_addr)
        split_host_port("GENERATOR_ADDR", settings.generator_addr)
        return settings

    def describe(self) -> dict[str, object]:
        """The resolved configuration for the start-up log line (the gateway holds no secrets)."""
        return {
            "listen": f"{self.host}:{self.port}",
            "storage": self.storage_addr,
            "generator": self.generator_addr,
            "max_body_bytes": self.max_body_bytes,
            "rpc_timeout": self.rpc_timeout,
            "web_dir": str(self.web_dir),
        }
