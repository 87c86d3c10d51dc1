"""Helpers for the sandbox tests (imported by name: pytest puts this folder on sys.path): an in-process sandbox on trio's clock and a client for it."""

from __future__ import annotations

from typing import Any

import httpx
import trio

from lumozbatch.sandbox import Sandbox, SandboxConfig, create_app, sandbox_transport

#: Unix time at trio's clock 0 in these tests: a multiple of 60, so windows start on it.
EPOCH = 1_700_000_040.0
KEY = "sandbox-key"
AUTH = {"Authorization": f"Bearer {KEY}", "Accept": "application/json"}


def make_sandbox(**knobs: Any) -> Sandbox:
    """A sandbox whose clocks both follow trio's (virtual) clock."""
    knobs.setdefault("latency", (0.0, 0.0))
    return create_app(
        SandboxConfig(**knobs),
        clock=trio.current_time,
        wall_clock=lambda: EPOCH + trio.current_time(),
    )


def client_for(sandbox: Sandbox, **kw: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=sandbox_transport(sandbox), base_url=sandbox.base_url,
                             headers=AUTH, **kw)
