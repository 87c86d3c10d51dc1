"""ShardedTransport: requests spread over pools by load, counts released with the body."""

from __future__ import annotations

import httpx
import pytest
import trio

from lumozbatch.shell.transport import ShardedTransport, shard_count


def test_shard_count_fits_eight_connections_a_pool() -> None:
    assert [shard_count(n) for n in (1, 8, 9, 64, 65)] == [1, 1, 2, 8, 9]


def _recording(shards: int) -> tuple[ShardedTransport, list[int]]:
    transport = ShardedTransport(shards)
    hits: list[int] = []

    def pool(i: int) -> httpx.MockTransport:
        async def body():  # a body still to be read, as a real connection has
            yield b"x" * 10

        def handler(request: httpx.Request) -> httpx.Response:
            hits.append(i)
            return httpx.Response(200, content=body())

        return httpx.MockTransport(handler)

    transport._pools = [pool(i) for i in range(shards)]  # type: ignore[assignment]
    return transport, hits


async def test_open_bodies_keep_their_pool_busy_and_closing_frees_it() -> None:
    transport, hits = _recording(3)
    async with httpx.AsyncClient(transport=transport) as client:
        streams = []
        for _ in range(3):
            streams.append(await client.send(client.build_request("GET", "http://x/"), stream=True))
        assert hits == [0, 1, 2]  # each open body holds its pool; the next goes elsewhere
        await streams[1].aread()
        await streams[1].aclose()
        await client.get("http://x/")
        assert hits[-1] == 1  # the freed pool is the least busy
        for s in streams:
            await s.aclose()
        assert transport._busy == [0, 0, 0]


async def test_an_answer_read_in_full_by_the_pool_frees_it_at_once() -> None:
    transport = ShardedTransport(2)
    transport._pools = [httpx.MockTransport(lambda r: httpx.Response(200, content=b"done"))] * 2  # type: ignore[assignment]
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.send(client.build_request("GET", "http://x/"), stream=True)
        assert transport._busy == [0, 0]
        await response.aclose()


async def test_a_failed_request_releases_its_pool() -> None:
    transport = ShardedTransport(2)

    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    transport._pools = [httpx.MockTransport(boom), httpx.MockTransport(boom)]  # type: ignore[assignment]
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(3):
            with pytest.raises(httpx.ConnectError):
                await client.get("http://x/")
    assert transport._busy == [0, 0]


async def test_real_sockets_through_the_sandbox() -> None:
    from lumozbatch.sandbox.config import SandboxConfig
    from lumozbatch.sandbox.server import serve_sandbox

    async with trio.open_nursery() as nursery:
        running = await nursery.start(serve_sandbox, SandboxConfig(port=0, latency=(0.0, 0.0), image_scale=0.05))
        transport = ShardedTransport(2, trust_env=False)
        async with httpx.AsyncClient(transport=transport, trust_env=False) as client:
            headers = {"Authorization": f"Bearer {running.api_key}", "Accept": "application/json"}

            async def one(i: int) -> None:
                r = await client.post(
                    running.base_url + "/api/v4/run",
                    data={"model_id": "hidream-l1", "prompt": f"p{i}"},
                    headers=headers,
                )
                assert r.status_code == 200 and r.json()["success"] is True

            async with trio.open_nursery() as inner:
                for i in range(20):
                    inner.start_soon(one, i)
        assert transport._busy == [0, 0]
        nursery.cancel_scope.cancel()
