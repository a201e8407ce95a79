"""Server-Sent Events framing."""

from __future__ import annotations

from services.gateway.sse import frame, retry_frame


def test_an_event_has_id_event_and_one_data_line() -> None:
    text = frame("text", {"delta": "line one\nline two"}, "17-0").decode()
    assert text == 'id: 17-0\nevent: text\ndata: {"delta":"line one\\nline two"}\n\n'


def test_an_event_without_id_has_no_id_line() -> None:
    assert frame("progress", {}).decode() == "event: progress\ndata: {}\n\n"


def test_the_retry_hint_is_in_milliseconds() -> None:
    assert retry_frame(2000) == b"retry: 2000\n\n"
