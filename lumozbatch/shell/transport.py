"""An httpx transport that spreads requests over several small connection pools.

httpcore's pool matches every queued request against every connection on each change, so its
cost per request grows with the square of the connections in use: at 64 concurrent requests one
pool spends more CPU on bookkeeping than on HTTP. Several pools of a few connections each keep
that cost flat; each request goes to the pool with the fewest requests in flight.
"""

from __future__ import annotations

import httpx

__all__ = ["ShardedTransport", "shard_count"]

CONNECTIONS_PER_SHARD = 8


def shard_count(concurrency: int) -> int:
    """Pools needed so that ``concurrency`` requests in flight fit at 8 connections a pool."""
    return max(1, -(-concurrency // CONNECTIONS_PER_SHARD))


class ShardedTransport(httpx.AsyncBaseTransport):
    """``shards`` independent ``httpx.AsyncHTTPTransport`` pools behind one transport."""

    def __init__(self, shards: int, *, trust_env: bool = True) -> None:
        if shards < 1:
            raise ValueError("shards must be at least 1")
        limits = httpx.Limits(
            max_connections=CONNECTIONS_PER_SHARD, max_keepalive_connections=CONNECTIONS_PER_SHARD
        )
        # One TLS context for all pools: building one reads the CA bundle (~25 ms each).
        tls = httpx.create_ssl_context(trust_env=trust_env)
        self._pools = [
            httpx.AsyncHTTPTransport(verify=tls, limits=limits, trust_env=trust_env) for _ in range(shards)
        ]
        self._busy = [0] * shards

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = min(range(len(self._pools)), key=self._busy.__getitem__)
        self._busy[index] += 1
        try:
            response = await self._pools[index].handle_async_request(request)
        except BaseException:
            self._busy[index] -= 1
            raise
        if response.is_closed:  # nothing left to read: the connection is free already
            self._busy[index] -= 1
        else:
            # The pool's connection stays taken until the body is read or closed.
            response.stream = _Released(response.stream, self._busy, index)
        return response

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


class _Released(httpx.AsyncByteStream):
    """Wraps a response body so the shard's in-flight count drops when the body is closed."""

    def __init__(self, stream: httpx.AsyncByteStream, busy: list[int], index: int) -> None:
        self._stream = stream
        self._busy = busy
        self._index = index
        self._open = True

    def _release(self) -> None:
        if self._open:
            self._open = False
            self._busy[self._index] -= 1

    async def __aiter__(self):  # type: ignore[override]
        async for chunk in self._stream:
            yield chunk
        self._release()

    async def aclose(self) -> None:
        self._release()
        await self._stream.aclose()
