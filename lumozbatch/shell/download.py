"""Fetch one output file: stream to a temporary file beside the target, verify, fsync, rename.

The storage host is not the API: no ``Authorization`` header is ever sent here (the request
is built from scratch, and the shared client carries no default auth). A file is renamed
into place only when its size matches ``Content-Length``, its first bytes are a PNG, JPEG
or WebP image and (PNG, WebP) its last bytes say it is whole; the extension comes from those
bytes (:func:`lumozbatch.core.images.image_kind`), not from the URL. ``404``/``410`` mean
the signed URL expired: the caller asks ``/check`` for a fresh one.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import httpx
import trio

from lumozbatch.core.images import EXTENSIONS, image_kind
from lumozbatch.core.retry import Failure

__all__ = [
    "DOWNLOAD_DEADLINE",
    "DOWNLOAD_TIMEOUT",
    "DownloadError",
    "Downloaded",
    "download",
    "ends_complete",
]

DOWNLOAD_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=30.0, pool=10.0)
#: A whole download (a trickling server never times out a single read).
DOWNLOAD_DEADLINE = 600.0
#: Refuse anything bigger: an image generator's output is never this large.
MAX_BYTES = 256 * 1024 * 1024
_CHUNK = 64 * 1024
_SPILL = 8 * 1024 * 1024  # bytes kept in memory before writing to the temporary file


@dataclass(frozen=True, slots=True)
class Downloaded:
    """A verified file in place: ``path`` absolute, ``rel`` relative to the output folder."""

    path: Path
    rel: str
    sha256: str
    bytes: int
    ext: str


class DownloadError(Exception):
    """The file could not be fetched or failed verification (nothing was renamed into place).

    ``failure``/``status`` feed ``core.retry.decide_fetch`` (which, for instance, asks
    ``/check`` for a fresh URL after a 404/410).
    """

    def __init__(
        self, failure: Failure, message: str, *, status: int | None = None, permanent: bool = False
    ) -> None:
        super().__init__(message)
        self.failure = failure
        self.status = status
        self.message = message
        self.permanent = permanent  # trying again cannot help (a bad name, an absurd size)



_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def ends_complete(ext: str, head: bytes, tail: bytes, size: int) -> bool:
    """Whether a PNG or WebP file of ``size`` bytes is whole, from its first and last bytes:
    a body cut short without a Content-Length to betray it (a close-delimited answer) must
    not be saved as done. PNG ends with its IEND chunk; WebP's RIFF header gives its length.
    JPEG may legally carry bytes after its end marker, so it is not judged here."""
    if ext == ".png":
        return tail.endswith(_PNG_END)
    if ext == ".webp":
        riff = int.from_bytes(head[4:8], "little")
        return size in (8 + riff, 8 + riff + (riff & 1))  # a chunk of odd length is padded
    return True


def safe_target(out_dir: Path, stem: str) -> Path:
    """``out_dir/stem`` with no way out of ``out_dir`` (absolute paths, ``..``, empty parts).

    A lexical check, no filesystem calls: the names come from the planner's templates, and
    a folder the user symlinked inside the output folder is theirs to choose.
    """
    rel = PurePosixPath(stem)
    if not stem or rel.is_absolute() or any(p in ("..", ".", "") for p in stem.split("/")):
        raise ValueError(f"output name {stem!r} would leave the output folder")
    return out_dir.joinpath(*rel.parts)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _finish(body: _Body, final: Path, embed: Callable[[Path], object] | None) -> tuple[str, int]:
    """Write what is buffered, embed metadata, hash the final bytes, fsync, rename, fsync the
    folder (in a thread)."""
    tmp = body.tmp
    body.flush_and_close()
    if embed is not None:
        embed(tmp)
    digest = hashlib.sha256()
    size = 0
    with open(tmp, "rb+") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    return digest.hexdigest(), size


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


async def download(
    http: httpx.AsyncClient,
    url: str,
    out_dir: Path,
    stem: str,
    *,
    timeout: httpx.Timeout = DOWNLOAD_TIMEOUT,
    deadline: float = DOWNLOAD_DEADLINE,
    embed: Callable[[Path], object] | None = None,
) -> Downloaded:
    """Fetch ``url`` into ``out_dir/stem.<ext>``; raise ``DownloadError`` on any problem.

    ``embed(tmp_path)`` may rewrite the temporary file (provenance metadata) before it is
    hashed, fsynced and renamed, so the recorded sha256 is that of the file on disk.
    """
    try:
        target = safe_target(out_dir, stem)
    except ValueError as exc:
        raise DownloadError(Failure.HTTP, str(exc), permanent=True) from None
    await trio.to_thread.run_sync(lambda: target.parent.mkdir(parents=True, exist_ok=True))
    body = _Body(target.parent / f".{target.name}.{secrets.token_hex(4)}.part")
    try:
        # The network part alone runs under the deadline: file work happens after it (or, for
        # a huge file, in a few large writes), so the deadline measures the server.
        with trio.move_on_after(deadline) as limit:
            ext = await _fetch(http, url, body, timeout)
        if limit.cancelled_caught:
            raise DownloadError(Failure.SENT_NO_ANSWER, f"download took longer than {deadline:.0f}s")
        final = target.with_name(target.name + ext)
        # Shielded: once the bytes are here, a cancel must not leave the rename half done.
        with trio.CancelScope(shield=True):
            sha, size = await trio.to_thread.run_sync(_finish, body, final, embed)
    except BaseException:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(body.discard)
        raise
    rel = final.relative_to(out_dir).as_posix()
    return Downloaded(path=final, rel=rel, sha256=sha, bytes=size, ext=ext)


async def _fetch(http: httpx.AsyncClient, url: str, body: _Body, timeout: httpx.Timeout) -> str:
    # A fresh header set: never the API key (storage is another origin; even if it were not,
    # a presigned URL needs no credentials).
    headers = {"Accept": "image/*"}
    try:
        async with http.stream(
            "GET", url, headers=headers, timeout=timeout, follow_redirects=True
        ) as response:
            if response.status_code != 200:
                raise DownloadError(
                    Failure.HTTP,
                    f"storage answered HTTP {response.status_code} for {url}",
                    status=response.status_code,
                )
            expected = _content_length(response.headers)
            if expected is not None and expected > MAX_BYTES:
                raise DownloadError(Failure.HTTP, f"output is too large ({expected} bytes)", permanent=True)
            async for chunk in response.aiter_bytes(_CHUNK):
                await body.add(chunk)
            received, head, tail = body.received, body.head, body.tail
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        # refused, unknown host, never accepting: that host no longer serves this URL
        raise DownloadError(Failure.CONNECT, f"{type(exc).__name__}: {exc}") from exc
    except (httpx.TransportError, httpx.TooManyRedirects, httpx.DecodingError) as exc:
        # a network error, a redirect loop, a body that does not decode: maybe not next time
        raise DownloadError(Failure.SENT_NO_ANSWER, f"{type(exc).__name__}: {exc}") from exc
    except (httpx.InvalidURL, UnicodeError) as exc:
        # a URL that cannot be requested at all (raised before anything is sent)
        raise DownloadError(
            Failure.HTTP, f"unusable output URL {url!r}: {type(exc).__name__}: {exc}", permanent=True
        ) from exc
    if expected is not None and received != expected:
        # A cut connection: the server promised more bytes than came. Retry.
        raise DownloadError(
            Failure.SENT_NO_ANSWER,
            f"truncated download: {received} of {expected} bytes",
        )
    kind = image_kind(head)
    if kind is None:
        raise DownloadError(
            Failure.SENT_NO_ANSWER,
            f"downloaded {received} bytes that are not a PNG, JPEG or WebP image",
        )
    ext = EXTENSIONS[kind]
    if not ends_complete(ext, head, tail, received):
        raise DownloadError(Failure.SENT_NO_ANSWER, f"truncated download: the {ext[1:]} image ends early")
    return ext


def _content_length(headers: httpx.Headers) -> int | None:
    value = headers.get("content-length")
    if value is None or headers.get("content-encoding", "identity") != "identity":
        return None  # a compressed body's decoded length differs from Content-Length
    try:
        return int(value)
    except ValueError:
        return None


class _Body:
    """The bytes of one download: kept in memory (no thread hop per chunk for small images),
    spilled to the temporary file in large writes once they pass ``_SPILL``."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.received = 0
        self.head = b""
        self.tail = b""  # the last bytes seen, to tell a whole image from a cut one
        self._buffer = bytearray()
        self._file: BinaryIO | None = None

    async def add(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > MAX_BYTES:
            raise DownloadError(Failure.HTTP, "output is too large", permanent=True)
        if len(self.head) < 16:
            self.head = (self.head + chunk)[:16]
        self.tail = (self.tail + chunk)[-12:]
        self._buffer += chunk
        if len(self._buffer) >= _SPILL:
            if self._file is None:
                self._file = await trio.to_thread.run_sync(open, self.tmp, "wb")
            data, self._buffer = bytes(self._buffer), bytearray()
            await trio.to_thread.run_sync(self._file.write, data)

    def flush_and_close(self) -> None:
        """Write what is left to the temporary file and close it (blocking: in a thread)."""
        fh = self._file if self._file is not None else open(self.tmp, "wb")
        self._file = None
        with fh:
            fh.write(self._buffer)
        self._buffer = bytearray()

    def discard(self) -> None:
        """Close and delete the temporary file, if any (blocking: in a thread)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        _unlink(self.tmp)
