"""The sandbox on real sockets (the h11 loop of ``h11server`` by default, or hypercorn's trio
worker), or in-process through an httpx transport.

    async with trio.open_nursery() as nursery:
        running = await nursery.start(serve_sandbox, SandboxConfig(port=0))
        ...  # running.base_url, running.storage_url, running.api_key, running.stats
        nursery.cancel_scope.cancel()
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed
from hypercorn.trio import serve

from lumozbatch.sandbox.app import DropConnection, Sandbox, create_app
from lumozbatch.sandbox.config import SandboxConfig
from lumozbatch.sandbox.h11server import serve_h11
from lumozbatch.sandbox.stats import SandboxStats
from lumozbatch.sandbox.transport import SandboxTransport
from lumozbatch.sandbox.wire import Receive, Scope, Send

__all__ = ["RunningSandbox", "sandbox_transport", "serve_sandbox"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunningSandbox:
    """A sandbox bound to its sockets: what ``nursery.start(serve_sandbox, ...)`` returns."""

    base_url: str
    storage_url: str
    api_key: str
    stats: SandboxStats
    sandbox: Sandbox


def sandbox_transport(sandbox: Sandbox | RunningSandbox) -> httpx.AsyncBaseTransport:
    """An httpx transport serving both of the sandbox's origins in-process (no socket)."""
    if isinstance(sandbox, RunningSandbox):
        sandbox = sandbox.sandbox
    return SandboxTransport(sandbox)


async def _abort_connection(send: Send) -> None:
    """Closes the client's TCP connection without a (complete) answer.

    ASGI has no "abort" message, and hypercorn answers 500 to an app that fails before its
    answer starts, so we reach the connection through the ``send`` callable hypercorn gave us:
    HTTPStream.app_send -> H11Protocol.stream_send -> TCPServer.protocol_send(Closed()).
    """
    try:
        protocol = send.__self__.send.__self__  # type: ignore[attr-defined]
        await protocol.send(Closed())
    except AttributeError:  # another server or hypercorn version: the closest we can do
        log.warning("cannot abort the connection with this server; answering 500 instead")
        raise DropConnection("abort not supported") from None


def _socket_app(app: Any) -> Any:
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await app(scope, receive, send)
        except DropConnection:
            await _abort_connection(send)

    return wrapped


def _hypercorn_config(host: str, port: int) -> HypercornConfig:
    cfg = HypercornConfig()
    cfg.bind = [f"{host}:{port}"]
    cfg.accesslog = None
    cfg.errorlog = None  # the app catches and prints its own errors
    cfg.include_date_header = False  # the app sends Date from its own (injectable) clock
    cfg.graceful_timeout = 1.0
    cfg.keep_alive_timeout = 30.0
    cfg.keep_alive_max_requests = 1_000_000  # a benchmark client reuses its connections
    cfg.backlog = 1024
    return cfg


async def _serve_hypercorn(app: Any, host: str, port: int,
                           task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    class _Status:  # hypercorn reports the bound addresses; we pass on the first
        def started(self, binds: list[str] | None = None) -> None:
            task_status.started((binds or [""])[0])

    await serve(_socket_app(app), _hypercorn_config(host, port), task_status=_Status(),
                mode="asgi")


async def serve_sandbox(config: SandboxConfig, *, sandbox: Sandbox | None = None,
                        task_status: trio.TaskStatus[RunningSandbox] = trio.TASK_STATUS_IGNORED,
                        ) -> None:
    """Serves the sandbox until cancelled; ``nursery.start`` returns a ``RunningSandbox`` once
    the sockets are bound (port 0 => a free port). Pass ``sandbox`` to serve an existing one."""
    sb = sandbox or create_app(config)
    try:
        await _serve(sb, config, task_status)
    finally:
        if sb.journal is not None:
            sb.journal.close()


async def _serve(sb: Sandbox, config: SandboxConfig, task_status: trio.TaskStatus[RunningSandbox]) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(sb.run_background)
        if config.server == "hypercorn":
            serve_one: Any = _serve_hypercorn
        else:
            serve_one = partial(serve_h11, max_body=config.max_body_bytes)
        base = await nursery.start(serve_one, sb.api, config.host, config.port)
        sb.base_url = base
        sb.storage_url = base
        if config.storage_port is not None:
            sb.storage_url = await nursery.start(serve_one, sb.storage, config.host,
                                                 config.storage_port)
        task_status.started(RunningSandbox(sb.base_url, sb.storage_url, config.api_keys[0],
                                           sb.stats, sb))
