"""`python -m services.generator` / `dreamforge-generator`: the API and workers, workers only, a burst, or a check.

dreamforge-generator            # JobService API + WORKERS worker tasks
dreamforge-generator worker     # workers only (scale out: more of these against the same Redis)
dreamforge-generator --burst    # work until the queue is empty, then exit
dreamforge-generator --check    # exit 0 when a worker on this host sent a heartbeat recently
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys

import redis

from services.common.config import ConfigError
from services.common.grpc_server import wait_for_stop_signal
from services.common.logs import configure_logging
from services.generator.keys import Keys
from services.generator.server import create_server
from services.generator.settings import Settings

log = logging.getLogger("services.generator")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dreamforge-generator", description="DreamForge generator service")
    parser.add_argument(
        "mode",
        nargs="?",
        choices=("serve", "worker"),
        default="serve",
        help="serve: API and workers (default); worker: workers only",
    )
    parser.add_argument("--burst", action="store_true", help="work until the queue is empty, then exit")
    parser.add_argument("--check", action="store_true", help="exit 0 if a worker on this host is alive")
    return parser.parse_args(argv)


def check(settings: Settings) -> int:
    """arq-style health check for containers: is this host's worker heartbeat fresh?"""
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=3)
    try:
        alive = bool(client.exists(Keys(settings.redis_prefix).heartbeat(socket.gethostname())))
    except redis.RedisError as exc:
        sys.stderr.write(f"Redis does not answer: {exc}\n")
        return 1
    finally:
        client.close()
    sys.stderr.write("worker heartbeat is fresh\n" if alive else "no recent worker heartbeat on this host\n")
    return 0 if alive else 1


async def _serve(settings: Settings, *, api: bool) -> None:
    server = await create_server(settings, api=api)
    try:
        await wait_for_stop_signal()
        log.info("stop signal: draining (up to %.0fs)", settings.shutdown_grace_seconds)
    finally:
        await server.stop()


async def _burst(settings: Settings) -> None:
    server = await create_server(settings, api=False, start_workers=False)
    try:
        if server.workers is not None:
            await server.workers.run_burst()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        sys.stderr.write(f"dreamforge-generator: {exc}\n")
        return 2
    if args.check:
        return check(settings)
    configure_logging("generator", fmt=settings.log_format, level=settings.log_level)
    settings.log_resolved()
    if args.burst:
        asyncio.run(_burst(settings))
    else:
        asyncio.run(_serve(settings, api=args.mode == "serve"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
