"""Following a story document as it streams: deltas, the title, the sheet, and parts once the next one begins."""

from __future__ import annotations

import pytest

from services.generator.story_format import (
    CharactersKnown,
    InvalidOutput,
    PartKnown,
    Story,
    StoryStream,
    TextDelta,
    TitleKnown,
)
from tests.fakes.openai_server import story_document


def _feed_all(document: str, parts: int, chunk: int = 7) -> tuple[list[object], Story]:
    stream = StoryStream(parts)
    updates: list[object] = []
    for start in range(0, len(document), chunk):
        updates.extend(stream.feed(document[start : start + chunk]))
    story, last = stream.finish()
    return [*updates, *last], story


def test_each_part_is_known_as_soon_as_the_next_one_begins_and_the_last_at_the_end() -> None:
    document = story_document(3, "a fox")
    stream = StoryStream(3)
    known_at: dict[int, int] = {}
    for position in range(len(document)):
        for update in stream.feed(document[position]):
            if isinstance(update, PartKnown):
                known_at[update.part.index] = position
    _story, last = stream.finish()
    assert sorted(known_at) == [0, 1]
    # Part 1 is known as soon as part 2 begins, well before the end of the document.
    assert known_at[0] < document.index("Chapter 2") + 20
    assert known_at[1] < document.index("Chapter 3") + 20
    assert [u.part.index for u in last if isinstance(u, PartKnown)] == [2]


def test_title_and_characters_are_known_before_any_part() -> None:
    updates, _story = _feed_all(story_document(2, "owls"), 2)
    kinds = [type(u) for u in updates if not isinstance(u, TextDelta)]
    assert kinds == [TitleKnown, CharactersKnown, PartKnown, PartKnown]
    sheet = next(u for u in updates if isinstance(u, CharactersKnown))
    assert [c.name for c in sheet.characters] == ["Mira", "Bo"]


def test_text_deltas_add_up_to_the_texts() -> None:
    updates, story = _feed_all(story_document(2, "owls"), 2, chunk=3)
    deltas = [u for u in updates if isinstance(u, TextDelta)]
    title = "".join(d.delta for d in deltas if d.field == "story_title")
    second_text = "".join(d.delta for d in deltas if d.field == "part_text" and d.part_index == 1)
    assert title == story.title
    assert second_text.strip() == story.parts[1].text


def test_prose_or_fences_around_the_object_are_tolerated() -> None:
    document = "Here you go:\n```json\n" + story_document(1, "a cat") + "\n```"
    _updates, story = _feed_all(document, 1)
    assert story.parts[0].title == "Chapter 1"


def test_broken_json_is_invalid_output_with_a_reason() -> None:
    stream = StoryStream(2)
    stream.feed(story_document(2, "x")[:80] + ' "oops')
    with pytest.raises(InvalidOutput, match="not valid JSON"):
        stream.finish()


def test_too_few_parts_is_invalid_output() -> None:
    stream = StoryStream(3)
    stream.feed(story_document(2, "x"))
    with pytest.raises(InvalidOutput, match="has 2 parts; exactly 3 were asked for"):
        stream.finish()


def test_too_many_parts_is_noticed_while_streaming() -> None:
    stream = StoryStream(1)
    with pytest.raises(InvalidOutput, match="more than the 1 parts"):
        for char in story_document(2, "x"):
            stream.feed(char)


def test_a_part_without_an_illustration_prompt_is_invalid() -> None:
    document = '{"title":"T","characters":[],"parts":[{"title":"a","text":"b"},{"title":"c"'
    with pytest.raises(InvalidOutput, match="part 1 has no `illustration_prompt`"):
        StoryStream(2).feed(document)


def test_a_story_survives_a_round_trip_through_json() -> None:
    _updates, story = _feed_all(story_document(3, "a fox"), 3)
    assert Story.from_json(story.to_json(), 3) == story
