"""A fake OpenAI API on loopback: real HTTP, the real wire format, and misbehaviour on command.

Chat completions stream as Server-Sent Events exactly as the API sends them
(`data: {chat.completion.chunk}` lines, then `data: [DONE]`); images come back as
`b64_json` holding a real small PNG. Requests are checked the way the API checks
them (model, messages, response_format; `response_format` is refused for GPT image
models). Tests queue failures (`fail_next`), switch modes (invalid JSON, wrong part
count, no json_schema support, slow images) and read what was asked (`requests`).

    with FakeOpenAI() as fake:
        client = AsyncOpenAI(api_key="test", base_url=fake.base_url)
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from services.common.redis_server import free_port

CHAT, IMAGES = "chat", "images"
CONTENT_POLICY_MESSAGE = (
    "Your request was rejected as a result of our safety system. Your prompt may contain text that is not "
    "allowed by our safety system."
)


@dataclass
class Failure:
    """One queued misbehaviour for the next request to an endpoint."""

    status: int
    message: str = "failure injected by the test"
    code: str | None = None
    type: str = "server_error"
    retry_after: float | None = None


@dataclass
class Recorded:
    endpoint: str
    body: dict[str, Any]
    status: int = 200


def _error(status: int, message: str, *, type_: str, code: str | None, param: str | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}, status_code=status
    )


def small_png(seed: str, size: int = 64) -> bytes:
    """A real PNG whose colour depends on ``seed``."""
    digest = hashlib.sha256(seed.encode()).digest()
    image = Image.new("RGB", (size, size), (digest[0], digest[1], digest[2]))
    for x in range(size):
        image.putpixel((x, x), (255 - digest[0], 255 - digest[1], 255 - digest[2]))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def story_document(parts: int, topic: str) -> str:
    """A valid story document with ``parts`` parts about ``topic`` (what a good model would answer)."""
    return json.dumps(
        {
            "title": f"The Tale of {topic[:40].title()}",
            "characters": [
                {"name": "Mira", "description": "a small girl with a yellow raincoat and red boots"},
                {"name": "Bo", "description": "a large brown bear with a blue scarf"},
            ],
            "parts": [
                {
                    "title": f"Chapter {index + 1}",
                    "text": f"Part {index + 1} of the story about {topic}. Mira and Bo walk on. " * 3,
                    "illustration_prompt": f"Mira and Bo in scene {index + 1}, {topic}",
                }
                for index in range(parts)
            ],
        }
    )


class FakeOpenAI:
    """The fake server; start it with ``with`` (it runs in a thread with its own event loop)."""

    def __init__(self, *, chunk_chars: int = 12) -> None:
        self.port = free_port()
        self.chunk_chars = chunk_chars
        self.requests: list[Recorded] = []
        self._failures: dict[str, deque[Failure]] = {CHAT: deque(), IMAGES: deque()}
        # Modes a test switches on; each applies to every later request until switched off.
        self.invalid_json_answers = 0  # answer this many chats with broken JSON
        self.wrong_part_count_answers = 0  # answer this many chats with one part too many
        self.json_schema_supported = True
        self.image_delay_seconds = 0.0
        self.chat_chunk_delay_seconds = 0.0
        self.image_policy_refusal_words: tuple[str, ...] = ()
        self.lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # --- control ---------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def fail_next(self, endpoint: str, failure: Failure, times: int = 1) -> None:
        with self.lock:
            for _ in range(times):
                self._failures[endpoint].append(failure)

    def count(self, endpoint: str, status: int | None = 200) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r.endpoint == endpoint and (status is None or r.status == status))

    def image_prompts(self) -> list[str]:
        with self.lock:
            return [r.body["prompt"] for r in self.requests if r.endpoint == IMAGES and r.status == 200]

    def __enter__(self) -> FakeOpenAI:
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/images/generations", self._images, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-openai", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake OpenAI server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(10)

    # --- endpoints ----------------------------------------------------------------

    def _record(self, endpoint: str, body: dict[str, Any], status: int) -> None:
        with self.lock:
            self.requests.append(Recorded(endpoint, body, status))

    def _take_failure(self, endpoint: str) -> Failure | None:
        with self.lock:
            return self._failures[endpoint].popleft() if self._failures[endpoint] else None

    def _failure_response(self, failure: Failure) -> Response:
        response = _error(failure.status, failure.message, type_=failure.type, code=failure.code)
        if failure.retry_after is not None:
            response.headers["retry-after"] = f"{failure.retry_after:g}"
        return response

    async def _chat(self, request: Request) -> Response:
        if request.headers.get("authorization", "") != "Bearer test-key":
            return _error(401, "Incorrect API key provided.", type_="invalid_request_error", code="invalid_api_key")
        body = await request.json()
        problem = _check_chat(body, json_schema_supported=self.json_schema_supported)
        if problem is not None:
            self._record(CHAT, body, 400)
            return _error(400, problem[0], type_="invalid_request_error", code=None, param=problem[1])
        failure = self._take_failure(CHAT)
        if failure is not None:
            self._record(CHAT, body, failure.status)
            return self._failure_response(failure)
        self._record(CHAT, body, 200)
        parts = _parts_asked(body)
        topic = _topic(body)
        content = story_document(parts, topic)
        with self.lock:
            if self.invalid_json_answers > 0:
                self.invalid_json_answers -= 1
                content = content[: len(content) // 2] + ' "oops: this is not JSON'
            elif self.wrong_part_count_answers > 0:
                self.wrong_part_count_answers -= 1
                content = story_document(parts + 1, topic)
        return StreamingResponse(self._sse(body["model"], content), media_type="text/event-stream")

    async def _sse(self, model: str, content: str) -> AsyncIterator[bytes]:
        created = int(time.time())
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_fake",
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return f"data: {json.dumps({**base, 'choices': [choice]})}\n\n".encode()

        yield chunk({"role": "assistant", "content": "", "refusal": None})
        for start in range(0, len(content), self.chunk_chars):
            if self.chat_chunk_delay_seconds:
                await asyncio.sleep(self.chat_chunk_delay_seconds)
            yield chunk({"content": content[start : start + self.chunk_chars]})
        yield chunk({}, "stop")
        yield b"data: [DONE]\n\n"

    async def _images(self, request: Request) -> Response:
        if request.headers.get("authorization", "") != "Bearer test-key":
            return _error(401, "Incorrect API key provided.", type_="invalid_request_error", code="invalid_api_key")
        body = await request.json()
        model = str(body.get("model") or "dall-e-2")
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            self._record(IMAGES, body, 400)
            return _error(400, "Missing required parameter: 'prompt'.", type_="invalid_request_error", code=None)
        if model.startswith("gpt-image") and "response_format" in body:
            self._record(IMAGES, body, 400)
            return _error(
                400,
                "Unknown parameter: 'response_format'.",
                type_="invalid_request_error",
                code="unknown_parameter",
                param="response_format",
            )
        failure = self._take_failure(IMAGES)
        if failure is None and any(word in prompt.lower() for word in self.image_policy_refusal_words):
            failure = Failure(
                400, CONTENT_POLICY_MESSAGE, code="content_policy_violation", type="image_generation_user_error"
            )
        if failure is not None:
            self._record(IMAGES, body, failure.status)
            return self._failure_response(failure)
        if self.image_delay_seconds:
            await asyncio.sleep(self.image_delay_seconds)
        self._record(IMAGES, body, 200)
        created = int(time.time())
        if not model.startswith("gpt-image") and body.get("response_format") != "b64_json":
            # DALL-E's default: a URL on the provider's host (which DreamForge must not fetch).
            return JSONResponse({"created": created, "data": [{"url": "https://images.example.invalid/x.png"}]})
        encoded = base64.b64encode(small_png(prompt)).decode()
        return JSONResponse({"created": created, "data": [{"b64_json": encoded, "revised_prompt": prompt}]})


def _check_chat(body: dict[str, Any], *, json_schema_supported: bool) -> tuple[str, str] | None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter", "model"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array", "messages"
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant", "developer"):
            return "Invalid value for 'messages': each needs a valid role", "messages"
        if not isinstance(message.get("content"), str):
            return "Invalid value for 'messages': content must be a string", "messages"
    if body.get("stream") is not True:
        return "this fake only streams; set stream=true", "stream"
    response_format = body.get("response_format")
    if response_format is not None:
        kind = response_format.get("type")
        if kind == "json_schema":
            if not json_schema_supported:
                return (
                    "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.",
                    "response_format",
                )
            schema = response_format.get("json_schema", {})
            if not isinstance(schema.get("name"), str) or not isinstance(schema.get("schema"), dict):
                return "Missing required parameter: 'response_format.json_schema.name'.", "response_format"
        elif kind == "json_object":
            if not any("json" in m["content"].lower() for m in messages):
                return (
                    "'messages' must contain the word 'json' in some form, "
                    "to use 'response_format' of type 'json_object'.",
                    "messages",
                )
        elif kind != "text":
            return (
                f"Invalid value: '{kind}'. Supported values are: 'json_object', 'json_schema', and 'text'.",
                "response_format.type",
            )
    return None


def _parts_asked(body: dict[str, Any]) -> int:
    for message in body["messages"]:
        found = re.search(r"exactly (\d+) parts", message["content"])
        if found:
            return int(found.group(1))
    return 3


def _topic(body: dict[str, Any]) -> str:
    for message in body["messages"]:
        found = re.search(r"parts about: (.+)", message["content"])
        if found:
            return found.group(1).strip()
    return "something"
