"""The `openai` image engine: `images.generate` returning base64 (no URL fetched), bytes checked before use."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import openai

from services.generator.engines.base import EngineInfo, Image, ImageRequest
from services.generator.engines.openai_errors import failure_from
from services.generator.failures import PermanentFailure
from services.generator.images import image_type

ENGINE_NAME = "openai"


def always_returns_base64(model: str) -> bool:
    """GPT image models always answer with b64_json and reject `response_format`; DALL-E and others need it."""
    return model.startswith("gpt-image") or model.startswith("chatgpt-image")


class OpenAIImageEngine:
    def __init__(self, client: openai.AsyncOpenAI, *, model: str, size: str, base_url: str | None) -> None:
        self._client = client
        self._model = model
        self._size = size
        parameters = {"size": size}
        if base_url:
            parameters["base_url"] = base_url
        self.info = EngineInfo(engine=ENGINE_NAME, model=model, offline=False, parameters=parameters)

    async def draw(self, request: ImageRequest) -> Image:
        kwargs: dict[str, Any] = {"model": self._model, "prompt": request.prompt, "n": 1, "size": self._size}
        if not always_returns_base64(self._model):
            kwargs["response_format"] = "b64_json"
        try:
            response = await self._client.images.generate(**kwargs)
        except openai.OpenAIError as exc:
            raise failure_from(exc, "image") from None
        encoded = response.data[0].b64_json if response.data else None
        if not encoded:
            raise PermanentFailure(
                "the image server sent no base64 image (DreamForge does not fetch image URLs)", code="invalid_image"
            )
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise PermanentFailure("the image server sent invalid base64", code="invalid_image") from None
        content_type = image_type(data)
        if content_type is None:
            raise PermanentFailure("the image server sent bytes that are not a PNG, JPEG or WebP", code="invalid_image")
        return Image(data=data, content_type=content_type)

    async def aclose(self) -> None:
        await self._client.close()
