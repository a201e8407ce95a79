"""Schemathesis fuzzes the live gateway (real storage and generator behind it) against its OpenAPI document.

Every documented status code, header and schema must hold, error bodies included. The
run is deterministic (no random seed) and small, so it finds the same things every time.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.support.stack import Stack

CONFIG = Path(__file__).with_name("schemathesis.toml")
RUNNER = "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())"


async def test_the_live_api_keeps_every_promise_of_its_openapi_document(stack: Stack, tmp_path: Path) -> None:
    url = stack.gateway.url
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUNNER,
        "--config-file", str(CONFIG),
        "run", f"{url}/api/v1/openapi.json",
        "--url", url,
        "--max-examples", "12",
        "--generation-deterministic",
        "--request-timeout", "60",
        "--workers", "1",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-12000:]
    assert "No issues found" in text or " passed" in text, text[-3000:]
