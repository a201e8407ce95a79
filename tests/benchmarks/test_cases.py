"""The benchmarks keep working (their numbers are checked by `make bench`, never here)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.cases import CASES, asset_memory, offline_story


def test_every_benchmark_is_registered_by_name() -> None:
    assert set(CASES) == {"index", "offline", "e2e", "memory"}


async def test_offline_benchmark_measures_a_story(tmp_path: Path, redis_url: str) -> None:
    (result,) = await offline_story(tmp_path, redis_url)
    assert result.unit == "s" and result.value > 0 and result.target is not None


async def test_memory_benchmark_round_trips_a_20_mb_picture(tmp_path: Path, redis_url: str) -> None:
    results = await asset_memory(tmp_path, redis_url)
    assert [r.unit for r in results] == ["s", "s", "MB"]
    assert all(r.value >= 0 for r in results)
