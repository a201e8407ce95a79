"""`dreamforge up`: Redis, storage, generator and gateway in dependency order, in the foreground.

Each service runs as a child process whose output lines are prefixed with its
name. A service must pass its health check before the next one starts. Ctrl-C
or SIGTERM stops everything in reverse order; a service that dies on its own
stops the whole stack with a non-zero exit, rather than leaving it limping.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

import httpx

from services.cli.stack_settings import StackSettings
from services.common.grpc_client import check_health, open_channel
from services.common.processes import die_with_parent
from services.common.redis_server import RedisUnavailable, provide_redis

log = logging.getLogger(__name__)

_COLOURS = {"storage": "\033[36m", "generator": "\033[35m", "gateway": "\033[33m", "stack": "\033[1m"}
_RESET = "\033[0m"


class StackError(RuntimeError):
    """The stack could not start or a service died; the message says which and why."""


@dataclass
class ServiceSpec:
    """How to run one service and how to tell that it is ready."""

    name: str
    module: str
    is_ready: Callable[[], object]  # an async callable returning True when healthy


@dataclass
class Child:
    spec: ServiceSpec
    process: asyncio.subprocess.Process
    pump: asyncio.Task[None]
    expected_exit: bool = field(default=False)


class Console:
    """Writes prefixed lines for every service, in colour on a terminal."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._colour = out.isatty()

    def line(self, name: str, text: str) -> None:
        prefix = f"{name:<9}|"
        if self._colour:
            prefix = f"{_COLOURS.get(name, '')}{prefix}{_RESET}"
        self._out.write(f"{prefix} {text}\n")
        self._out.flush()


def _grpc_ready(address: str) -> Callable[[], object]:
    async def probe() -> bool:
        async with open_channel(address) as channel:
            return await check_health(channel, timeout=1.0)

    return probe


def _http_ready(url: str) -> Callable[[], object]:
    async def probe() -> bool:
        try:
            async with httpx.AsyncClient(timeout=2.0) as client:
                response = await client.get(url)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    return probe


def service_specs(settings: StackSettings) -> list[ServiceSpec]:
    """The services in the order they start (each depends on the ones before it)."""
    return [
        ServiceSpec("storage", "services.storage", _grpc_ready(settings.storage_addr)),
        ServiceSpec("generator", "services.generator", _grpc_ready(settings.generator_addr)),
        ServiceSpec("gateway", "services.gateway", _http_ready(settings.gateway_url + "/readyz")),
    ]


class Stack:
    """The running children, started in order and stopped in reverse."""

    def __init__(
        self,
        settings: StackSettings,
        environ: dict[str, str],
        console: Console,
        *,
        python: str = sys.executable,
    ) -> None:
        self._settings = settings
        self._environ = environ
        self._console = console
        self._python = python
        self.children: list[Child] = []

    async def start(self, spec: ServiceSpec, stop_requested: asyncio.Event) -> None:
        process = await asyncio.create_subprocess_exec(
            self._python,
            "-m",
            spec.module,
            env=self._environ,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # Own session: the terminal's Ctrl-C reaches only us, and we stop children in order.
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        pump = asyncio.ensure_future(self._pump(spec.name, process))
        child = Child(spec, process, pump)
        self.children.append(child)
        await self._wait_until_ready(child, stop_requested)

    async def _pump(self, name: str, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while True:
            raw = await process.stdout.readline()
            if not raw:
                return
            self._console.line(name, raw.decode(errors="replace").rstrip("\n"))

    async def _wait_until_ready(self, child: Child, stop_requested: asyncio.Event) -> None:
        deadline = time.monotonic() + self._settings.startup_timeout
        while time.monotonic() < deadline:
            if stop_requested.is_set():
                raise StackError("stopped while starting")
            if child.process.returncode is not None:
                raise StackError(
                    f"{child.spec.name} exited with code {child.process.returncode} while starting "
                    "(its last lines are above)"
                )
            if await child.spec.is_ready():  # type: ignore[misc]
                self._console.line("stack", f"{child.spec.name} is ready (pid {child.process.pid})")
                return
            await asyncio.sleep(0.2)
        raise StackError(f"{child.spec.name} did not become healthy within {self._settings.startup_timeout:.0f}s")

    async def supervise(self, stop_requested: asyncio.Event) -> int:
        """Wait for a stop request (exit 0) or for any child to die (exit 1)."""
        stop_wait = asyncio.ensure_future(stop_requested.wait())
        exits = {asyncio.ensure_future(child.process.wait()): child for child in self.children}
        try:
            done, _ = await asyncio.wait({stop_wait, *exits}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_wait.cancel()
            for waiter in exits:
                waiter.cancel()
        if stop_wait in done:
            return 0
        for waiter in done:
            child = exits[waiter]
            self._console.line(
                "stack", f"{child.spec.name} exited unexpectedly with code {child.process.returncode}; stopping"
            )
        return 1

    async def stop_all(self) -> None:
        for child in reversed(self.children):
            await self._stop(child)
        self.children.clear()

    async def _stop(self, child: Child) -> None:
        process = child.process
        if process.returncode is None:
            self._console.line("stack", f"stopping {child.spec.name}")
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), self._settings.stop_timeout)
            except asyncio.TimeoutError:
                self._console.line("stack", f"{child.spec.name} did not stop in time; killing it")
                process.kill()
                await process.wait()
        try:
            await asyncio.wait_for(child.pump, 5)
        except asyncio.TimeoutError:
            child.pump.cancel()


async def run_stack(
    settings: StackSettings,
    *,
    out: TextIO | None = None,
    summary: Sequence[str] = (),
    base_environ: dict[str, str] | None = None,
) -> int:
    """Run the stack in the foreground until a signal or a failure; return the exit code."""
    console = Console(out or sys.stdout)
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_requested.set)
    try:
        try:
            redis_context = provide_redis(settings.redis_url, settings.data_dir / "redis", appendonly=True)
            redis = redis_context.__enter__()
        except RedisUnavailable as exc:
            console.line("stack", str(exc))
            return 1
        try:
            if redis.process is None:
                console.line("stack", "redis is ready (given by REDIS_URL)")
            else:
                console.line(
                    "stack", f"redis is ready (pid {redis.process.pid}, data in {settings.data_dir / 'redis'})"
                )
            stack = Stack(settings, settings.child_environment(redis.url, base_environ), console)
            code = 1
            try:
                for spec in service_specs(settings):
                    await stack.start(spec, stop_requested)
                _print_banner(console, settings, summary)
                code = await stack.supervise(stop_requested)
            except StackError as exc:
                console.line("stack", f"error: {exc}")
                code = 0 if stop_requested.is_set() else 1
            finally:
                await stack.stop_all()
        finally:
            redis_context.__exit__(None, None, None)
        console.line("stack", "stopped")
        return code
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _print_banner(console: Console, settings: StackSettings, summary: Sequence[str]) -> None:
    console.line("stack", "")
    console.line("stack", f"DreamForge is up: open {settings.gateway_url}")
    for line in summary:
        console.line("stack", f"  {line}")
    console.line("stack", "Press Ctrl-C to stop.")
    console.line("stack", "")
