"""The story pipeline: write the story (streamed), store each part as it is known, draw its picture, commit.

One job attempt runs `StoryPipeline.run`. It resumes from the job's checkpoint:
when the story text was finished before, it is not written again and pictures
already stored are not drawn again; when it was not, the text is written from
scratch (a half-streamed answer cannot be continued). Pictures start as soon as
their part is known, at most `image_concurrency` at a time, each prompt made of
the style, the character sheet and the part's scene. Cancellation is checked
between steps. Failures leave as `TransientFailure` / `PermanentFailure` /
`JobCancelled`; the worker decides what happens next.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

import redis.asyncio as aioredis
from dreamforge.v1 import storage_pb2

from services.generator import events
from services.generator.backoff import backoff_delay
from services.generator.checkpoint import Checkpoint, Progress
from services.generator.engines.base import ImageEngine, ImageRequest, Repair, TextEngine, TextRequest
from services.generator.events import EventLog, TextBuffer
from services.generator.failures import PermanentFailure, TransientFailure
from services.generator.images import image_type
from services.generator.jobs import Job
from services.generator.keys import Keys
from services.generator.metrics import GeneratorMetrics
from services.generator.storage_client import StorageClient, StoredAsset
from services.generator.story_format import (
    Character,
    CharactersKnown,
    InvalidOutput,
    Part,
    PartKnown,
    Story,
    StoryStream,
    StreamUpdate,
    TextDelta,
    TitleKnown,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
WRITING, ILLUSTRATING, SAVING = "writing", "illustrating", "saving"


def text_name(index: int) -> str:
    return f"text_{index}"


def image_name(index: int) -> str:
    return f"image_{index}"


def image_prompt(style: str, characters: tuple[Character, ...], scene: str) -> str:
    """Style + character sheet + scene, so the same characters look the same in every picture."""
    sheet = "; ".join(f"{c.name}: {c.description}" for c in characters if c.description)
    parts = [f"An illustration in the style of {style}."]
    if sheet:
        parts.append(f"Recurring characters, drawn exactly like this in every picture: {sheet}.")
    parts.append(f"Scene: {scene}")
    parts.append("No text, letters or captions in the picture.")
    return " ".join(parts)


class JobControl(Protocol):
    """What the worker gives the pipeline for one job attempt."""

    async def check_cancel(self) -> None:
        """Raise `JobCancelled` when a client asked to cancel."""

    async def report(self, stage: str, percent: int, message: str, *, restart: bool = False) -> None:
        """Record the stage and percent on the job and send a progress event."""

    async def set_story(self, story_id: str, title: str) -> None:
        """Record the draft's id and the title on the job."""


@dataclass(frozen=True)
class Outcome:
    story_id: str
    title: str
    manifest: storage_pb2.StoryManifest


class _Percent:
    """Writing is 5-40 % (5-90 % without pictures), pictures 40-95 %, saving the rest."""

    def __init__(self, parts: int, with_images: bool) -> None:
        self._parts = parts
        self._with_images = with_images
        self.parts_known = 0
        self.images_done = 0

    def now(self) -> int:
        text_top = 40 if self._with_images else 90
        value = 5 + (text_top - 5) * self.parts_known / self._parts
        if self._with_images:
            value += 55 * self.images_done / self._parts
        return min(95, int(value))


