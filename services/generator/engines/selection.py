"""Choosing the text and image engines from the settings (independently of each other)."""

from __future__ import annotations

import openai

from services.generator.engines.base import ImageEngine, TextEngine
from services.generator.engines.offline_image import OfflineImageEngine
from services.generator.engines.offline_text import OfflineTextEngine
from services.generator.engines.openai_image import OpenAIImageEngine
from services.generator.engines.openai_text import OpenAITextEngine
from services.generator.settings import Settings

# Local OpenAI-compatible servers (Ollama, vLLM, LocalAI, llama.cpp) ignore the key, but the client needs one.
PLACEHOLDER_API_KEY = "not-needed"


def openai_client(settings: Settings) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=settings.openai_api_key.reveal() or PLACEHOLDER_API_KEY,
        base_url=settings.openai_base_url,
        timeout=settings.model_timeout_seconds,
        # Retries are ours (the pipeline's and the queue's), so they are counted and bounded in one place.
        max_retries=0,
    )


def build_text_engine(settings: Settings) -> TextEngine:
    if settings.resolved_text_engine == "openai":
        return OpenAITextEngine(
            openai_client(settings),
            model=settings.text_model,
            temperature=settings.text_temperature,
            base_url=settings.openai_base_url,
        )
    return OfflineTextEngine()


def build_image_engine(settings: Settings) -> ImageEngine | None:
    """The image engine, or None for text-only stories (`IMAGE_ENGINE=none`)."""
    engine = settings.resolved_image_engine
    if engine == "none":
        return None
    if engine == "openai":
        return OpenAIImageEngine(
            openai_client(settings),
            model=settings.image_model,
            size=settings.image_size,
            base_url=settings.openai_base_url,
        )
    return OfflineImageEngine()
