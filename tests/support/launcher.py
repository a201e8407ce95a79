"""Running `dreamforge up` (the real launcher, as a process) on fresh ports and a fresh data dir, for tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from services.common.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LaunchedStack:
    """A `dreamforge up` process and the addresses it was given."""

    process: subprocess.Popen[str]
    url: str
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, text: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.process.poll() is not None and self._reader is not None and not self._reader.is_alive():
                raise AssertionError(f"launcher exited ({self.process.returncode}) before {text!r}:\n{self.output()}")
            time.sleep(0.1)
        raise AssertionError(f"no {text!r} within {timeout}s:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 90.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"launcher did not stop within {timeout}s:\n{self.output()}") from None
        if self._reader is not None:
            self._reader.join(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return code

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0)


def stack_environment(data_dir: Path, **overrides: str) -> dict[str, str]:
    """A complete environment for one stack: every port fresh, so stacks can run side by side."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PINATA_", "OPENAI_"))}
    env.pop("REDIS_URL", None)
    env.update(
        {
            "DATA_DIR": str(data_dir),
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(free_port()),
            "STORAGE_ADDR": f"127.0.0.1:{free_port()}",
            "GENERATOR_ADDR": f"127.0.0.1:{free_port()}",
            "STORAGE_METRICS_ADDR": f"127.0.0.1:{free_port()}",
            "GENERATOR_METRICS_ADDR": f"127.0.0.1:{free_port()}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


def start_stack(env: dict[str, str]) -> LaunchedStack:
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "up"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    stack = LaunchedStack(process=process, url=f"http://127.0.0.1:{env['GATEWAY_PORT']}", env=env)

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            stack.lines.append(line.rstrip("\n"))

    stack._reader = threading.Thread(target=read, daemon=True)
    stack._reader.start()
    return stack


@contextmanager
def launched_stack(data_dir: Path, **overrides: str) -> Iterator[LaunchedStack]:
    """`dreamforge up` until it says it is up; stopped (and checked to stop cleanly) afterwards."""
    stack = start_stack(stack_environment(data_dir, **overrides))
    try:
        stack.wait_for_line("DreamForge is up")
        yield stack
    finally:
        stack.stop()


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 120.0) -> dict[str, object]:
    """Poll the job until it has finished one way or another."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return dict(job)
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish within {timeout}s")


def started_pids(stack: LaunchedStack) -> dict[str, int]:
    """The pid of every process the launcher said it started (redis, storage, generator, gateway)."""
    pids = {}
    for line in stack.lines:
        match = re.search(r"(\w+) is ready \(pid (\d+)", line)
        if match:
            pids[match.group(1)] = int(match.group(2))
    return pids


def is_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