class StoryPipeline:
    def __init__(
        self,
        *,
        text_engine: TextEngine,
        image_engine: ImageEngine | None,
        storage: StorageClient,
        events: EventLog,
        redis: aioredis.Redis,
        keys: Keys,
        metrics: GeneratorMetrics,
        image_concurrency: int = 2,
        model_call_attempts: int = 3,
        retry_base_seconds: float = 1.0,
        retry_max_seconds: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._text = text_engine
        self._image = image_engine
        self._storage = storage
        self._events = events
        self._redis = redis
        self._keys = keys
        self._metrics = metrics
        self._image_concurrency = image_concurrency
        self._call_attempts = model_call_attempts
        self._retry_base = retry_base_seconds
        self._retry_max = retry_max_seconds
        self._sleep = sleep

    async def run(self, job: Job, control: JobControl, *, attempt: int) -> Outcome:
        return await _Run(self, job, control, attempt).run()


class _Run:
    """One attempt at one job (state that lives only as long as the attempt)."""

    def __init__(self, pipeline: StoryPipeline, job: Job, control: JobControl, attempt: int) -> None:
        self.p = pipeline
        self.job = job
        self.control = control
        self.attempt = attempt
        self.checkpoint = Checkpoint(pipeline._redis, pipeline._keys, job.id, parts=job.parts)
        self.text_buffer = TextBuffer(pipeline._events, job.id)
        self.percent = _Percent(job.parts, pipeline._image is not None)
        self.semaphore = asyncio.Semaphore(pipeline._image_concurrency)
        self.story_id = job.story_id
        self.title = job.title
        self.characters: tuple[Character, ...] | None = None
        self.parts: dict[int, Part] = {}
        self.assets: dict[str, StoredAsset] = {}
        self.timings: dict[str, float] = {}
        self.image_tasks: dict[int, asyncio.Task[None]] = {}
        self.repaired = False

    # --- the steps ------------------------------------------------------

    async def run(self) -> Outcome:
        try:
            progress = await self.checkpoint.load()
            self.timings.update(progress.timings)
            await self.control.check_cancel()
            if progress.story is None:
                story = await self._write_story()
            else:
                story = await self._resume(progress)
            await self._finish_images(story)
            await self.control.check_cancel()
            outcome = await self._commit(story)
        finally:
            await self._stop_images()
        return outcome

    async def _write_story(self) -> Story:
        await self.checkpoint.start_text()
        if self.attempt > 1:
            # An earlier attempt may have streamed text that never got finished: watchers drop it.
            await self.control.report(WRITING, 5, "Writing the story again from the start", restart=True)
        else:
            await self.control.report(WRITING, 5, "Writing the story")
        request = TextRequest(prompt=self.job.prompt, parts=self.job.parts, style=self.job.style, seed=self.job.seed)
        started = time.monotonic()
        while True:
            stream = StoryStream(self.job.parts)
            try:
                async for chunk in self._text_chunks(request):
                    await self._apply(stream.feed(chunk))
                story, last = stream.finish()
                await self._apply(last)
                break
            except InvalidOutput as exc:
                await self._stop_images()
                if self.repaired:
                    raise PermanentFailure(
                        f"the text model's answer stayed unusable after one repair attempt: {exc}",
                        code="invalid_output",
                    ) from None
                log.info("text model answer unusable (%s); asking for a repair", exc)
                self.repaired = True
                self.parts.clear()
                self.assets.clear()
                self.characters = None
                self.percent.parts_known = self.percent.images_done = 0
                await self.checkpoint.start_text()
                await self.control.report(
                    WRITING, 5, f"The model's answer was unusable ({exc}); asking it to fix it", restart=True
                )
                request = replace(request, repair=Repair(previous_answer=stream.text, problem=str(exc)))
        await self.text_buffer.flush()
        self._timed("text", time.monotonic() - started)
        self.p._metrics.stage_seconds.labels(WRITING).observe(self.timings["text"])
        await self.checkpoint.save_timing("text", self.timings["text"])
        await self.checkpoint.save_story(story)
        return story

    async def _resume(self, progress: Progress) -> Story:
        assert progress.story is not None
        story = progress.story
        self.story_id = await self.p._storage.create_story(story.title, self.job.id)
        self.title = story.title
        await self.control.set_story(self.story_id, story.title)
        # Trust only what storage really holds, with the same content.
        held = {asset.name: asset for asset in await self.p._storage.list_assets(self.story_id)}
        self.assets = {name: asset for name, asset in progress.assets.items() if held.get(name) == asset}
        self.characters = story.characters
        for part in story.parts:
            self.parts[part.index] = part
        self.percent.parts_known = len(story.parts)
        self.percent.images_done = sum(1 for part in story.parts if image_name(part.index) in self.assets)
        await self.control.report(
            WRITING,
            self.percent.now(),
            f"Resuming: the story is written, {len(self.assets)} of its files were already stored",
        )
        for part in story.parts:
            if text_name(part.index) not in self.assets:
                await self._store_text(part)
            self._start_image(part)
        return story

    async def _apply(self, updates: list[StreamUpdate]) -> None:
        for update in updates:
            if isinstance(update, TextDelta):
                await self.text_buffer.add(update.field, update.part_index or 0, update.delta)
            elif isinstance(update, TitleKnown):
                await self.text_buffer.flush()
                await self.control.check_cancel()
                self.title = update.title
                self.story_id = await self.p._storage.create_story(update.title, self.job.id)
                await self.control.set_story(self.story_id, update.title)
                await self.control.report(WRITING, self.percent.now(), f"Writing “{update.title}”")
                for part in sorted(self.parts.values(), key=lambda p: p.index):
                    await self._part_known(part)  # parts that arrived before the title
            elif isinstance(update, CharactersKnown):
                self.characters = update.characters
                for part in self.parts.values():
                    self._start_image(part)
            elif isinstance(update, PartKnown):
                self.parts[update.part.index] = update.part
                if self.story_id:
                    await self._part_known(update.part)

    async def _part_known(self, part: Part) -> None:
        await self.text_buffer.flush()
        await self.control.check_cancel()
        await self._store_text(part)
        self.percent.parts_known += 1
        await self.control.report(WRITING, self.percent.now(), f"Part {part.index + 1} of {self.job.parts} is written")
        self._start_image(part)

    async def _store_text(self, part: Part) -> None:
        name = text_name(part.index)
        asset = await self.p._storage.put_asset(self.story_id, name, TEXT_CONTENT_TYPE, part.text.encode())
        self.assets[name] = asset
        await self.checkpoint.save_asset(asset)
        await self.p._events.append(
            self.job.id,
            events.PART,
            {
                "story_id": self.story_id,
                "index": part.index,
                "title": part.title,
                "text": part.text,
                "illustration_prompt": part.illustration_prompt,
                "text_asset": _asset_json(asset),
            },
        )

    # --- pictures -----------------------------------------------------------

    def _start_image(self, part: Part) -> None:
        if self.p._image is None or self.characters is None or not self.story_id:
            return
        if part.index in self.image_tasks or image_name(part.index) in self.assets:
            return
        if text_name(part.index) not in self.assets:
            return
        self.image_tasks[part.index] = asyncio.create_task(self._illustrate(part, self.characters))

    async def _illustrate(self, part: Part, characters: tuple[Character, ...]) -> None:
        assert self.p._image is not None
        async with self.semaphore:
            await self.control.check_cancel()
            request = ImageRequest(
                prompt=image_prompt(self.job.style, characters, part.illustration_prompt),
                scene=part.illustration_prompt,
                part_index=part.index,
                parts=self.job.parts,
                part_title=part.title,
                style=self.job.style,
                seed=self.job.seed,
                characters=characters,
            )
            started = time.monotonic()
            engine = self.p._image
            image = await self._call_with_retries("image", engine.info.engine, lambda: engine.draw(request))
            if image_type(image.data) != image.content_type:
                raise PermanentFailure(
                    f"picture {part.index + 1} is not the PNG, JPEG or WebP it claims to be", code="invalid_image"
                )
            name = image_name(part.index)
            asset = await self.p._storage.put_asset(self.story_id, name, image.content_type, image.data)
            self.assets[name] = asset
            self._timed(name, time.monotonic() - started)
            self.p._metrics.stage_seconds.labels(ILLUSTRATING).observe(self.timings[name])
            await self.checkpoint.save_asset(asset)
            await self.checkpoint.save_timing(name, self.timings[name])
            self.percent.images_done += 1
            await self.p._events.append(
                self.job.id,
                events.IMAGE,
                {"story_id": self.story_id, "part_index": part.index, "image": _asset_json(asset)},
            )
            await self.control.report(
                ILLUSTRATING,
                self.percent.now(),
                f"Picture {part.index + 1} of {self.job.parts} is drawn",
            )

    async def _finish_images(self, story: Story) -> None:
        if self.p._image is None:
            return
        if self.characters is None:
            self.characters = story.characters
        for part in story.parts:
            self._start_image(part)
        pending = [task for task in self.image_tasks.values() if not task.done()]
        if pending:
            await self.control.report(ILLUSTRATING, self.percent.now(), "Drawing the pictures")
        while self.image_tasks:
            done, _ = await asyncio.wait(list(self.image_tasks.values()), return_when=asyncio.FIRST_EXCEPTION)
            for index, task in list(self.image_tasks.items()):
                if task in done:
                    del self.image_tasks[index]
                    task.result()  # raises the first failure; the rest are stopped in `run`
        missing = [part.index + 1 for part in story.parts if image_name(part.index) not in self.assets]
        if missing:
            raise TransientFailure(f"pictures {missing} were not stored", code="incomplete")

    async def _stop_images(self) -> None:
        tasks = list(self.image_tasks.values())
        self.image_tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- model calls ----------------------------------------------------------

    async def _text_chunks(self, request: TextRequest) -> AsyncIterator[str]:
        """The text engine's stream, retried while nothing has arrived yet (a dropped stream fails the attempt)."""
        engine = self.p._text
        for call in range(1, self.p._call_attempts + 1):
            received = False
            started = time.monotonic()
            try:
                async for chunk in engine.write_story(request):
                    received = True
                    yield chunk
            except TransientFailure as failure:
                self._observe("text", engine.info.engine, "retry", started)
                if received or call == self.p._call_attempts:
                    raise
                await self._wait_to_retry("text", call, failure)
                continue
            except BaseException:
                self._observe("text", engine.info.engine, "error", started)
                raise
            self._observe("text", engine.info.engine, "ok", started)
            return

    async def _call_with_retries(self, kind: str, engine: str, call: Callable[[], Awaitable[T]]) -> T:
        for number in range(1, self.p._call_attempts + 1):
            started = time.monotonic()
            try:
                result = await call()
            except TransientFailure as failure:
                self._observe(kind, engine, "retry", started)
                if number == self.p._call_attempts:
                    raise
                await self._wait_to_retry(kind, number, failure)
                continue
            except BaseException:
                self._observe(kind, engine, "error", started)
                raise
            self._observe(kind, engine, "ok", started)
            return result
        raise AssertionError("unreachable")

    async def _wait_to_retry(self, kind: str, number: int, failure: TransientFailure) -> None:
        delay = backoff_delay(number, base=self.p._retry_base, cap=self.p._retry_max, retry_after=failure.retry_after)
        self.p._metrics.model_call_retries.labels(kind, failure.code).inc()
        log.info("%s model call failed (%s: %s); retry %d in %.1fs", kind, failure.code, failure.message, number, delay)
        await self.p._sleep(delay)

    def _observe(self, kind: str, engine: str, outcome: str, started: float) -> None:
        self.p._metrics.model_call_seconds.labels(kind, engine, outcome).observe(time.monotonic() - started)

    def _timed(self, step: str, seconds: float) -> None:
        self.timings[step] = round(seconds, 3)

    # --- commit ---------------------------------------------------------------------

    async def _commit(self, story: Story) -> Outcome:
        await self.control.report(SAVING, 96, "Saving the story")
        started = time.monotonic()
        for part in story.parts:
            if text_name(part.index) not in self.assets:
                await self._store_text(part)
        manifest = self._manifest(story)
        committed = await self.p._storage.commit_story(self.story_id, manifest)
        self._timed("commit", time.monotonic() - started)
        self.p._metrics.stage_seconds.labels(SAVING).observe(self.timings["commit"])
        return Outcome(story_id=self.story_id, title=story.title, manifest=committed)

    def _manifest(self, story: Story) -> storage_pb2.StoryManifest:
        text_info = self.p._text.info
        image_info = self.p._image.info if self.p._image is not None else None
        parameters = {f"text.{key}": value for key, value in text_info.parameters.items()}
        if image_info is not None:
            parameters.update({f"image.{key}": value for key, value in image_info.parameters.items()})
            parameters["image_concurrency"] = str(self.p._image_concurrency)
        parts = []
        for part in story.parts:
            text_asset = self.assets[text_name(part.index)]
            image_asset = self.assets.get(image_name(part.index))
            parts.append(
                storage_pb2.StoryPart(
                    index=part.index,
                    title=part.title,
                    text=part.text,
                    illustration_prompt=part.illustration_prompt,
                    text_asset=text_asset.to_proto(),
                    image_asset=image_asset.to_proto() if image_asset else None,
                )
            )
        generation = storage_pb2.GenerationInfo(
            text_engine=text_info.engine,
            text_model=text_info.model,
            image_engine=image_info.engine if image_info else "none",
            image_model=image_info.model if image_info else "",
            offline=text_info.offline or bool(image_info and image_info.offline),
            seed=self.job.seed,
            parameters=parameters,
            timings_seconds=self.timings,
            job_id=self.job.id,
        )
        extra = {"attempts": self.attempt, "text_repaired": self.repaired}
        return storage_pb2.StoryManifest(
            title=story.title,
            prompt=self.job.prompt,
            style=self.job.style,
            characters=[storage_pb2.Character(name=c.name, description=c.description) for c in story.characters],
            parts=parts,
            generation=generation,
            extra_json=json.dumps(extra),
        )


def _asset_json(asset: StoredAsset) -> dict[str, object]:
    return {"name": asset.name, "cid": asset.cid, "content_type": asset.content_type, "size": asset.size}
