"""How many run+check calls per second the sandbox serves (run by hand, prints figures).

    python bench/sandbox_rps.py [--duration 6] [--concurrency 64] [--processes 2]
                                [--variant sync|async|both] [--server h11|hypercorn|both]

Starts ``lumozbatch sandbox`` in a subprocess on a free port, then hammers it from client
processes with 64 concurrent keep-alive httpx connections in all, in two variants:

- sync:  no latency, sync-threshold 1 s: every ``run`` answers with its output at once; each
         loop is one run + one check (completed).
- async: latency 50-150 ms, sync-threshold 0: ``run`` answers a request_id; the loop polls
         ``check`` every 20 ms until completed, so processing answers are exercised too.

Target: >= 1,000 run+check calls/s on a 2-core machine (client and server share the cores).
Besides calls/s it prints the server's CPU per call, which depends far less on what else runs
on the machine: 1e6 / (us per call) is what one core of server could serve.
Each client process spreads its connections over AsyncClients of 8: httpcore's pool scans
every connection for every request, which at 64 in one pool costs more than the server's whole
answer. Two client processes by default: one httpx process saturates its core (~900 calls/s
here) before the sandbox does (~40% of a core at that rate).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys

import httpx
import trio

KEY = "bench-key"
HEADERS = {"Authorization": f"Bearer {KEY}", "Accept": "application/json"}
VARIANTS = {
    "sync": ["--latency", "0-0", "--sync-threshold", "1"],
    "async": ["--latency", "0.05-0.15", "--sync-threshold", "0"],
}


async def hammer(base: str, concurrency: int, duration: float, poll: float) -> dict[str, int]:
    counts = {"run": 0, "check": 0, "errors": 0}
    per_client = 8
    clients = [
        httpx.AsyncClient(base_url=base, headers=HEADERS, timeout=30,
                          limits=httpx.Limits(max_connections=per_client,
                                              max_keepalive_connections=per_client))
        for _ in range(max(1, concurrency // per_client))
    ]
    start = trio.current_time()
    end = start + duration

    async def worker(client: httpx.AsyncClient, n: int) -> None:
        i = 0
        while trio.current_time() < end:
            i += 1
            try:
                r = await client.post("/api/v4/run", data={
                    "model_id": "hidream-l1", "prompt": f"bench {n} {i}"})
                counts["run"] += 1
                if r.status_code != 200:
                    counts["errors"] += 1
                    continue
                rid = r.json()["data"]["request_id"]
                while trio.current_time() < end + 5:
                    c = await client.post("/api/v4/check", data={"request_id": rid})
                    counts["check"] += 1
                    status = c.json().get("data", {}).get("status")
                    if c.status_code != 200 or status in ("completed", "failed"):
                        break
                    await trio.sleep(poll)
            except httpx.HTTPError:
                counts["errors"] += 1

    async with trio.open_nursery() as nursery:
        for n in range(concurrency):
            nursery.start_soon(worker, clients[n % len(clients)], n)
    counts["elapsed"] = trio.current_time() - start
    for client in clients:
        await client.aclose()
    return counts


def start_sandbox(extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lumozbatch", "sandbox", "--port", "0", "--api-key", KEY,
         "--rate-limit", "0", "--image-scale", "0.0625", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    m = re.search(r"(http://127\.0\.0\.1:\d+)", line)
    if not m:
        proc.kill()
        raise SystemExit(f"the sandbox did not start: {line!r}")
    return proc, m.group(1)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_variant(name: str, server: str, args: argparse.Namespace) -> None:
    proc, base = start_sandbox([*VARIANTS[name], "--server", server])
    try:
        per_proc = max(1, args.concurrency // args.processes)
        cpu0 = cpu_seconds(proc.pid)
        workers = [subprocess.Popen(
            [sys.executable, __file__, "--worker", base, "--concurrency", str(per_proc),
             "--duration", str(args.duration)], stdout=subprocess.PIPE, text=True)
            for _ in range(args.processes)]
        totals = {"run": 0, "check": 0, "errors": 0}
        elapsed = 0.0  # of the hammering itself, not of the client processes' start-up
        for w in workers:
            out, _ = w.communicate(timeout=args.duration + 60)
            result = json.loads(out)
            elapsed = max(elapsed, result.pop("elapsed"))
            for k, v in result.items():
                totals[k] += v
        server_cpu = cpu_seconds(proc.pid) - cpu0
        stats = httpx.get(f"{base}/_sandbox/stats", timeout=10).json()
    finally:
        proc.terminate()
        proc.wait(15)
    calls = totals["run"] + totals["check"]
    print(f"{server:9} {name:5}: {calls / elapsed:6.0f} calls/s, server CPU "
          f"{server_cpu / calls * 1e6:4.0f} us/call ({server_cpu / elapsed:.0%} of a core) | "
          f"{totals['run']} run + {totals['check']} check in {elapsed:.1f} s, {args.processes} client process(es) x "
          f"{per_proc} connections, errors {totals['errors']}, server counted "
          f"{sum(stats['calls'].values())} calls, peak concurrent {stats['peak_concurrent']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=6.0)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--variant", choices=[*VARIANTS, "both"], default="both")
    p.add_argument("--server", choices=["h11", "hypercorn", "both"], default="both")
    p.add_argument("--worker", metavar="BASE_URL", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        counts: dict[str, float] = trio.run(hammer, args.worker, args.concurrency,
                                            args.duration, 0.02)
        print(json.dumps(counts))
        return
    print(f"sandbox_rps: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} "
          f"(other work on the machine lowers every figure), {args.duration:g} s per variant")
    for server in ["h11", "hypercorn"] if args.server == "both" else [args.server]:
        for name in VARIANTS if args.variant == "both" else [args.variant]:
            run_variant(name, server, args)


if __name__ == "__main__":
    main()
