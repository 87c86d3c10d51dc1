"""The sandbox over real sockets: started in-process with ``serve_sandbox`` from inside a trio
run (as ``apply --sandbox`` does), and as the ``lumozbatch sandbox`` command in a subprocess,
driven like the pages' curl examples."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from PIL import Image

from lumozbatch.sandbox import SandboxConfig, serve_sandbox
from lumozbatch.sandbox.jobs import JobStore

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": "Bearer sandbox-key", "Accept": "application/json"}
SUNSET = {"model_id": "hidream-l1", "prompt": "A beautiful sunset over mountains"}


SERVERS = pytest.mark.parametrize("server", ["h11", "hypercorn"])


@SERVERS
async def test_serve_sandbox_inside_a_trio_run_with_two_origins(server: str) -> None:
    cfg = SandboxConfig(port=0, storage_port=0, latency=(0.3, 0.3), sync_threshold=0.0,
                        image_scale=0.125, server=server)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            running = await nursery.start(serve_sandbox, cfg)
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+", running.base_url)
            assert running.storage_url != running.base_url
            assert running.api_key == "sandbox-key"
            async with httpx.AsyncClient(base_url=running.base_url, headers=AUTH) as c:
                r = await c.post("/api/v4/run", data=SUNSET)
                assert r.status_code == 200 and set(r.json()["data"]) == {"request_id"}
                assert r.headers["x-ratelimit-remaining"] == "599"
                assert r.headers["date"].endswith(" GMT")
                rid = r.json()["data"]["request_id"]
                await trio.sleep(0.35)
                done = (await c.post("/api/v4/check", data={"request_id": rid})).json()
                assert done["data"]["status"] == "completed"
                url = done["data"]["output"]
                assert url.startswith(running.storage_url + "/storage/outputs/")
            async with httpx.AsyncClient() as plain:  # no key to the storage origin
                img = await plain.get(url)
            assert img.status_code == 200
            with Image.open(io.BytesIO(img.content)) as pic:
                assert (pic.format, pic.size) == ("JPEG", (128, 128))
            assert running.stats.calls["storage"] == 1
            assert not running.stats.storage_saw_authorization
            assert running.stats.submissions_for("hidream-l1", SUNSET) == 1
            nursery.cancel_scope.cancel()


@SERVERS
async def test_drops_and_truncation_close_the_real_connection(server: str) -> None:
    cfg = SandboxConfig(port=0, latency=(0.0, 0.0), image_scale=0.25, server=server)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            running = await nursery.start(serve_sandbox, cfg)
            sb = running.sandbox
            async with httpx.AsyncClient(base_url=running.base_url, headers=AUTH) as c:
                url = (await c.post("/api/v4/run", data=SUNSET)).json()["data"]["output"]
                sb.config.drop_rate = 1.0
                with pytest.raises(httpx.RemoteProtocolError):
                    await c.post("/api/v4/run", data={**SUNSET, "prompt": "dropped"})
                with pytest.raises(httpx.RemoteProtocolError):
                    await c.post("/api/v4/check", data={"request_id": "1"})
                sb.config.drop_rate = 0.0
                sb.config.truncate_rate = 1.0
                got = b""
                async with c.stream("GET", url) as r:
                    assert r.status_code == 200
                    length = int(r.headers["content-length"])
                    with pytest.raises(httpx.RemoteProtocolError):
                        async for chunk in r.aiter_raw():
                            got += chunk
                assert 0 < len(got) < length
                sb.config.truncate_rate = 0.0
                # the server survived all of it
                ok = await c.post("/api/v4/run", data={**SUNSET, "prompt": "after"})
                assert ok.status_code == 200
            assert sb.stats.drops == {"run": 1, "check": 1}
            assert sb.stats.submissions_for("hidream-l1", {**SUNSET, "prompt": "dropped"}) == 1
            assert sb.stats.truncated == 1
            nursery.cancel_scope.cancel()


async def test_webhook_reaches_a_real_receiver() -> None:
    got: list[dict] = []
    arrived = trio.Event()

    async def receiver(scope, receive, send) -> None:  # a minimal ASGI app
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        got.append(json.loads(body))
        arrived.set()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    hc = HypercornConfig()
    hc.bind = ["127.0.0.1:0"]
    hc.accesslog = hc.errorlog = None
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(lambda task_status: serve(
                receiver, hc, task_status=task_status, mode="asgi"))
            running = await nursery.start(serve_sandbox,
                                          SandboxConfig(port=0, latency=(0.2, 0.2)))
            async with httpx.AsyncClient(base_url=running.base_url, headers=AUTH) as c:
                r = await c.post("/api/v4/run",
                                 data={**SUNSET, "webhook": f"{binds[0]}/hook"})
            await arrived.wait()
            assert got[0]["data"]["request_id"] == r.json()["data"]["request_id"]
            assert got[0]["data"]["status"] == "completed"
            await trio.sleep(0.05)
            assert running.stats.webhooks_sent == 1
            nursery.cancel_scope.cancel()


#: Under this seed and latency range, the command's first job takes ~28 s and its second ~1.6 s
#: (asserted below from the sandbox's own job store): the first is certainly still
#: "processing" however loaded the machine, and the second completes soon.
PROCESS_LATENCY, PROCESS_SEED = (0.5, 30.0), 10


def test_the_seeded_latencies_the_command_test_relies_on() -> None:
    store = JobStore(SandboxConfig(latency=PROCESS_LATENCY, seed=PROCESS_SEED))
    first, second = (store.create("k", "hidream-l1", {"prompt": "x"}, 0.0) for _ in range(2))
    assert first.latency > 25 and second.latency < 2


@pytest.fixture(params=["h11", "hypercorn"])
def sandbox_process(request) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``lumozbatch sandbox --port 0`` in a subprocess; yields it and its base URL."""
    lo, hi = PROCESS_LATENCY
    proc = subprocess.Popen(
        ["lumozbatch", "sandbox", "--port", "0", "--server", request.param, "--latency",
         f"{lo}-{hi}", "--sync-threshold", "0.1", "--image-scale", "0.125", "--rate-limit",
         "50/60", "--seed", str(PROCESS_SEED)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("LUMOZ")},
    )
    try:
        line = proc.stdout.readline()  # the banner comes once the socket is bound
        m = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        assert m, f"no URL in the banner: {line!r}"
        assert "key sandbox-key" in line and "rate-limit=50/60s" in line
        yield proc, m.group(1)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_the_pages_curl_examples_against_the_command(sandbox_process) -> None:
    proc, base = sandbox_process
    with httpx.Client(base_url=base, headers=AUTH, timeout=10) as c:
        # Authentication example
        r = c.post("/api/v4/run", data=SUNSET)
        assert r.status_code == 200 and r.json()["success"] is True
        assert r.headers["x-ratelimit-limit"] == "50"
        assert r.headers["x-ratelimit-remaining"] == "49"
        assert int(r.headers["x-ratelimit-reset"]) % 60 == 0
        assert abs(int(r.headers["x-ratelimit-reset"]) - time.time()) <= 61
        rid = r.json()["data"]["request_id"]
        # Run example with hidream-l1's parameters
        r2 = c.post("/api/v4/run", data={**SUNSET, "negative_prompt": "blurry, low quality",
                                         "guidance_scale": "7.5", "num_inference_steps": "30"})
        assert r2.status_code == 200
        rid2 = r2.json()["data"]["request_id"]
        # Check example: the first job (~28 s) is still processing
        chk = c.post("/api/v4/check", data={"request_id": str(rid)})
        assert chk.json()["data"]["status"] == "processing"
        assert 0 <= chk.json()["data"]["progress"] <= 99
        # the second (~1.6 s) completes
        deadline = time.monotonic() + 20
        chk = c.post("/api/v4/check", data={"request_id": str(rid2)})
        while chk.json()["data"]["status"] != "completed" and time.monotonic() < deadline:
            time.sleep(0.1)
            chk = c.post("/api/v4/check", data={"request_id": str(rid2)})
        assert chk.json()["data"]["status"] == "completed"
        img = httpx.get(chk.json()["data"]["output"], timeout=10)
        with Image.open(io.BytesIO(img.content)) as pic:
            assert (pic.format, pic.size) == ("JPEG", (128, 128))
        # the error page's example
        bad = c.post("/api/v4/run", data={"prompt": "x"})
        assert bad.status_code == 422
        assert bad.json()["error"]["details"] == {"model_id": ["The model_id field is required."]}
        stats = httpx.get(f"{base}/_sandbox/stats", timeout=10).json()
        assert stats["calls"]["run"] == 3 and stats["total_submissions"] == 2
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode in (0, 130)
    assert "Traceback" not in err and "sandbox stopped" in err


