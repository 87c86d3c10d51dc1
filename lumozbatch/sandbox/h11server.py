"""A small HTTP/1.1 server for the sandbox's ASGI apps: trio sockets + h11, one task per
connection, keep-alive, no framework.

Why not only hypercorn: per request it spawns a task, a channel and a cancel scope, which
costs about twice the CPU of this loop (bench/sandbox_rps.py: ~880 vs ~460 us of server CPU
per call), and the sandbox shares two cores with the client it is benchmarked against. This
loop also closes a connection mid-answer directly (``DropConnection``), where hypercorn needs
its internals reached. ``SandboxConfig.server = "hypercorn"`` still serves with hypercorn.

It serves exactly what the sandbox needs: bodies read whole (bounded: a declared
``Content-Length`` over the cap is refused 413 before any of the body is read, and a chunked
body is cut at the cap, so no more than ``max_body`` is ever buffered), answers sent as the app
gives them, ``Expect: 100-continue``, an idle timeout between requests, 400 for garbage.
``DropConnection`` closes the connection, ``ResetConnection`` resets it (RST). Any ASGI app
that reads its body from ``receive`` can be served: the webhook receiver of
``lumozbatch.shell.webhooks`` is the other one.
"""

from __future__ import annotations

import socket
import struct
import sys
import traceback
from http import HTTPStatus
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import h11
import trio

from lumozbatch.sandbox.wire import DropConnection, ResetConnection

__all__ = ["serve_h11"]

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
MAX_HEAD = 64 * 1024


class _Close(Exception):
    """End this connection now (after whatever was already sent)."""


class _Reset(_Close):
    """End this connection with a TCP reset."""


async def serve_h11(app: App, host: str, port: int, *, max_body: int, idle_timeout: float = 30.0,
                    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Serves ``app`` until cancelled; ``task_status.started`` gets ``http://host:port``."""
    listeners = await trio.open_tcp_listeners(port, host=host, backlog=1024)
    bound = listeners[0].socket.getsockname()
    handler = partial(_connection, app, (bound[0], bound[1]), max_body, idle_timeout)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(trio.serve_listeners, handler, listeners,
                                    handler_nursery=nursery))
        host = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        task_status.started(f"http://{host}:{bound[1]}")


async def _connection(app: App, server: tuple[str, int], max_body: int, idle_timeout: float,
                      stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    try:
        peer = stream.socket.getpeername()
        client = (peer[0], peer[1])
    except OSError:
        client = ("127.0.0.1", 0)
    try:
        while True:
            request, body = await _read_request(conn, stream, max_body, idle_timeout)
            if request is None:
                return
            await _answer(app, conn, stream, request, body, client, server)
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except _Reset:
        _abort(stream)
    except (_Close, trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
        return
    except h11.RemoteProtocolError as exc:
        await _refuse(conn, stream, exc.error_status_hint, "Bad Request")
    finally:
        await stream.aclose()


def _abort(stream: trio.SocketStream) -> None:
    """Linger 0: the close that follows sends RST instead of FIN."""
    try:
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass


async def _read_request(conn: h11.Connection, stream: trio.SocketStream, max_body: int,
                        idle_timeout: float) -> tuple[h11.Request | None, bytes]:
    request: h11.Request | None = None
    chunks: list[bytes] = []
    size = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            if request is not None and conn.they_are_waiting_for_100_continue:
                await stream.send_all(conn.send(h11.InformationalResponse(status_code=100,
                                                                          headers=[])))
            # Between requests a keep-alive connection may idle; a request in progress may not
            # stall forever either.
            with trio.move_on_after(idle_timeout) as scope:
                data = await stream.receive_some(65536)
            if scope.cancelled_caught:
                return None, b""
            conn.receive_data(data)
        elif isinstance(event, h11.Request):
            request = event
            if _declared_length(event) > max_body:
                await _refuse(conn, stream, 413, "Payload Too Large")
                raise _Close
        elif isinstance(event, h11.Data):
            size += len(event.data)
            if size > max_body:
                await _refuse(conn, stream, 413, "Payload Too Large")
                raise _Close
            chunks.append(event.data)
        elif isinstance(event, h11.EndOfMessage):
            return request, b"".join(chunks)
        else:  # ConnectionClosed, PAUSED after a close
            return None, b""


async def _answer(app: App, conn: h11.Connection, stream: trio.SocketStream,
                  request: h11.Request, body: bytes, client: tuple[str, int],
                  server: tuple[str, int]) -> None:
    path, _, query = request.target.partition(b"?")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": request.http_version.decode("ascii"),
        "method": request.method.decode("ascii"),
        "scheme": "http",
        "path": _unquote(path),
        "raw_path": path,
        "query_string": query,
        "root_path": "",
        "headers": list(request.headers),
        "client": client,
        "server": server,
        "extensions": {},
    }
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await trio.sleep_forever()  # the body is whole; nothing else will come
        raise AssertionError("unreachable")

    pending: list[bytes] = []
    started = False

    async def send(message: dict[str, Any]) -> None:
        nonlocal started
        if message["type"] == "http.response.start":
            started = True
            pending.append(conn.send(h11.Response(status_code=message["status"],
                                                  headers=message.get("headers", []),
                                                  reason=_reason(message["status"]))))
        elif message["type"] == "http.response.body":
            data = message.get("body", b"")
            if data and scope["method"] != "HEAD":
                pending.append(conn.send(h11.Data(data=data)))
            if not message.get("more_body", False):
                pending.append(conn.send(h11.EndOfMessage()))
            # one write per answer (head and body together) unless the app streams
            await stream.send_all(b"".join(pending))
            pending.clear()

    try:
        await app(scope, receive, send)
    except ResetConnection:
        raise _Reset from None
    except DropConnection:
        raise _Close from None
    except Exception:  # a sandbox bug: say it, and answer like a server would
        traceback.print_exc(file=sys.stderr)
        if not started:
            await _refuse(conn, stream, 500, "Internal Server Error")
        raise _Close from None
    if conn.our_state is h11.SEND_RESPONSE:  # the app answered nothing
        await _refuse(conn, stream, 500, "Internal Server Error")
        raise _Close


async def _refuse(conn: h11.Connection, stream: trio.SocketStream, status: int,
                  reason: str) -> None:
    if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    body = f"{reason}\n".encode()
    try:
        data = conn.send(h11.Response(status_code=status, reason=_reason(status), headers=[
            (b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]))
        data += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
        await stream.send_all(data)
    except (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
        pass


def _declared_length(request: h11.Request) -> int:
    for name, value in request.headers:
        if name == b"content-length":
            return int(value)  # h11 has checked that it is a number
    return 0


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def _unquote(path: bytes) -> str:
    from urllib.parse import unquote

    return unquote(path.decode("latin-1"))
