"""The generator's settings: defaults that work with no accounts, engines resolved, secrets never shown."""

from __future__ import annotations

import logging

import pytest

from services.common.config import ConfigError
from services.generator.engines.offline_image import OfflineImageEngine
from services.generator.engines.offline_text import OfflineTextEngine
from services.generator.engines.openai_image import OpenAIImageEngine
from services.generator.engines.openai_text import OpenAITextEngine
from services.generator.engines.selection import build_image_engine, build_text_engine
from services.generator.settings import Settings

BASE = {"REDIS_URL": "redis://127.0.0.1:6379/0"}


def test_with_no_configuration_the_engines_are_offline_and_defaults_apply() -> None:
    settings = Settings.from_env(BASE)
    assert (settings.resolved_text_engine, settings.resolved_image_engine) == ("offline", "offline")
    assert (settings.generator_addr, settings.storage_addr) == ("127.0.0.1:50052", "127.0.0.1:50051")
    assert (settings.text_model, settings.image_model, settings.story_parts) == ("gpt-4o-mini", "gpt-image-1", 3)
    assert (settings.image_style, settings.workers, settings.metrics_addr) == ("Pencil and Ink", 2, None)
    assert isinstance(build_text_engine(settings), OfflineTextEngine)
    assert isinstance(build_image_engine(settings), OfflineImageEngine)


def test_a_missing_redis_url_says_how_to_get_one() -> None:
    with pytest.raises(ConfigError, match=r"REDIS_URL.*make up"):
        Settings.from_env({})


async def test_an_api_key_switches_auto_to_openai_for_both_engines() -> None:
    settings = Settings.from_env({**BASE, "OPENAI_API_KEY": "sk-secret-value"})
    assert (settings.resolved_text_engine, settings.resolved_image_engine) == ("openai", "openai")
    text, image = build_text_engine(settings), build_image_engine(settings)
    assert isinstance(text, OpenAITextEngine) and isinstance(image, OpenAIImageEngine)
    await text.aclose()
    await image.aclose()


def test_engines_are_chosen_independently_and_none_means_text_only() -> None:
    settings = Settings.from_env(
        {**BASE, "TEXT_ENGINE": "openai", "OPENAI_BASE_URL": "http://127.0.0.1:11434/v1", "IMAGE_ENGINE": "none"}
    )
    assert settings.resolved_text_engine == "openai"
    assert build_image_engine(settings) is None
    mixed = Settings.from_env({**BASE, "OPENAI_API_KEY": "k", "IMAGE_ENGINE": "offline"})
    assert (mixed.resolved_text_engine, mixed.resolved_image_engine) == ("openai", "offline")


def test_openai_without_a_key_or_a_base_url_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="TEXT_ENGINE=openai needs OPENAI_API_KEY"):
        Settings.from_env({**BASE, "TEXT_ENGINE": "openai"})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("STORY_PARTS", "9", "STORY_PARTS"),
        ("TEXT_ENGINE", "gpt", "TEXT_ENGINE"),
        ("IMAGE_ENGINE", "dalle", "IMAGE_ENGINE"),
        ("WORKERS", "many", "WORKERS"),
        ("GENERATOR_ADDR", "nowhere", "GENERATOR_ADDR"),
    ],
)
def test_malformed_values_fail_early_naming_the_setting(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({**BASE, name: value})


def test_the_resolved_configuration_is_logged_with_secrets_masked(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings.from_env({"REDIS_URL": "redis://user:hunter2@redis:6379/0", "OPENAI_API_KEY": "sk-very-secret"})
    with caplog.at_level(logging.INFO):
        settings.log_resolved()
    assert "sk-very-secret" not in caplog.text and "hunter2" not in caplog.text
    assert "openai_api_key=(set)" in caplog.text and "text_engine=auto -> openai" in caplog.text
    assert "sk-very-secret" not in repr(settings)
