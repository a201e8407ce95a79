"""The generator's configuration, read once from the environment into a frozen object."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from services.common.config import ConfigError, Env, Secret, mask, redact_url, split_host_port

log = logging.getLogger(__name__)

TEXT_ENGINES = ("auto", "openai", "offline")
IMAGE_ENGINES = ("auto", "openai", "offline", "none")


@dataclass(frozen=True)
class Settings:
    """Everything the generator reads from the environment; tests build it directly."""

    redis_url: str
    generator_addr: str = "127.0.0.1:50052"
    storage_addr: str = "127.0.0.1:50051"
    # `auto` resolves to `openai` when an API key is set, else `offline` (see `resolved_*_engine`).
    text_engine: str = "auto"
    image_engine: str = "auto"
    openai_api_key: Secret = field(default_factory=lambda: Secret(""))
    openai_base_url: str | None = None
    text_model: str = "gpt-4o-mini"
    image_model: str = "gpt-image-1"
    image_size: str = "1024x1024"
    text_temperature: float = 0.75
    # Seconds for one model call before it counts as a (transient) timeout.
    model_timeout_seconds: float = 120.0
    # Tries of one model call inside a job attempt (429/5xx/timeouts), before the job itself retries.
    model_call_attempts: int = 3
    story_parts: int = 3
    image_style: str = "Pencil and Ink"
    workers: int = 2
    image_concurrency: int = 2
    job_max_attempts: int = 4
    job_retry_base_seconds: float = 2.0
    job_retry_max_seconds: float = 300.0
    job_visibility_timeout_seconds: float = 60.0
    job_retention_seconds: int = 7 * 24 * 3600
    shutdown_grace_seconds: float = 30.0
    storage_timeout_seconds: float = 30.0
    # Key prefix in Redis, so several deployments (or tests) can share one server.
    redis_prefix: str = "dreamforge:gen"
    metrics_addr: str | None = None
    log_format: str = "text"
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if self.text_engine not in TEXT_ENGINES:
            raise ConfigError(
                f"Config 'TEXT_ENGINE' must be one of {', '.join(TEXT_ENGINES)}; got {self.text_engine!r}"
            )
        if self.image_engine not in IMAGE_ENGINES:
            allowed = ", ".join(IMAGE_ENGINES)
            raise ConfigError(f"Config 'IMAGE_ENGINE' must be one of {allowed}; got {self.image_engine!r}")
        if self.resolved_text_engine == "openai" and not self.openai_api_key and not self.openai_base_url:
            raise ConfigError(
                "TEXT_ENGINE=openai needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local OpenAI-compatible server)"
            )
        if self.resolved_image_engine == "openai" and not self.openai_api_key and not self.openai_base_url:
            raise ConfigError(
                "IMAGE_ENGINE=openai needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local OpenAI-compatible server)"
            )
        if not 1 <= self.story_parts <= 8:
            raise ConfigError(f"Config 'STORY_PARTS' must be between 1 and 8, got {self.story_parts}")
        if not 0 < len(self.image_style) <= 80:
            raise ConfigError("Config 'IMAGE_STYLE' must be 1-80 characters")
        split_host_port("GENERATOR_ADDR", self.generator_addr)
        split_host_port("STORAGE_ADDR", self.storage_addr)

    @property
    def resolved_text_engine(self) -> str:
        if self.text_engine == "auto":
            return "openai" if self.openai_api_key else "offline"
        return self.text_engine

    @property
    def resolved_image_engine(self) -> str:
        if self.image_engine == "auto":
            return "openai" if self.openai_api_key else "offline"
        return self.image_engine

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = Env(environ)
        redis_url = env.raw("REDIS_URL")
        if redis_url is None:
            raise ConfigError(
                "Config 'REDIS_URL' is missing: point it at a Redis or Valkey "
                "(`make up` starts one and sets it for you)"
            )
        return cls(
            redis_url=redis_url,
            generator_addr=env.text("GENERATOR_ADDR", cls.generator_addr),
            storage_addr=env.text("STORAGE_ADDR", cls.storage_addr),
            text_engine=env.choice("TEXT_ENGINE", "auto", TEXT_ENGINES),
            image_engine=env.choice("IMAGE_ENGINE", "auto", IMAGE_ENGINES),
            openai_api_key=env.secret("OPENAI_API_KEY"),
            openai_base_url=env.optional("OPENAI_BASE_URL"),
            text_model=env.text("TEXT_MODEL", cls.text_model),
            image_model=env.text("IMAGE_MODEL", cls.image_model),
            image_size=env.text("IMAGE_SIZE", cls.image_size),
            text_temperature=env.number("TEXT_TEMPERATURE", cls.text_temperature, minimum=0, maximum=2),
            model_timeout_seconds=env.number("MODEL_TIMEOUT_SECONDS", cls.model_timeout_seconds, minimum=1),
            model_call_attempts=env.integer("MODEL_CALL_ATTEMPTS", cls.model_call_attempts, minimum=1, maximum=10),
            story_parts=env.integer("STORY_PARTS", cls.story_parts, minimum=1, maximum=8),
            image_style=env.text("IMAGE_STYLE", cls.image_style),
            workers=env.integer("WORKERS", cls.workers, minimum=0, maximum=64),
            image_concurrency=env.integer("IMAGE_CONCURRENCY", cls.image_concurrency, minimum=1, maximum=16),
            job_max_attempts=env.integer("JOB_MAX_ATTEMPTS", cls.job_max_attempts, minimum=1, maximum=20),
            job_retry_base_seconds=env.number("JOB_RETRY_BASE_SECONDS", cls.job_retry_base_seconds, minimum=0),
            job_retry_max_seconds=env.number("JOB_RETRY_MAX_SECONDS", cls.job_retry_max_seconds, minimum=0),
            job_visibility_timeout_seconds=env.number(
                "JOB_VISIBILITY_TIMEOUT_SECONDS", cls.job_visibility_timeout_seconds, minimum=1
            ),
            job_retention_seconds=env.integer("JOB_RETENTION_SECONDS", cls.job_retention_seconds, minimum=1),
            shutdown_grace_seconds=env.number("SHUTDOWN_GRACE_SECONDS", cls.shutdown_grace_seconds, minimum=0),
            storage_timeout_seconds=env.number("STORAGE_TIMEOUT_SECONDS", cls.storage_timeout_seconds, minimum=1),
            redis_prefix=env.text("GENERATOR_REDIS_PREFIX", cls.redis_prefix),
            metrics_addr=env.optional("GENERATOR_METRICS_ADDR"),
            log_format=env.log_format(),
            log_level=env.log_level(),
        )

    def describe(self) -> dict[str, object]:
        """The resolved configuration for the start-up log line, secrets masked."""
        described: dict[str, object] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            described[item.name] = mask(value) if isinstance(value, Secret) else value
        described["redis_url"] = redact_url(self.redis_url)
        described["text_engine"] = f"{self.text_engine} -> {self.resolved_text_engine}"
        described["image_engine"] = f"{self.image_engine} -> {self.resolved_image_engine}"
        return described

    def log_resolved(self) -> None:
        log.info("configuration: %s", " ".join(f"{key}={value}" for key, value in self.describe().items()))
