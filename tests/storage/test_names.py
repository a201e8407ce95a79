"""What callers may name things, and the messages they get when a name is wrong."""

from __future__ import annotations

import pytest

from services.common.errors import InvalidArgument
from services.storage.names import (
    check_asset_name,
    check_content_type,
    check_story_id,
    check_title,
    natural_key,
    part_file,
)


def test_story_ids_are_canonical_lowercase_uuids() -> None:
    assert check_story_id(" 0193B1C2-0000-7000-8000-00000000ABCD ") == "0193b1c2-0000-7000-8000-00000000abcd"
    with pytest.raises(InvalidArgument, match="story_id is required"):
        check_story_id("")
    with pytest.raises(InvalidArgument, match="must be a UUID"):
        check_story_id("0193b1c2")


def test_titles_are_stripped_and_limited() -> None:
    assert check_title("  A bear  ") == "A bear"
    assert check_title("x" * 200) == "x" * 200
    with pytest.raises(InvalidArgument, match="201 characters long; the limit is 200"):
        check_title("x" * 201)
    with pytest.raises(InvalidArgument, match="control characters"):
        check_title("a\x00b")


@pytest.mark.parametrize("name", ["text_0", "image_12", "cover.png", "notes v2", "é" * 200, "a.b.c"])
def test_ordinary_asset_names_pass(name: str) -> None:
    assert check_asset_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "must not be empty"),
        ("x" * 201, "201 characters"),
        ("a/b", "'/'"),
        ("a\\b", "'/' or '\\\\'"),
        ("..", "'..'"),
        ("a..b", "'..'"),
        ("\x00", "NUL"),
        ("tab\there", "control"),
        ("del\x7f", "control"),
        ("story.json", "reserved"),
    ],
)
def test_bad_asset_names_say_what_is_wrong(name: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_asset_name(name)
    assert message.replace("\\\\", "\\") in caught.value.message


def test_the_manifest_name_may_be_read() -> None:
    assert check_asset_name("story.json", allow_manifest=True) == "story.json"


def test_content_types() -> None:
    assert check_content_type("") == "application/octet-stream"
    assert check_content_type("text/plain; charset=utf-8") == "text/plain; charset=utf-8"
    with pytest.raises(InvalidArgument, match="MIME type"):
        check_content_type("png")


def test_part_files_and_natural_order() -> None:
    assert part_file("text_3") == ("text", 3)
    assert part_file("image_0") == ("image", 0)
    assert part_file("text_x") is None
    assert part_file("story.json") is None
    assert sorted(["text_10", "text_2", "image_1"], key=natural_key) == ["image_1", "text_2", "text_10"]
