"""A LumozAI batch client as a user would write it without lumozbatch (the benchmark's baseline).

A semaphore bounds the jobs in flight; each job POSTs ``run``, polls ``check`` every second,
sleeps one second on a 429, and downloads the output. No ledger, no rate-limit headers, no
backoff: the straightforward script. Run by ``bench/runner_bench.py``; usable alone:

    python bench/naive_client.py BASE_URL KEY N [CONCURRENCY]
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class NaiveResult:
    makespan: float = 0.0
    done: int = 0
    failed: int = 0
    rate_limited: int = 0
    checks: int = 0
    runs: int = 0
    errors: list[str] = field(default_factory=list)


async def _post(client: httpx.AsyncClient, url: str, data: dict[str, Any], result: NaiveResult) -> dict[str, Any]:
    while True:
        response = await client.post(url, data=data)
        if response.status_code == 429:
            result.rate_limited += 1
            await asyncio.sleep(1.0)
            continue
        return response.json()


async def _job(client: httpx.AsyncClient, base: str, params: dict[str, Any], sem: asyncio.Semaphore, result: NaiveResult) -> None:
    async with sem:
        result.runs += 1
        body = await _post(client, base + "/api/v4/run", params, result)
        data = body.get("data") or {}
        if not body.get("success"):
            result.failed += 1
            return
        output = data.get("output")
        while not output:
            await asyncio.sleep(1.0)
            result.checks += 1
            body = await _post(client, base + "/api/v4/check", {"request_id": data["request_id"]}, result)
            state = body.get("data") or {}
            if state.get("status") == "failed":
                result.failed += 1
                return
            output = state.get("output") if state.get("status") == "completed" else None
        image = await client.get(output)
        if image.status_code == 200 and image.content:
            result.done += 1
        else:
            result.failed += 1


def job_params(i: int, tag: str = "naive") -> dict[str, Any]:
    return {
        "model_id": "flux-sketch-smudge",
        "prompt": f"Sketch Smudge, benchmark {tag} {i}",
        "aspect_ratio": "1:1",
        "seed": str(i),
        "output_format": "png",
    }


async def run_naive(base_url: str, key: str, jobs: list[dict[str, Any]], concurrency: int) -> NaiveResult:
    result = NaiveResult()
    sem = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    limits = httpx.Limits(max_connections=concurrency + 8)
    start = time.monotonic()
    async with httpx.AsyncClient(headers=headers, timeout=60, limits=limits) as client:
        await asyncio.gather(*(_job(client, base_url, params, sem, result) for params in jobs))
    result.makespan = time.monotonic() - start
    return result


def main() -> None:
    base, key, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    concurrency = int(sys.argv[4]) if len(sys.argv) > 4 else 64
    result = asyncio.run(run_naive(base, key, [job_params(i) for i in range(count)], concurrency))
    print(result)


if __name__ == "__main__":
    main()
