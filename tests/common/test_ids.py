"""Ids are canonical UUIDs that sort by creation time."""

from __future__ import annotations

import uuid

from services.common.ids import is_id, new_id


def test_new_id_is_a_version_7_uuid() -> None:
    value = new_id()
    assert is_id(value)
    assert uuid.UUID(value).version == 7


def test_ids_sort_by_creation_time() -> None:
    assert new_id(now_ms=1_000) < new_id(now_ms=2_000) < new_id(now_ms=3_000_000_000_000)


def test_is_id_rejects_anything_else() -> None:
    for bad in ("", "abc", "../etc/passwd", str(uuid.uuid4()).upper(), str(uuid.uuid4()) + "x"):
        assert not is_id(bad)
    assert is_id(str(uuid.uuid4()))
