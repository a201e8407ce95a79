"""Byte ranges and entity tags for files (the HTTP behaviour is tested against real storage in test_api_v1)."""

from __future__ import annotations

import pytest

from services.gateway.assets import ByteRange, RangeNotSatisfiable, etag_for, etag_matches, parse_range


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-99", 1000, ByteRange(0, 99)),
        ("bytes=100-", 1000, ByteRange(100, 999)),
        ("bytes=-100", 1000, ByteRange(900, 999)),
        ("bytes=-5000", 1000, ByteRange(0, 999)),
        ("bytes=990-5000", 1000, ByteRange(990, 999)),
        ("bytes=999-999", 1000, ByteRange(999, 999)),
    ],
)
def test_a_single_range_is_read_and_clamped_to_the_file(header: str, size: int, expected: ByteRange) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize("header", ["items=0-1", "bytes=", "bytes=-", "bytes=5-1", "bytes=0-1,5-6", "bytes=a-b"])
def test_malformed_and_multiple_ranges_are_ignored(header: str) -> None:
    assert parse_range(header, 1000) is None


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=1000-", 1000), ("bytes=5000-6000", 1000), ("bytes=-0", 1000), ("bytes=0-", 0)]
)
def test_a_range_outside_the_file_is_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)


def test_the_etag_is_the_quoted_cid_and_matches_weakly_in_lists() -> None:
    tag = etag_for("bafkreiabc")
    assert tag == '"bafkreiabc"'
    assert etag_matches('"bafkreiabc"', tag)
    assert etag_matches('W/"bafkreiabc"', tag)
    assert etag_matches('"other", "bafkreiabc"', tag)
    assert etag_matches("*", tag)
    assert not etag_matches('"bafkreixyz"', tag)
    assert not etag_matches("bafkreiabc", tag)
