"""Settings come from the environment with types and defaults, and fail early with a clear message."""

from __future__ import annotations

import pytest

from services.common.config import ConfigError, Env, Secret, mask, redact_url, split_host_port


def test_missing_required_setting_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="Config 'PINATA_JWT' is missing"):
        Env({}).required("PINATA_JWT")


def test_empty_value_counts_as_unset() -> None:
    assert Env({"STORY_PARTS": "  "}).integer("STORY_PARTS", 3) == 3


def test_malformed_number_is_reported_with_its_value() -> None:
    with pytest.raises(ConfigError, match="'WORKERS' must be a whole number, got 'two'"):
        Env({"WORKERS": "two"}).integer("WORKERS", 2)


def test_out_of_range_number_is_refused() -> None:
    with pytest.raises(ConfigError, match="at most 8"):
        Env({"STORY_PARTS": "9"}).integer("STORY_PARTS", 3, minimum=1, maximum=8)


def test_choice_lists_the_allowed_values() -> None:
    with pytest.raises(ConfigError, match="one of auto, local, pinata"):
        Env({"STORAGE_BACKEND": "s3"}).choice("STORAGE_BACKEND", "auto", ("auto", "local", "pinata"))


def test_secret_never_shows_its_value() -> None:
    secret = Env({"OPENAI_API_KEY": "sk-very-secret"}).secret("OPENAI_API_KEY")
    assert "sk-very-secret" not in repr(secret)
    assert "sk-very-secret" not in str(secret)
    assert "sk-very-secret" not in f"{secret}"
    assert secret.reveal() == "sk-very-secret"
    assert mask(secret) == "(set)"
    assert mask(Secret("")) == "(not set)"


def test_host_port_parsing() -> None:
    assert split_host_port("STORAGE_ADDR", "127.0.0.1:50051") == ("127.0.0.1", 50051)
    assert split_host_port("STORAGE_ADDR", "[::1]:7") == ("::1", 7)
    with pytest.raises(ConfigError, match="host:port"):
        split_host_port("STORAGE_ADDR", "localhost")


def test_urls_lose_their_password_before_they_are_logged() -> None:
    assert redact_url("redis://user:s3cret@redis:6379/1") == "redis://user:****@redis:6379/1"
    assert redact_url("redis://:s3cret@redis:6379/0") == "redis://****@redis:6379/0"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_log_settings_are_checked_and_spelled_for_logging() -> None:
    assert Env({"LOG_LEVEL": "Warning"}).log_level() == "WARNING"
    assert Env({}).log_format() == "text"
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        Env({"LOG_FORMAT": "xml"}).log_format()
