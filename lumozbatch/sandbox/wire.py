"""Raw ASGI plumbing for the sandbox: read a request body, parse its fields, send an answer.

No framework: the sandbox answers two endpoints and serves files, and a framework's routing and
request objects cost more per call than the whole endpoint (see bench/sandbox_rps.py).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from email.parser import BytesParser
from email.policy import HTTP
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl

__all__ = [
    "BodyError",
    "DropConnection",
    "Receive",
    "ResetConnection",
    "Scope",
    "Send",
    "header",
    "http_date",
    "parse_fields",
    "read_body",
    "send_bytes",
    "send_json",
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]


class BodyError(Exception):
    """The request body cannot be read as fields (bad JSON, bad multipart, too large)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class DropConnection(Exception):
    """Raised by the app: close the connection now, without (finishing) the answer.

    The socket server closes the TCP connection; ``sandbox_transport`` raises
    ``httpx.RemoteProtocolError`` as a client facing a closed connection would see it.
    """


class ResetConnection(DropConnection):
    """Like ``DropConnection``, but as a TCP reset (RST): the client reads "connection reset by
    peer" (``httpx.ReadError``). Servers that cannot reset close the connection instead."""


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (``name`` lower-case), decoded as latin-1."""
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


_date_cache: tuple[int, bytes] = (-1, b"")


def http_date(unix: float) -> bytes:
    """RFC 9110 IMF-fixdate, cached per second (it is on every answer)."""
    global _date_cache
    second = int(unix)
    if _date_cache[0] != second:
        _date_cache = (second, formatdate(second, usegmt=True).encode("ascii"))
    return _date_cache[1]


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyError(f"The request body is larger than {limit} bytes.", status=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def parse_fields(content_type: str | None, body: bytes, query: bytes) -> dict[str, Any]:
    """Fields of a form-encoded, multipart or JSON body; query-string fields first, the body's
    win (as PHP merges them). A repeated form field keeps its last value, as PHP does."""
    fields: dict[str, Any] = {}
    if query:
        fields.update(parse_qsl(query.decode("latin-1"), keep_blank_values=True))
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if not body.strip():
        return fields
    if kind == "application/json" or kind.endswith("+json"):
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BodyError(f"The request body is not valid JSON: {exc}.") from None
        if not isinstance(data, dict):
            raise BodyError("The request body must be a JSON object of fields.")
        fields.update(data)
    elif kind == "multipart/form-data":
        fields.update(_multipart(content_type or "", body))
    else:  # form-encoded, also when the client sent no Content-Type (curl -d sends one)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BodyError("The request body is not UTF-8 form data.") from None
        fields.update(parse_qsl(text, keep_blank_values=True))
    return fields


def _multipart(content_type: str, body: bytes) -> dict[str, str]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise BodyError("The multipart request body has no parts (is the boundary right?).")
    out: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        charset = part.get_content_charset() or "utf-8"
        out[str(name)] = payload.decode(charset, errors="replace")
    return out


async def send_bytes(send: Send, status: int, body: bytes, headers: Headers,
                     *, head_only: bool = False) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [*headers, (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": b"" if head_only else body})


async def send_json(send: Send, status: int, payload: Any, headers: Headers) -> None:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    await send_bytes(send, status, body, [(b"content-type", b"application/json"), *headers])
