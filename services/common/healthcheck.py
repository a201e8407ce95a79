"""Container health checks: `python -m services.common.healthcheck grpc HOST:PORT` or `... http URL`.

Exit 0 when the service answers healthy, 1 otherwise (with the reason on stderr).
"""

from __future__ import annotations

import asyncio
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

from services.common.grpc_client import check_health, open_channel


async def _grpc_healthy(address: str) -> bool:
    async with open_channel(address) as channel:
        return await check_health(channel, timeout=3.0)


def _http_healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] not in ("grpc", "http"):
        print("usage: python -m services.common.healthcheck grpc HOST:PORT | http URL", file=sys.stderr)
        return 2
    kind, target = args
    healthy = asyncio.run(_grpc_healthy(target)) if kind == "grpc" else _http_healthy(target)
    if not healthy:
        print(f"{target} is not healthy", file=sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
