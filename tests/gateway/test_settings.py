"""The gateway's settings come from the environment with the documented defaults."""

from __future__ import annotations

import pytest

from services.common.config import ConfigError
from services.gateway.settings import Settings


def test_defaults_work_on_one_machine() -> None:
    settings = Settings.from_env({})
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.storage_addr == "127.0.0.1:50051"
    assert settings.generator_addr == "127.0.0.1:50052"
    assert settings.max_body_bytes == 64 * 1024
    assert (settings.web_dir / "index.html").is_file()


def test_environment_overrides() -> None:
    settings = Settings.from_env(
        {"GATEWAY_PORT": "9000", "STORAGE_ADDR": "storage:1", "LOG_FORMAT": "json", "LOG_LEVEL": "debug"}
    )
    assert (settings.port, settings.storage_addr, settings.log_format, settings.log_level) == (
        9000, "storage:1", "json", "DEBUG",
    )  # fmt: skip


def test_a_malformed_backend_address_fails_at_start_up() -> None:
    with pytest.raises(ConfigError, match="GENERATOR_ADDR"):
        Settings.from_env({"GENERATOR_ADDR": "generator"})
