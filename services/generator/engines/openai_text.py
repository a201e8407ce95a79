"""The `openai` text engine: one streamed chat completion with a JSON schema (json_object where unsupported)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import openai

from services.generator.engines.base import EngineInfo, TextRequest
from services.generator.engines.openai_errors import failure_from
from services.generator.failures import PermanentFailure
from services.generator.story_format import story_schema

log = logging.getLogger(__name__)

ENGINE_NAME = "openai"
MAX_REPAIR_ECHO_CHARS = 12_000

SYSTEM_PROMPT = (
    "You are an expert storyteller in the tradition of Grimm's fairy tales, writing warm, vivid stories "
    "for readers of all ages. You answer with exactly one JSON object and nothing else."
)


def build_messages(request: TextRequest) -> list[dict[str, str]]:
    """The chat messages for a story (and, on a repair, the previous answer and what was wrong with it)."""
    schema = json.dumps(story_schema(request.parts), ensure_ascii=False)
    instructions = (
        f"Write a story in exactly {request.parts} parts about: {request.prompt}\n\n"
        f"Each part is drawn as one picture in the style “{request.style}”. List every recurring character "
        "with a short visual description (species, size, colours, clothes, one distinctive feature) so the "
        "illustrator draws them the same way in every picture. Each part's illustration_prompt describes only "
        "the scene (who is where, doing what), not the style. The story needs a beginning, a turn and an ending.\n\n"
        f"Answer with one JSON object matching this JSON schema:\n{schema}"
    )
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": instructions}]
    if request.repair is not None:
        messages.append({"role": "assistant", "content": request.repair.previous_answer[:MAX_REPAIR_ECHO_CHARS]})
        messages.append(
            {
                "role": "user",
                "content": (
                    f"That answer cannot be used: {request.repair.problem}. Answer again with the complete JSON "
                    f"object, exactly {request.parts} parts, and nothing else."
                ),
            }
        )
    return messages


def _rejects_json_schema(exc: openai.BadRequestError) -> bool:
    text = f"{exc.message} {exc.param or ''}".lower()
    return "response_format" in text or "json_schema" in text


class OpenAITextEngine:
    """Chat completions against OpenAI or any OpenAI-compatible server (`OPENAI_BASE_URL`)."""

    def __init__(self, client: openai.AsyncOpenAI, *, model: str, temperature: float, base_url: str | None) -> None:
        self._client = client
        self._model = model
        self._temperature = temperature
        # Learned once per process: servers without json_schema get json_object from then on.
        self._json_schema_supported = True
        parameters = {"temperature": f"{temperature:g}", "response_format": "json_schema"}
        if base_url:
            parameters["base_url"] = base_url
        self.info = EngineInfo(engine=ENGINE_NAME, model=model, offline=False, parameters=parameters)

    @property
    def response_format_in_use(self) -> str:
        return "json_schema" if self._json_schema_supported else "json_object"

    def _response_format(self, parts: int) -> Any:
        if self._json_schema_supported:
            return {
                "type": "json_schema",
                "json_schema": {"name": "story", "strict": True, "schema": story_schema(parts)},
            }
        return {"type": "json_object"}

    async def _open(self, request: TextRequest) -> Any:
        while True:
            try:
                return await self._client.chat.completions.create(
                    model=self._model,
                    messages=build_messages(request),  # type: ignore[arg-type]
                    response_format=self._response_format(request.parts),
                    temperature=self._temperature,
                    seed=request.seed,
                    stream=True,
                )
            except openai.BadRequestError as exc:
                if self._json_schema_supported and _rejects_json_schema(exc):
                    log.warning("text server rejects json_schema (%s); using json_object", exc.message[:120])
                    self._json_schema_supported = False
                    continue
                raise failure_from(exc, "text") from None
            except openai.OpenAIError as exc:
                raise failure_from(exc, "text") from None

    async def write_story(self, request: TextRequest) -> AsyncIterator[str]:
        stream = await self._open(request)
        try:
            async for chunk in stream:
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                if choice.delta is not None and choice.delta.content:
                    yield choice.delta.content
                if choice.finish_reason == "content_filter":
                    raise PermanentFailure("the text model refused to write this story", code="content_policy")
        except openai.OpenAIError as exc:
            raise failure_from(exc, "text") from None
        finally:
            await stream.close()

    async def aclose(self) -> None:
        await self._client.close()
