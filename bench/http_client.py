"""Outbound HTTP: httpx's own transport against the bridge's aiohttp one.

Both contenders are an `httpx.AsyncClient`, as every target uses it: one
with httpx's default transport (httpcore and h11), one with
`bridge.http.AiohttpTransport`, the transport that `outbound_client` gives
the bridge. Each posts the same 1.5 KB JSON body to the local receiver of
bench/receiver.py over 4 connections at once, in turn, in one process
with uvloop, as the bridge runs. The figures are the requests per second
and the CPU of this process per request, which is what a delivery costs
the bridge's event loop.

Run: ``.venv/bin/python bench/http_client.py`` (``--smoke`` for 50 requests).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import harness
import httpx
import uvloop

from bridge.http import AiohttpTransport

CONCURRENCY = 4
WARMUP = 200


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    parser.add_argument(
        "--requests", type=int, default=5000, help="measured requests per client"
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs of each client")
    harness.add_workdir_option(parser)
    arguments = parser.parse_args()
    if arguments.smoke:
        arguments.requests = 50
        arguments.rounds = 1
    return arguments


async def measure(
    transport: httpx.AsyncBaseTransport | None, url: str, count: int
) -> tuple[float, float]:
    """Return requests per second and CPU milliseconds per request."""
    body = json.dumps({"event": "x" * 1500}).encode()
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(transport=transport, timeout=10) as client:

        async def post() -> None:
            response = await client.post(url, content=body, headers=headers)
            response.raise_for_status()

        for _ in range(WARMUP):
            await post()
        remaining = count

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await post()

        cpu = time.process_time()
        wall = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
    return count / wall, cpu * 1000 / count


def main() -> int:
    arguments = parse_arguments()
    harness.print_header("http client", [sys.executable, *sys.argv])
    workdir = Path(
        tempfile.mkdtemp(prefix="webpaas-bench-http-", dir=arguments.workdir)
    )
    results: dict[str, list[tuple[float, float]]] = {"httpx": [], "aiohttp": []}
    try:
        with harness.Receiver(workdir) as receiver:
            url = f"{receiver.url}/hook"
            for _ in range(arguments.rounds):
                # New transports each round, in alternation, so that neither
                # runs only on a warmer or quieter machine.
                for name in results:
                    transport = AiohttpTransport() if name == "aiohttp" else None
                    results[name].append(
                        uvloop.run(measure(transport, url, arguments.requests))
                    )
                receiver.reset()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"load: {arguments.requests} POSTs of 1.5 KB per run, "
        f"{CONCURRENCY} at once, {arguments.rounds} runs of each"
    )
    print()
    print(f"{'transport':<12}{'requests/s':>12}{'CPU ms/request':>16}")
    medians = {}
    for name, runs in results.items():
        rate = sorted(run[0] for run in runs)[len(runs) // 2]
        cpu = sorted(run[1] for run in runs)[len(runs) // 2]
        medians[name] = (rate, cpu)
        print(f"{name:<12}{rate:>12.0f}{cpu:>16.3f}")
    ratio = medians["httpx"][1] / medians["aiohttp"][1]
    print(f"CPU per request, httpx's transport / aiohttp's: {ratio:.1f}")
    print()
    # 1,000 deliveries per second leave the event loop 1 ms per delivery
    # for the request and everything else (docs/benchmarks.md, section 2).
    print(
        harness.verdict(
            "request CPU well under 1 ms",
            medians["aiohttp"][1] < 0.5,
            f"{medians['aiohttp'][1]:.3f} ms with aiohttp, "
            f"{medians['httpx'][1]:.3f} ms with httpx's transport",
        )
    )
    return 0


if __name__ == "__main__":
    harness.run_main(main)
