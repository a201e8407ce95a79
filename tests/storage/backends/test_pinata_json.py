"""Reading Pinata's JSON: timestamps Python 3.10 cannot parse as they come, both date keys, loose types."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from services.common.errors import Unavailable
from services.storage.backends.pinata_json import content_type, file_from_json, group_from_json, page, parse_timestamp


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-08-27T14:57:51.485934Z", datetime(2024, 8, 27, 14, 57, 51, 485934, tzinfo=timezone.utc)),
        ("2024-08-28T20:58:46.96779Z", datetime(2024, 8, 28, 20, 58, 46, 967790, tzinfo=timezone.utc)),
        ("2024-08-28T20:58:46.1Z", datetime(2024, 8, 28, 20, 58, 46, 100000, tzinfo=timezone.utc)),
        ("2024-08-28T20:58:46Z", datetime(2024, 8, 28, 20, 58, 46, tzinfo=timezone.utc)),
        ("2024-07-12T15:09:47.564042199Z", datetime(2024, 7, 12, 15, 9, 47, 564042, tzinfo=timezone.utc)),
        ("2024-06-12T15:34:50.324+02:00", datetime(2024, 6, 12, 13, 34, 50, 324000, tzinfo=timezone.utc)),
        ("2024-06-12T15:34:50.324-0130", datetime(2024, 6, 12, 17, 4, 50, 324000, tzinfo=timezone.utc)),
        ("2024-06-12T15:34:50", datetime(2024, 6, 12, 15, 34, 50, tzinfo=timezone.utc)),
        ("2024-06-12 15:34Z", datetime(2024, 6, 12, 15, 34, tzinfo=timezone.utc)),
    ],
)
def test_timestamps_in_every_shape_pinata_sends_are_read_as_utc(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() is not None


@pytest.mark.parametrize("text", [None, 1724770671, "", "yesterday", "2024-13-45T99:99:99Z"])
def test_unreadable_timestamps_are_none(text: object) -> None:
    assert parse_timestamp(text) is None


def test_created_at_is_read_from_either_key_and_missing_dates_become_the_epoch() -> None:
    snake = group_from_json({"id": "g1", "name": "a", "created_at": "2024-08-28T20:58:46.96779Z"}, "public")
    camel = group_from_json({"id": "g2", "name": "b", "createdAt": "2024-08-28T20:58:46.96779Z"}, "private")
    undated = group_from_json({"id": "g3", "name": "c"}, "public")

    assert snake.created_at == camel.created_at == datetime(2024, 8, 28, 20, 58, 46, 967790, tzinfo=timezone.utc)
    assert camel.network == "private"
    assert undated.created_at == datetime(1970, 1, 1, tzinfo=timezone.utc)


def test_a_file_record_takes_what_pinata_sent_and_fills_gaps_from_what_was_uploaded() -> None:
    sent = {"name": "image_0", "size": 10, "mime_type": "image/png", "group_id": "g1", "keyvalues": {"a": "b"}}

    record = file_from_json({"id": "f1", "cid": "bafk", "size": 12, "group_id": None}, "public", fallback=sent)

    assert (record.id, record.cid, record.size, record.name) == ("f1", "bafk", 12, "image_0")
    assert record.group_id == "g1"  # a null from Pinata does not erase what we know
    assert record.content_type == "image/png"
    assert dict(record.keyvalues) == {"a": "b"}


def test_loose_field_types_are_normalised() -> None:
    record = file_from_json(
        {"id": "f1", "cid": "bafk", "size": "12", "name": None, "keyvalues": {"n": 3, "gone": None}}, "private"
    )

    assert (record.size, record.name, record.network) == (12, "", "private")
    assert dict(record.keyvalues) == {"n": "3"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("image/png", "image/png"),
        ("text/plain; charset=utf-8", "text/plain; charset=utf-8"),
        ("TODO", "application/octet-stream"),
        ("not a/type", "application/octet-stream"),
        (None, "application/octet-stream"),
    ],
)
def test_placeholder_mime_types_become_octet_stream(value: object, expected: str) -> None:
    assert content_type(value) == expected


def test_a_list_page_gives_its_items_and_token_and_an_absent_token_ends_the_list() -> None:
    assert page({"files": [{"id": "f"}], "next_page_token": "abc"}, "files") == ([{"id": "f"}], "abc")
    assert page({"files": [], "next_page_token": None}, "files") == ([], "")
    assert page({"groups": None}, "groups") == ([], "")


@pytest.mark.parametrize("item", [None, [], "text", {"name": "no id"}])
def test_records_without_an_object_or_an_id_are_an_unavailable_pinata(item: object) -> None:
    with pytest.raises(Unavailable):
        group_from_json(item, "public")
