"""`make bench`: run every benchmark, print a table, exit non-zero when a target is missed.

Targets live here, never in the tests: a loaded CI machine must not fail a test
for being slow. Results are also written to `.benchmarks/results.json`.

    python -m benchmarks                 # all
    python -m benchmarks index offline   # some, by name
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

from benchmarks.cases import CASES, Result
from services.common.redis_server import provide_redis


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(CASES)})")
    args = parser.parse_args()
    unknown = [name for name in args.names if name not in CASES]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    chosen = args.names or list(CASES)

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="dreamforge-bench-") as scratch:
        root = Path(scratch)
        with provide_redis(os.environ.get("REDIS_URL"), root / "redis", appendonly=False) as redis:
            for name in chosen:
                print(f"running {name} ...", file=sys.stderr, flush=True)
                results.extend(asyncio.run(CASES[name](root / name, redis.url)))

    width = max(len(r.name) for r in results)
    print(f"{'benchmark'.ljust(width)}  {'measured':>14}  {'target':>16}  verdict")
    for r in results:
        verdict = "ok" if r.passed else "MISSED"
        print(f"{r.name.ljust(width)}  {r.value:>10.3f} {r.unit:<3}  {r.target_text:>16}  {verdict}")
    out = Path(".benchmarks")
    out.mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps([r.as_json() for r in results], indent=2))
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