def test_sigterm_stops_the_command_cleanly(sandbox_process) -> None:
    proc, _ = sandbox_process
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0 and "Traceback" not in err


def test_port_in_use_is_a_clear_error() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "lumozbatch", "sandbox", "--port", str(port)],
                              capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert f"Error: cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


async def _raw_exchange(port: int, data: bytes, *, expect_100: bytes | None = None) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        if expect_100 is not None:
            interim = await stream.receive_some(1024)
            assert interim.startswith(b"HTTP/1.1 100 ")
            await stream.send_all(expect_100)
        got = b""
        with trio.move_on_after(5):
            while chunk := await stream.receive_some(65536):
                got += chunk
                if b"\r\n\r\n" in got and got.split(b"\r\n\r\n", 1)[1].endswith((b"}", b"\n")):
                    break
        return got


@SERVERS
async def test_protocol_edges_expect_continue_garbage_and_large_bodies(server: str) -> None:
    cfg = SandboxConfig(port=0, latency=(0.6, 0.6), server=server, max_body_bytes=4096)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            running = await nursery.start(serve_sandbox, cfg)
            port = int(running.base_url.rsplit(":", 1)[1])
            body = ("model_id=hidream-l1&prompt=" + "x" * 2000).encode()
            head = (f"POST /api/v4/run HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sandbox-key\r\n"
                    f"Content-Type: application/x-www-form-urlencoded\r\n"
                    f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n").encode()
            answer = await _raw_exchange(port, head, expect_100=body)
            assert answer.startswith(b"HTTP/1.1 200 ")
            assert b'"request_id":' in answer
            garbage = await _raw_exchange(port, b"NOT HTTP AT ALL\r\n\r\n")
            assert garbage.startswith(b"HTTP/1.1 400 ")
            big = b"model_id=hidream-l1&prompt=" + b"y" * 5000
            too_big = await _raw_exchange(port, (
                f"POST /api/v4/run HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sandbox-key\r\n"
                f"Content-Length: {len(big)}\r\n\r\n").encode() + big)
            assert too_big.split(b" ", 2)[1] == b"413"
            assert running.stats.jobs_created == 1
            async with httpx.AsyncClient() as c:  # HEAD on storage: headers, no body
                await trio.sleep(0.6)
                done = await c.post(f"{running.base_url}/api/v4/check", headers=AUTH,
                                    data={"request_id": answer.split(b'"request_id":')[1]
                                          .split(b"}")[0].decode()})
                head_answer = await c.head(done.json()["data"]["output"])
                assert head_answer.status_code == 200
                assert int(head_answer.headers["content-length"]) > 0
                assert head_answer.content == b""
            nursery.cancel_scope.cancel()
