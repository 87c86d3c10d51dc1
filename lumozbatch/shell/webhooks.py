"""The webhook receiver that runs inside ``apply``, and the per-batch secret behind its URLs.

    async with trio.open_nursery() as nursery:
        receiver = await nursery.start(serve_receiver, secret, record, "127.0.0.1", 0)
        ...  # runs carry core.webhook.hook_url(public_url, secret, identity, attempt)
        nursery.cancel_scope.cancel()  # the socket is closed, the port free again

It serves on the sandbox's own h11 loop (``lumozbatch.sandbox.h11server``): ``POST`` only, a
body of at most ``core.webhook.MAX_BODY_BYTES`` (a larger declared ``Content-Length`` is
refused before its body is read; a chunked one is cut at the cap), the path checked by HMAC
(``core.webhook.verify_hook_path``), the body read by ``core.webhook.parse_delivery``. Only then
is the injected ``record(delivery) -> Verdict`` awaited -- where the runner decides
(``core.webhook.decide``) and records durably -- and its verdict answered: ``2xx`` only after
``record`` returned an accepting verdict; ``4xx`` for everything refused, without calling it.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trio

from lumozbatch.core.webhook import (
    MAX_BODY_BYTES,
    MIN_SECRET_BYTES,
    Action,
    Delivery,
    Verdict,
    parse_delivery,
    verify_hook_path,
)
from lumozbatch.errors import ConfigError
from lumozbatch.sandbox.h11server import serve_h11
from lumozbatch.sandbox.wire import BodyError, Receive, Scope, Send, header, read_body, send_json

__all__ = [
    "SECRET_FILE",
    "ReceiverStats",
    "Record",
    "RunningReceiver",
    "answer_json",
    "load_or_create_secret",
    "parse_listen",
    "receiver_app",
    "serve_receiver",
    "url_path_prefix",
]

log = logging.getLogger(__name__)

#: In the batch's state folder (``<out>/.lumozbatch/``), mode 0600.
SECRET_FILE = "webhook-secret"

#: What the runner injects: decide, record durably, return the verdict to answer.
Record = Callable[[Delivery], Awaitable[Verdict]]


@dataclass
class ReceiverStats:
    """Answers given, by status and by ``Action`` value."""

    statuses: Counter[int] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)

    def count(self, status: int, action: str) -> None:
        self.statuses[status] += 1
        self.actions[action] += 1


@dataclass(frozen=True, slots=True)
class RunningReceiver:
    """A bound receiver: what ``nursery.start(serve_receiver, ...)`` returns."""

    url: str  # http://host:port actually bound (port 0 -> the one picked)
    host: str
    port: int
    stats: ReceiverStats


def parse_listen(text: str, default_port: int) -> tuple[str, int]:
    """``--webhook-listen``: ``HOST:PORT``, ``HOST``, ``:PORT`` or ``[V6]:PORT``; the host
    defaults to 127.0.0.1 and the port to ``default_port``."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ConfigError(f"--webhook-listen {text!r} is not [HOST]:PORT")
        port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:  # a name, an IPv4 address, or a bare IPv6 address
        host, port = text, ""
    if port and not (port.isascii() and port.isdigit() and int(port) <= 65535):
        raise ConfigError(f"--webhook-listen {text!r}: the port must be 0-65535")
    return host or "127.0.0.1", int(port) if port else default_port


def url_path_prefix(public_url: str) -> str:
    """The ``--webhook-url``'s own path, which a proxy in front may pass on or strip."""
    return urlsplit(public_url).path.rstrip("/")


def load_or_create_secret(state_dir: Path) -> bytes:
    """The batch's webhook secret: ``state_dir/webhook-secret``, created once with mode 0600
    from ``secrets.token_bytes(32)``, read back on every later run. Never printed."""
    path = state_dir / SECRET_FILE
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(path)
    try:
        os.write(fd, secrets.token_bytes(MIN_SECRET_BYTES))
        os.fsync(fd)  # the URLs of runs already sent depend on it
    finally:
        os.close(fd)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & 0o077:
        raise ConfigError(f"{path} is readable by others (mode {mode & 0o777:o}); "
                          "it must be 0600 (chmod 600 it, or delete it before any webhook run)")
    data = path.read_bytes()
    if len(data) < MIN_SECRET_BYTES:
        raise ConfigError(f"{path} holds no usable webhook secret",
                          details=["delete it only if no run of this batch is in flight"])
    return data


def answer_json(verdict: Verdict) -> dict[str, Any]:
    """What the receiver answers: ``{"ok": bool, "result": action, "reason": text}``."""
    return {"ok": verdict.accepted, "result": verdict.action.value, "reason": verdict.reason}


def receiver_app(secret: bytes, record: Record, *, prefix: str = "",
                 stats: ReceiverStats | None = None) -> Callable[..., Awaitable[None]]:
    """The receiver as an ASGI app (``serve_receiver`` serves it; tests may call it)."""
    counters = stats if stats is not None else ReceiverStats()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        verdict = await _handle(scope, receive, secret, record, prefix)
        counters.count(verdict.status, verdict.action.value)
        extra = [(b"allow", b"POST")] if verdict.action is Action.METHOD else []
        await send_json(send, verdict.status, answer_json(verdict), extra)

    return app


async def _handle(scope: Scope, receive: Receive, secret: bytes, record: Record,
                  prefix: str) -> Verdict:
    try:
        body = await read_body(receive, MAX_BODY_BYTES)
    except BodyError:
        return Verdict(Action.TOO_LARGE, f"the body is over {MAX_BODY_BYTES} bytes")
    if scope["method"] != "POST":
        return Verdict(Action.METHOD, "POST only")
    if scope.get("query_string"):  # an added query alters the URL: it is not ours
        return Verdict(Action.UNKNOWN_JOB, "no such hook")
    target = verify_hook_path(secret, bytes(scope["raw_path"]).decode("latin-1"), prefix)
    if isinstance(target, Verdict):
        return target
    delivery = parse_delivery(body, header(scope, b"content-type"))
    if isinstance(delivery, Verdict):
        return delivery
    try:
        return await record(replace(delivery, target=target))
    except Exception:  # not recorded: the sender must try again, the receiver must go on
        log.exception("recording a webhook delivery failed")
        return Verdict(Action.NOT_RECORDED, "the delivery could not be recorded")


async def serve_receiver(secret: bytes, record: Record, host: str = "127.0.0.1", port: int = 0,
                         *, prefix: str = "", idle_timeout: float = 30.0,
                         task_status: trio.TaskStatus[RunningReceiver] = trio.TASK_STATUS_IGNORED,
                         ) -> None:
    """Serves the receiver until cancelled; ``nursery.start`` returns a ``RunningReceiver`` once
    the socket is bound. Cancelling closes the listening socket and every connection."""
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError("the webhook secret is too short")
    stats = ReceiverStats()
    app = receiver_app(secret, record, prefix=prefix, stats=stats)
    serve: Any = partial(serve_h11, app, host, port, max_body=MAX_BODY_BYTES,
                         idle_timeout=idle_timeout)
    async with trio.open_nursery() as nursery:
        url: str = await nursery.start(serve)
        bound = urlsplit(url)
        task_status.started(RunningReceiver(url, bound.hostname or host, bound.port or port,
                                            stats))
