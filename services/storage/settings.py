"""The storage service's settings, read from the environment once, at start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.common.config import ConfigError, Env, Secret, mask, redact_url, split_host_port

BACKENDS = ("auto", "local", "pinata")
NETWORKS = ("public", "private")
DEFAULT_MAX_ASSET_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """Everything `create_server` needs. Tests build it directly; `from_env` reads the environment."""

    redis_url: str
    storage_addr: str = "127.0.0.1:50051"
    data_dir: Path = Path("./data")
    # Resolved: "local" or "pinata" ("auto" is decided in from_env).
    backend: str = "local"
    max_asset_bytes: int = DEFAULT_MAX_ASSET_BYTES
    metrics_addr: str | None = None
    log_format: str = "text"
    log_level: str = "INFO"
    index_group_name: str = "DREAMFORGE"
    # Named like the variables, as `services.storage.backends.pinata.PinataConfig` expects.
    pinata_jwt: Secret = field(default_factory=lambda: Secret(""))
    pinata_gateway: str = ""
    pinata_gateway_token: Secret = field(default_factory=lambda: Secret(""))
    pinata_network: str = "public"
    pinata_api_url: str = "https://api.pinata.cloud"
    pinata_upload_url: str = "https://uploads.pinata.cloud"
    # Index tuning: entries between snapshots, and how long a commit lock lives if its holder dies.
    index_compact_every: int = 64
    index_lock_ttl_ms: int = 15_000

    @property
    def store_dir(self) -> Path:
        """Where the local backend keeps its files."""
        return self.data_dir / "store"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = Env(environ)
        redis_url = env.optional("REDIS_URL")
        if redis_url is None:
            raise ConfigError(
                "Config 'REDIS_URL' is missing: the storage service needs a Redis or Valkey for its locks "
                "(`make up` starts one and sets REDIS_URL), e.g. REDIS_URL=redis://127.0.0.1:6379/0"
            )
        storage_addr = env.text("STORAGE_ADDR", "127.0.0.1:50051")
        split_host_port("STORAGE_ADDR", storage_addr)
        metrics_addr = env.optional("STORAGE_METRICS_ADDR")
        if metrics_addr is not None:
            split_host_port("STORAGE_METRICS_ADDR", metrics_addr)
        jwt = env.secret("PINATA_JWT")
        backend = env.choice("STORAGE_BACKEND", "auto", BACKENDS)
        if backend == "auto":
            backend = "pinata" if jwt else "local"
        if backend == "pinata" and not jwt:
            raise ConfigError("Config 'PINATA_JWT' is missing: STORAGE_BACKEND=pinata needs a Pinata API key (JWT)")
        return cls(
            redis_url=redis_url,
            storage_addr=storage_addr,
            data_dir=Path(env.text("DATA_DIR", "./data")),
            backend=backend,
            max_asset_bytes=env.integer("MAX_ASSET_BYTES", DEFAULT_MAX_ASSET_BYTES, minimum=1),
            metrics_addr=metrics_addr,
            log_format=env.log_format(),
            log_level=env.log_level(),
            index_group_name=env.text("PINATA_INDEX_GROUP_NAME", "DREAMFORGE"),
            pinata_jwt=jwt,
            pinata_gateway=env.text("PINATA_GATEWAY", ""),
            pinata_gateway_token=env.secret("PINATA_GATEWAY_TOKEN"),
            pinata_network=env.choice("PINATA_NETWORK", "public", NETWORKS),
            pinata_api_url=env.text("PINATA_API_URL", "https://api.pinata.cloud"),
            pinata_upload_url=env.text("PINATA_UPLOAD_URL", "https://uploads.pinata.cloud"),
            index_compact_every=env.integer("STORAGE_INDEX_COMPACT_EVERY", 64, minimum=1),
            index_lock_ttl_ms=env.integer("STORAGE_INDEX_LOCK_TTL_MS", 15_000, minimum=100),
        )

    def describe(self) -> dict[str, str]:
        """The resolved configuration for the start-up log line: secrets masked, the Redis password hidden."""
        described = {
            "STORAGE_ADDR": self.storage_addr,
            "DATA_DIR": str(self.data_dir),
            "REDIS_URL": redact_url(self.redis_url),
            "STORAGE_BACKEND": self.backend,
            "MAX_ASSET_BYTES": str(self.max_asset_bytes),
            "STORAGE_METRICS_ADDR": self.metrics_addr or "(off)",
            "LOG_FORMAT": self.log_format,
            "LOG_LEVEL": self.log_level,
            "PINATA_INDEX_GROUP_NAME": self.index_group_name,
            "STORAGE_INDEX_COMPACT_EVERY": str(self.index_compact_every),
            "STORAGE_INDEX_LOCK_TTL_MS": str(self.index_lock_ttl_ms),
        }
        if self.backend == "pinata":
            described.update(
                {
                    "PINATA_JWT": mask(self.pinata_jwt),
                    "PINATA_GATEWAY": self.pinata_gateway or "(not set)",
                    "PINATA_GATEWAY_TOKEN": mask(self.pinata_gateway_token),
                    "PINATA_NETWORK": self.pinata_network,
                    "PINATA_API_URL": self.pinata_api_url,
                    "PINATA_UPLOAD_URL": self.pinata_upload_url,
                }
            )
        return described
