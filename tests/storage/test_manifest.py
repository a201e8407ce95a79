"""`story.json`: checked before it is written, readable as plain JSON, and refused with the reason when broken."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from services.common.errors import DataLoss, InvalidArgument
from services.storage.manifest import check_for_commit, decode, encode, parse_extra, same_content
from services.storage.models import AssetRef, Character, Generation, Manifest, Part, StoryFormat

STORY = "0193b1c2-0000-7000-8000-000000000001"


def _manifest(**changes: object) -> Manifest:
    base = Manifest(
        story_id=STORY,
        title="The Bear",
        created_at=datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc),
        prompt="a bear",
        style="Pencil and Ink",
        characters=(Character("Bear", "brown"),),
        parts=(
            Part(
                index=0,
                title="One",
                text="Once",
                text_asset=AssetRef("text_0", "bafkreiaaa", "text/plain", 4),
                image_asset=AssetRef("image_0", "bafkreibbb", "image/png", 10),
            ),
        ),
        generation=Generation(text_engine="offline", offline=True, seed=3, timings_seconds={"text": 0.5}),
        extra={"rating": 5, "tags": ["a"]},
    )
    return Manifest(**{**{k: getattr(base, k) for k in base.__dataclass_fields__}, **changes})


def test_a_manifest_round_trips_through_plain_json() -> None:
    manifest = _manifest()
    data = encode(manifest)
    document = json.loads(data)
    assert document["schema"] == "dreamforge.story/1"
    assert document["created_at"] == "2026-01-02T03:04:05.123456Z"
    assert document["parts"][0]["image_asset"]["cid"] == "bafkreibbb"
    assert decode(data, STORY) == manifest


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"title": "t"}', "malformed"),
        (b'{"title": "t", "created_at": "yesterday", "parts": []}', "malformed"),
    ],
)
def test_a_broken_manifest_is_data_loss_naming_the_story(data: bytes, reason: str) -> None:
    with pytest.raises(DataLoss) as caught:
        decode(data, STORY)
    assert STORY in caught.value.message
    assert reason in caught.value.message


def test_extra_json_must_be_an_object() -> None:
    assert parse_extra("") == {}
    assert parse_extra(' {"a": 1} ') == {"a": 1}
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        parse_extra("{")
    with pytest.raises(InvalidArgument, match="must be a JSON object, got a list"):
        parse_extra("[]")
    with pytest.raises(InvalidArgument, match="limit"):
        parse_extra(json.dumps({"x": "y" * 300_000}))


def test_commit_checks_normalise_the_title_and_refuse_bad_parts() -> None:
    assert check_for_commit(_manifest(title="  spaced  ")).title == "spaced"
    with pytest.raises(InvalidArgument, match="at least one part"):
        check_for_commit(_manifest(parts=()))
    with pytest.raises(InvalidArgument, match="part 0 has index 1"):
        check_for_commit(_manifest(parts=(Part(index=1),)))
    with pytest.raises(InvalidArgument, match="at most 100 parts"):
        check_for_commit(_manifest(parts=tuple(Part(index=n) for n in range(101))))
    with pytest.raises(InvalidArgument, match="not a finite number"):
        check_for_commit(_manifest(generation=Generation(timings_seconds={"x": float("nan")})))


def test_same_content_ignores_what_storage_sets() -> None:
    manifest = _manifest()
    restamped = _manifest(story_id="", created_at=datetime.now(timezone.utc), format=StoryFormat.LEGACY)
    assert same_content(manifest, restamped)
    assert not same_content(manifest, _manifest(title="Other"))
