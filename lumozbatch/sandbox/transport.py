"""An httpx transport that runs the sandbox's ASGI apps in-process (no socket), routing the API
origin and the storage origin to the right app, and turning the app's dropped connections
and cut-short downloads into the errors a client on a real socket would get."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from lumozbatch.sandbox.app import Sandbox
from lumozbatch.sandbox.wire import DropConnection, ResetConnection

__all__ = ["SandboxTransport"]


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme or "http"
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


class _CutShort(httpx.AsyncByteStream):
    """Yields what the app sent, then fails as httpx does when the peer closes mid-body."""

    def __init__(self, chunks: list[bytes], expected: int | None) -> None:
        self._chunks = chunks
        self._expected = expected

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        for chunk in self._chunks:
            received += len(chunk)
            yield chunk
        raise httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body "
            f"(received {received} bytes, expected {self._expected})"
        )


class SandboxTransport(httpx.AsyncBaseTransport):
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def _app_for(self, url: httpx.URL) -> Any:
        target = (url.scheme, (url.host or "").lower(), url.port or (443 if url.scheme == "https" else 80))
        sb = self.sandbox
        if sb.separate_storage and target == _origin(sb.storage_url):
            return sb.storage
        if target == _origin(sb.base_url):
            return sb.api
        return None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        app = self._app_for(request.url)
        if app is None:
            raise httpx.ConnectError(f"nothing listens at {request.url.host}:{request.url.port}",
                                     request=request)
        body = await request.aread()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?", 1)[0],
            "query_string": request.url.query,
            "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "client": ("127.0.0.1", 50000),
            "server": (request.url.host, request.url.port),
            "extensions": {},
        }
        sent_request = False

        async def receive() -> dict[str, Any]:
            nonlocal sent_request
            if not sent_request:
                sent_request = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        start: dict[str, Any] | None = None
        chunks: list[bytes] = []

        async def send(message: dict[str, Any]) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))

        try:
            await app(scope, receive, send)
        except ResetConnection:
            raise httpx.ReadError("[Errno 104] Connection reset by peer", request=request) from None
        except DropConnection:
            if start is None:
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                ) from None
            length = dict(start["headers"]).get(b"content-length")
            return httpx.Response(
                start["status"], headers=start["headers"],
                stream=_CutShort(chunks, int(length) if length else None), request=request,
            )
        if start is None:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.",
                                            request=request)
        return httpx.Response(start["status"], headers=start["headers"],
                              stream=httpx.ByteStream(b"".join(chunks)), request=request)
