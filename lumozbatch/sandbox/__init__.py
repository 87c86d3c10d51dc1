"""A LumozAI-compatible API server for tests, benchmarks and trying manifests for free.

Layers: ``config`` (knobs) and the pure parts (``params``, ``ratelimit``, ``jobs``,
``render``, ``stats``) under ``app`` (the raw ASGI apps), served by ``server`` on sockets
(its own h11 loop by default, or hypercorn) or by ``transport`` in-process (httpx);
``journal`` remembers created jobs across restarts.
"""

from lumozbatch.sandbox.app import DropConnection, ResetConnection, Sandbox, create_app
from lumozbatch.sandbox.config import (
    SandboxConfig,
    parse_latency,
    parse_rate_limit,
    parse_seconds_range,
)
from lumozbatch.sandbox.params import submission_key
from lumozbatch.sandbox.server import RunningSandbox, sandbox_transport, serve_sandbox
from lumozbatch.sandbox.stats import SandboxStats

__all__ = [
    "DropConnection",
    "ResetConnection",
    "RunningSandbox",
    "Sandbox",
    "SandboxConfig",
    "SandboxStats",
    "create_app",
    "parse_latency",
    "parse_rate_limit",
    "parse_seconds_range",
    "sandbox_transport",
    "serve_sandbox",
    "submission_key",
]
