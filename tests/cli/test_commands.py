"""The `dreamforge` command against a running stack: results on stdout, errors on stderr, exit codes a shell expects."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.redis_server import free_port
from tests.support.launcher import ROOT, LaunchedStack, launched_stack

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaunchedStack]:
    with launched_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


def dreamforge(stack: LaunchedStack, *args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "--url", url or stack.url, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture(scope="module")
def story(stack: LaunchedStack) -> dict[str, object]:
    result = dreamforge(stack, "--json", "generate", "a bear who finds a mine full of honey", "--parts", "2", "--wait")
    assert result.returncode == 0, result.stderr
    made = json.loads(result.stdout)
    assert isinstance(made, dict)
    return made


def test_generate_wait_shows_progress_and_prints_the_story(stack: LaunchedStack) -> None:
    result = dreamforge(
        stack, "generate", "a heron who builds a bridge", "--parts", "3", "--style", "Watercolour", "--wait"
    )
    assert result.returncode == 0, result.stderr
    assert "100% done" in result.stderr  # stage lines go to stderr when it is not a terminal
    assert "(story " in result.stdout
    assert result.stdout.count("\n") > 6


def test_generate_without_wait_prints_the_job_id_at_once(stack: LaunchedStack) -> None:
    result = dreamforge(stack, "generate", "a snail who races the wind")
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    assert len(job_id) == 36


def test_json_story_has_the_api_shape(story: dict[str, object]) -> None:
    assert set(story) >= {"id", "title", "parts", "characters", "engine"}
    assert len(story["parts"]) == 2  # type: ignore[arg-type]


def test_list_and_show_find_the_story(stack: LaunchedStack, story: dict[str, object]) -> None:
    listed = dreamforge(stack, "list", "--all")
    assert listed.returncode == 0
    assert f"{story['id']}" in listed.stdout
    searched = dreamforge(stack, "--json", "list", "-q", str(story["title"])[:12])
    assert story["id"] in [s["id"] for s in json.loads(searched.stdout)["stories"]]
    shown = dreamforge(stack, "show", str(story["id"]))
    assert shown.returncode == 0
    assert str(story["title"]) in shown.stdout


def test_export_writes_self_contained_html_and_markdown(
    stack: LaunchedStack, story: dict[str, object], tmp_path: Path
) -> None:
    for fmt in ("html", "md"):
        target = tmp_path / f"story.{fmt}"
        result = dreamforge(stack, "export", str(story["id"]), "--format", fmt, "-o", str(target))
        assert result.returncode == 0, result.stderr
        document = target.read_text()
        assert document.count("data:image/png;base64,") == 2
        assert "/api/v1/" not in document  # nothing to fetch: it opens offline


def test_reindex_reports_the_story_count(stack: LaunchedStack, story: dict[str, object]) -> None:
    result = dreamforge(stack, "--json", "reindex")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["story_count"] >= 1


def test_delete_removes_the_story_and_show_then_fails(stack: LaunchedStack) -> None:
    made = json.loads(dreamforge(stack, "--json", "generate", "a kite that wants to stay down", "--wait").stdout)
    assert dreamforge(stack, "delete", made["id"]).returncode == 0
    shown = dreamforge(stack, "show", made["id"])
    assert shown.returncode == 1
    assert shown.stdout == ""
    assert made["id"] in shown.stderr


def test_bad_input_fails_with_the_api_message_on_stderr(stack: LaunchedStack) -> None:
    result = dreamforge(stack, "generate", "   ")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "prompt" in result.stderr.lower()
    result = dreamforge(stack, "generate", "a cat", "--parts", "9")
    assert result.returncode == 1
    assert "parts" in result.stderr.lower()


def test_unreachable_gateway_is_a_clear_error(stack: LaunchedStack) -> None:
    result = dreamforge(stack, "list", url=f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "cannot reach DreamForge" in result.stderr


def test_usage_errors_exit_with_two(stack: LaunchedStack) -> None:
    result = dreamforge(stack, "export", "x", "--format", "pdf")
    assert result.returncode == 2
