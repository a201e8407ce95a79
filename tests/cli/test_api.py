"""The CLI's REST client: errors become readable messages, the event stream is parsed as SSE.

Behaviour against a real gateway is covered in tests/stack; these pin down the parsing.
"""

from __future__ import annotations

import httpx
import pytest

from services.cli.api import ApiError, DreamForgeApi, _error_from, _parse_sse
from services.common.redis_server import free_port


def test_error_body_message_is_surfaced() -> None:
    error = _error_from(httpx.Response(400, json={"error": {"code": "invalid_argument", "message": "prompt is empty"}}))
    assert str(error) == "prompt is empty"
    assert error.status == 400
    assert error.code == "invalid_argument"


def test_original_style_error_body_is_understood_too() -> None:
    assert str(_error_from(httpx.Response(404, json={"message": "Job not found"}))) == "Job not found"


def test_body_that_is_not_json_falls_back_to_the_status() -> None:
    assert str(_error_from(httpx.Response(502, text="<html>Bad gateway</html>"))) == "HTTP 502"


def test_unreachable_gateway_says_so() -> None:
    with DreamForgeApi(f"http://127.0.0.1:{free_port()}") as api, pytest.raises(ApiError, match="cannot reach"):
        api.stories()


def test_event_stream_yields_typed_events_and_skips_heartbeats() -> None:
    lines = [
        ": heartbeat",
        "",
        "id: 1-0",
        "event: progress",
        'data: {"progress": 10, "stage": "writing"}',
        "",
        "id: 2-0",
        "event: text",
        'data: {"delta": "Once"}',
        "",
        ": heartbeat",
        "",
        "id: 3-0",
        "event: done",
        'data: {"story_id": "s1"}',
        "",
    ]
    events = list(_parse_sse(iter(lines)))
    assert [(e.event, e.id) for e in events] == [("progress", "1-0"), ("text", "2-0"), ("done", "3-0")]
    assert events[0].data == {"progress": 10, "stage": "writing"}


def test_multi_line_data_is_joined() -> None:
    events = list(_parse_sse(iter(["event: text", 'data: {"delta":', 'data: "x"}', ""])))
    assert events[0].data == {"delta": "x"}
