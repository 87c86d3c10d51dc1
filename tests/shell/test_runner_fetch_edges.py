"""The run loop at the edges of #12 that are decided outside it: a dead output host, and a
200 ``/check`` that says nothing about the job (``core.retry``, ``shell.download``, ``shell.api``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from lumozbatch.shell.runner import run_batch
from lumozbatch.shell.store import MemoryStore
from tests.shell.test_runner import Rig, planned, spec


async def test_an_output_host_that_refuses_connections_is_refreshed_not_retried_forever(
    tmp_path: Path, autojump_clock: Any
) -> None:
    rig = Rig(tmp_path, latency=(0.5, 1.0))
    inner = rig.transport
    refused: list[str] = []
    moved: list[bool] = []

    class HostGone(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            # the stored URL's host is gone until /check is asked again (the provider would
            # then hand out a URL on a host that answers)
            if request.url.path.endswith("/check") and refused:
                moved.append(True)
            if "/storage/" in request.url.path and not moved:
                refused.append(str(request.url))
                raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
            return await inner.handle_async_request(request)

    rig.transport = HostGone()
    ledger = MemoryStore(planned([spec(1)]))
    outcome = await run_batch(rig.runner(ledger))
    assert outcome.exit_code == 0
    assert len(refused) == 1  # not retried: the next download used what /check answered
    assert rig.stats.calls["run"] == 1


async def test_a_check_answered_200_without_data_is_asked_again(tmp_path: Path, autojump_clock: Any) -> None:
    rig = Rig(tmp_path, latency=(2.0, 3.0))
    inner = rig.transport
    odd: list[int] = []

    class BusyOnce(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/check") and not odd:
                odd.append(1)
                body = {"success": False, "error": {"code": "server_busy", "message": "try again"}}
                return httpx.Response(200, json=body)
            return await inner.handle_async_request(request)

    rig.transport = BusyOnce()
    ledger = MemoryStore(planned([spec(1)]))
    outcome = await run_batch(rig.runner(ledger))
    assert odd == [1]
    assert outcome.exit_code == 0  # not failed as billed
    assert rig.stats.calls["run"] == 1
