"""`dreamforge up` (what `make up` runs) brings the whole system up, keeps data across restarts and stops cleanly."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.cli.launcher import run_stack
from services.cli.stack_settings import StackSettings
from services.common import redis_server
from tests.support.launcher import (
    ROOT,
    LaunchedStack,
    is_alive,
    launched_stack,
    stack_environment,
    start_stack,
    started_pids,
    wait_for_job,
)

pytestmark = pytest.mark.timeout(300)


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_until_dead(pids: dict[str, int], timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [name for name, pid in pids.items() if is_alive(pid)]
        if not alive:
            return []
        time.sleep(0.1)
    return alive


def test_a_story_made_through_the_api_survives_a_restart(tmp_path: Path) -> None:
    with launched_stack(tmp_path / "data") as stack, stack.client() as client:
        assert client.get("/readyz").status_code == 200
        submitted = client.post("/api/v1/stories", json={"prompt": "a bear who finds a mine full of honey"})
        assert submitted.status_code == 202
        job = wait_for_job(client, submitted.json()["job"]["id"])
        assert job["state"] == "succeeded", job
        story_id = job["story_id"]
        title = client.get(f"/api/v1/stories/{story_id}").json()["title"]
        env, pids = stack.env, started_pids(stack)
    assert stack.process.returncode == 0, stack.output()
    assert set(pids) == {"redis", "storage", "generator", "gateway"}
    assert _wait_until_dead(pids) == [], "processes outlived the stack"
    for name in ("GATEWAY_PORT",):
        assert _port_is_free(int(env[name]))
    for name in ("STORAGE_ADDR", "GENERATOR_ADDR"):
        assert _port_is_free(int(env[name].rsplit(":", 1)[1]))

    restarted = start_stack(env)
    try:
        restarted.wait_for_line("DreamForge is up")
        with restarted.client() as client:
            assert client.get(f"/api/v1/stories/{story_id}").json()["title"] == title
            listed = client.get("/api/v1/stories").json()["stories"]
            assert [story["id"] for story in listed] == [story_id]
    finally:
        assert restarted.stop() == 0


def test_jobs_left_unfinished_by_a_stop_finish_after_the_next_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # No workers at first: the jobs can only wait in the queue (in Redis' append-only file).
    with launched_stack(data, WORKERS="0") as stack, stack.client() as client:
        job_ids = [
            client.post("/api/v1/stories", json={"prompt": f"a fox who learns to sing, take {n}"}).json()["job"]["id"]
            for n in range(3)
        ]
        env = stack.env
        assert {client.get(f"/api/v1/jobs/{job_id}").json()["state"] for job_id in job_ids} == {"queued"}

    env["WORKERS"] = "2"
    restarted = start_stack(env)
    try:
        restarted.wait_for_line("DreamForge is up")
        with restarted.client() as client:
            finished = [wait_for_job(client, job_id) for job_id in job_ids]
            assert [job["state"] for job in finished] == ["succeeded"] * 3
            listed = client.get("/api/v1/stories", params={"limit": 100}).json()["stories"]
            assert sorted(story["id"] for story in listed) == sorted(str(job["story_id"]) for job in finished)
    finally:
        assert restarted.stop() == 0


def test_a_job_running_when_the_stack_stops_is_finished_exactly_once_later(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with launched_stack(data) as stack, stack.client() as client:
        job_ids = [
            client.post("/api/v1/stories", json={"prompt": f"an owl who counts stars, night {n}", "parts": 8}).json()[
                "job"
            ]["id"]
            for n in range(6)
        ]
        env = stack.env
        # Stop at once: some jobs are running, the rest queued.
    restarted = start_stack(env)
    try:
        restarted.wait_for_line("DreamForge is up")
        with restarted.client() as client:
            finished = [wait_for_job(client, job_id) for job_id in job_ids]
            assert [job["state"] for job in finished] == ["succeeded"] * 6
            listed = client.get("/api/v1/stories", params={"limit": 100}).json()["stories"]
            assert len(listed) == 6
            assert {story["id"] for story in listed} == {str(job["story_id"]) for job in finished}
    finally:
        assert restarted.stop() == 0


def test_a_service_that_dies_stops_the_whole_stack_with_an_error(tmp_path: Path) -> None:
    stack = start_stack(stack_environment(tmp_path / "data"))
    try:
        stack.wait_for_line("DreamForge is up")
        pids = started_pids(stack)
        os.kill(pids["generator"], signal.SIGKILL)
        code = stack.process.wait(120)
    finally:
        stack.stop()
    assert code == 1
    assert "generator exited unexpectedly" in stack.output()
    assert _wait_until_dead(pids) == []


def test_two_stacks_run_side_by_side(tmp_path: Path) -> None:
    with launched_stack(tmp_path / "one") as first, launched_stack(tmp_path / "two") as second:
        assert first.url != second.url
        with first.client() as one, second.client() as two:
            job = one.post("/api/v1/stories", json={"prompt": "a tortoise who wins a race"}).json()["job"]
            assert wait_for_job(one, job["id"])["state"] == "succeeded"
            assert len(one.get("/api/v1/stories").json()["stories"]) == 1
            assert two.get("/api/v1/stories").json()["stories"] == []


def test_a_bad_setting_stops_before_anything_starts(tmp_path: Path) -> None:
    env = stack_environment(tmp_path / "data", STORAGE_BACKEND="pinata")
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "up"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "PINATA_JWT" in result.stderr
    assert not (tmp_path / "data" / "redis").exists()


def test_no_redis_anywhere_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_server, "find_redis_binary", lambda: None)
    settings = StackSettings.from_env(stack_environment(tmp_path / "data"))
    out = io.StringIO()
    assert asyncio.run(run_stack(settings, out=out)) == 1
    assert "No Redis found" in out.getvalue()
    assert "REDIS_URL" in out.getvalue()


def _service_records(stack: LaunchedStack, service: str) -> list[dict[str, Any]]:
    records = []
    for line in stack.lines:
        name, sep, rest = line.partition("|")
        if sep and name.strip() == service and rest.strip().startswith("{"):
            records.append(json.loads(rest))
    return records


def test_json_logs_carry_request_and_job_ids_but_never_the_whole_prompt(tmp_path: Path) -> None:
    prompt = "a lighthouse keeper who befriends a whale named Marguerite and teaches her to read the tides"
    with launched_stack(tmp_path / "data", LOG_FORMAT="json") as stack, stack.client() as client:
        submitted = client.post("/api/v1/stories", json={"prompt": prompt}, headers={"X-Request-ID": "trace-submit"})
        assert submitted.headers["X-Request-ID"] == "trace-submit"
        job_id = submitted.json()["job"]["id"]
        assert wait_for_job(client, job_id)["state"] == "succeeded"
        missing = client.get(
            "/api/v1/stories/0193a4b2-0000-7000-8000-000000000001", headers={"X-Request-ID": "trace-404"}
        )
        assert missing.status_code == 404
    every_line = [line.partition("|")[2] for line in stack.lines if not line.startswith("stack")]
    assert every_line and all(line.strip().startswith("{") for line in every_line), "a service wrote a non-JSON line"
    generator, storage = _service_records(stack, "generator"), _service_records(stack, "storage")
    # The gateway's request id reached the generator (submit) and storage (the failed read) through gRPC.
    assert any(r.get("request_id") == "trace-submit" for r in generator)
    assert any(r.get("request_id") == "trace-404" and "NOT_FOUND" in r["message"] for r in storage)
    # Every service logged something about the job under its id, storage included.
    assert any(r.get("job_id") == job_id for r in generator)
    assert any(r.get("job_id") == job_id for r in storage)
    # A short preview of the prompt at most, never all of it.
    assert prompt not in stack.output()
    assert "teaches her to read the tides" not in stack.output()


def test_every_service_serves_its_metrics(tmp_path: Path) -> None:
    with launched_stack(tmp_path / "data") as stack, stack.client() as client:
        job = client.post("/api/v1/stories", json={"prompt": "a crab who collects moonlight"}).json()["job"]
        assert wait_for_job(client, job["id"])["state"] == "succeeded"
        gateway = client.get("/metrics").text
        storage = httpx.get(f"http://{stack.env['STORAGE_METRICS_ADDR']}/metrics", timeout=10).text
        generator = httpx.get(f"http://{stack.env['GENERATOR_METRICS_ADDR']}/metrics", timeout=10).text
    for name in ("dreamforge_http_requests_total", "dreamforge_http_request_duration_seconds_bucket",
                 "dreamforge_jobs_submitted_total"):  # fmt: skip
        assert name in gateway, name
    for name in ("dreamforge_rpc_duration_seconds_bucket", 'method="CommitStory"',
                 "dreamforge_storage_backend_seconds_bucket", "dreamforge_storage_index_entries_total"):  # fmt: skip
        assert name in storage, name
    for name in ("dreamforge_queue_depth", 'dreamforge_jobs_finished_total{state="succeeded"}',
                 "dreamforge_job_stage_seconds_bucket", "dreamforge_model_call_seconds_bucket",
                 'method="SubmitJob"'):  # fmt: skip
        assert name in generator, name
