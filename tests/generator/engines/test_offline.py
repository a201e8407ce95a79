"""The offline engines: deterministic, different for different prompts, valid PNGs, any part count, labelled."""

from __future__ import annotations

import io

import pytest
from PIL import Image as PILImage
from PIL import ImageStat

from services.generator.engines.base import ImageRequest, TextRequest
from services.generator.engines.offline_image import NOTICE, OfflineImageEngine, draw_picture
from services.generator.engines.offline_text import OfflineTextEngine, compose_story
from services.generator.images import image_type
from services.generator.pipeline import image_prompt
from services.generator.story_format import Story, StoryStream


def _request(prompt: str = "a bear who finds a mine full of honey", parts: int = 3, seed: int = 7) -> TextRequest:
    return TextRequest(prompt=prompt, parts=parts, style="Pencil and Ink", seed=seed)


def _pictures(story: Story, style: str = "Pencil and Ink", seed: int = 7) -> list[bytes]:
    return [
        draw_picture(
            ImageRequest(
                prompt=image_prompt(style, story.characters, part.illustration_prompt),
                scene=part.illustration_prompt,
                part_index=part.index,
                parts=len(story.parts),
                part_title=part.title,
                style=style,
                seed=seed,
                characters=story.characters,
            )
        )
        for part in story.parts
    ]


def test_the_same_inputs_give_the_same_story_and_the_same_bytes() -> None:
    first, second = compose_story(_request()), compose_story(_request())
    assert first == second
    assert _pictures(first) == _pictures(second)


def test_different_prompts_give_different_stories_and_pictures() -> None:
    bear = compose_story(_request("a bear who finds a mine full of honey"))
    whale = compose_story(_request("a lighthouse keeper who befriends a whale"))
    assert bear.to_json() != whale.to_json()
    assert "bear" in bear.title and "honey" in bear.parts[0].text
    assert "lighthouse keeper" in whale.title
    assert _pictures(bear)[0] != _pictures(whale)[0]


def test_a_different_seed_or_style_changes_the_result() -> None:
    assert compose_story(_request(seed=1)) != compose_story(_request(seed=2))
    story = compose_story(_request())
    assert _pictures(story, style="Pencil and Ink") != _pictures(story, style="Watercolor")


@pytest.mark.parametrize("parts", range(1, 9))
def test_every_part_count_from_1_to_8_gives_that_many_parts(parts: int) -> None:
    story = compose_story(_request(parts=parts))
    assert [part.index for part in story.parts] == list(range(parts))
    assert all(part.title and part.text and part.illustration_prompt for part in story.parts)


def test_the_story_has_a_beginning_a_turn_and_an_ending() -> None:
    story = compose_story(_request(parts=3))
    assert story.parts[0].text.startswith("Once upon a time")
    assert story.parts[-1].title == "Home Again"
    assert story.parts[1].text.startswith("Halfway there")


def test_pictures_are_valid_pngs_of_the_expected_size() -> None:
    for data in _pictures(compose_story(_request(parts=2))):
        assert image_type(data) == "image/png"
        with PILImage.open(io.BytesIO(data)) as image:
            image.verify()
        with PILImage.open(io.BytesIO(data)) as image:
            assert image.size == (512, 384)


def test_pictures_follow_their_part_a_night_scene_is_darker_than_a_sunny_one() -> None:
    def brightness(scene: str) -> float:
        data = draw_picture(
            ImageRequest(prompt=scene, scene=scene, part_index=0, parts=1, part_title="T", style="plain", seed=1)
        )
        with PILImage.open(io.BytesIO(data)) as image:
            top = image.convert("L").crop((0, 0, 512, 150))
            return float(ImageStat.Stat(top).mean[0])

    assert brightness("the fox under the night sky full of stars") < brightness("the fox in a sunny desert")


async def test_the_engines_say_they_are_offline_and_stream_the_document_in_pieces() -> None:
    text, image = OfflineTextEngine(), OfflineImageEngine()
    assert text.info.offline and image.info.offline
    assert "not an AI model" in NOTICE
    chunks = [chunk async for chunk in text.write_story(_request())]
    assert len(chunks) > 10
    stream = StoryStream(3)
    for chunk in chunks:
        stream.feed(chunk)
    story, _ = stream.finish()
    assert story == compose_story(_request())


def test_the_prompt_chooses_the_place_and_the_time_of_day() -> None:
    story = compose_story(_request("a lighthouse keeper who befriends a whale at night"))
    assert "harbour" in story.parts[0].text
    assert all(part.illustration_prompt.endswith("under a night sky full of stars") for part in story.parts)
