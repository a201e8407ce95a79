"""What `dreamforge up` needs to know to start the stack, read once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.common.config import Env, split_host_port


@dataclass(frozen=True)
class StackSettings:
    data_dir: Path
    redis_url: str | None
    gateway_host: str
    gateway_port: int
    storage_addr: str
    generator_addr: str
    storage_metrics_addr: str
    generator_metrics_addr: str
    # Seconds each service may take to answer its health check before we give up.
    startup_timeout: float = 60.0
    # Seconds each service gets to drain on stop before it is killed.
    stop_timeout: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StackSettings:
        env = Env(environ)
        storage_addr = env.text("STORAGE_ADDR", "127.0.0.1:50051")
        generator_addr = env.text("GENERATOR_ADDR", "127.0.0.1:50052")
        split_host_port("STORAGE_ADDR", storage_addr)
        split_host_port("GENERATOR_ADDR", generator_addr)
        return cls(
            data_dir=Path(env.text("DATA_DIR", "./data")).resolve(),
            redis_url=env.optional("REDIS_URL"),
            gateway_host=env.text("GATEWAY_HOST", "127.0.0.1"),
            gateway_port=env.integer("GATEWAY_PORT", 8000, minimum=0, maximum=65535),
            storage_addr=storage_addr,
            generator_addr=generator_addr,
            storage_metrics_addr=env.text("STORAGE_METRICS_ADDR", "127.0.0.1:9101"),
            generator_metrics_addr=env.text("GENERATOR_METRICS_ADDR", "127.0.0.1:9102"),
            startup_timeout=env.number("STACK_STARTUP_TIMEOUT", 60.0, minimum=1),
            stop_timeout=env.number("STACK_STOP_TIMEOUT", 30.0, minimum=1),
        )

    @property
    def gateway_url(self) -> str:
        host = "127.0.0.1" if self.gateway_host in ("0.0.0.0", "::", "") else self.gateway_host
        return f"http://{host}:{self.gateway_port}"

    def child_environment(self, redis_url: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment every service starts with: ours, plus what the stack decided."""
        environ = dict(os.environ if base is None else base)
        environ.update(
            {
                "DATA_DIR": str(self.data_dir),
                "REDIS_URL": redis_url,
                "GATEWAY_HOST": self.gateway_host,
                "GATEWAY_PORT": str(self.gateway_port),
                "STORAGE_ADDR": self.storage_addr,
                "GENERATOR_ADDR": self.generator_addr,
                "STORAGE_METRICS_ADDR": self.storage_metrics_addr,
                "GENERATOR_METRICS_ADDR": self.generator_metrics_addr,
                "PYTHONUNBUFFERED": "1",
            }
        )
        return environ
