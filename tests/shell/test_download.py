"""Downloads: streamed to a temp file, verified, renamed; never carry the API key."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import httpx
import pytest
import trio
from PIL import Image

from lumozbatch.core.retry import Failure
from lumozbatch.core.images import image_kind
from lumozbatch.core.retry import decide_fetch
from lumozbatch.shell.download import DownloadError, download, ends_complete


def _png(size: tuple[int, int] = (8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


def _webp() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 90, 0)).save(buf, format="WEBP")
    return buf.getvalue()


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 0, 90)).save(buf, format="JPEG")
    return buf.getvalue()


def _client(handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.part"))


def test_image_kind_knows_the_three_formats() -> None:
    assert image_kind(_png()) == "png"
    assert image_kind(_jpeg()) == "jpeg"
    assert image_kind(_webp()) == "webp"
    assert image_kind(b"<html>nope</html>") is None
    assert image_kind(b"RIFF\x00\x00\x00\x00WAVE") is None
    assert image_kind(b"RIFF") is None


async def test_download_verifies_renames_and_never_sends_the_key(tmp_path: Path) -> None:
    body = _png()
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=body, headers={"Content-Type": "image/png"})

    async with _client(handler) as http:
        got = await download(http, "http://storage.test/o/x.jpg", tmp_path, "portraits/a-b")
    # The extension comes from the bytes, not from the URL's ".jpg".
    assert got.rel == "portraits/a-b.png"
    assert got.path == tmp_path / "portraits" / "a-b.png"
    assert got.path.read_bytes() == body
    assert got.sha256 == hashlib.sha256(body).hexdigest()
    assert got.bytes == len(body)
    assert len(seen) == 1
    assert "authorization" not in {k.lower() for k in seen[0].headers}
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("maker,ext", [(_jpeg, ".jpg"), (_webp, ".webp")])
async def test_download_extension_follows_the_image_type(tmp_path: Path, maker, ext: str) -> None:
    body = maker()
    async with _client(lambda r: httpx.Response(200, content=body)) as http:
        got = await download(http, "http://storage.test/o/x", tmp_path, "one")
    assert got.rel == "one" + ext


async def test_truncated_download_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    body = _png()

    def handler(request: httpx.Request) -> httpx.Response:
        # The server promises the whole file but sends only half of it.
        return httpx.Response(
            200, headers={"Content-Length": str(len(body))}, stream=httpx.ByteStream(body[: len(body) // 2])
        )

    async with _client(handler) as http:
        with pytest.raises(DownloadError) as info:
            await download(http, "http://storage.test/o/x.png", tmp_path, "a")
    assert info.value.failure is Failure.SENT_NO_ANSWER
    assert "truncated" in info.value.message
    assert list(tmp_path.iterdir()) == []


def test_ends_complete_tells_whole_png_and_webp_from_cut_ones() -> None:
    for data, ext in ((_png((40, 40)), ".png"), (_webp(), ".webp")):
        assert ends_complete(ext, data[:16], data[-12:], len(data))
        cut = data[: len(data) - 5]
        assert not ends_complete(ext, cut[:16], cut[-12:], len(cut))
    jpeg = _jpeg()
    assert ends_complete(".jpg", jpeg[:16], jpeg[-12:], len(jpeg) - 3)  # JPEG is not judged


@pytest.mark.parametrize("make", [_png, _webp], ids=["png", "webp"])
async def test_a_cut_body_without_content_length_is_refused(tmp_path: Path, make) -> None:
    body = make()

    def handler(request: httpx.Request) -> httpx.Response:
        # A close-delimited answer that stops early: no Content-Length to compare with.
        return httpx.Response(200, stream=httpx.ByteStream(body[: len(body) - 7]))

    async with _client(handler) as http:
        with pytest.raises(DownloadError) as info:
            await download(http, "http://storage.test/o/x", tmp_path, "a")
    assert info.value.failure is Failure.SENT_NO_ANSWER  # retried, not failed
    assert "ends early" in info.value.message
    assert list(tmp_path.iterdir()) == []


async def test_not_an_image_is_refused(tmp_path: Path) -> None:
    async with _client(lambda r: httpx.Response(200, content=b"<html>login</html>")) as http:
        with pytest.raises(DownloadError) as info:
            await download(http, "http://storage.test/o/x.png", tmp_path, "a")
    assert "not a PNG, JPEG or WebP" in info.value.message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("status", [404, 410])
async def test_expired_url_is_flagged_for_refresh(tmp_path: Path, status: int) -> None:
    async with _client(lambda r: httpx.Response(status)) as http:
        with pytest.raises(DownloadError) as info:
            await download(http, "http://storage.test/o/x.png", tmp_path, "a")
    assert decide_fetch(info.value.failure, info.value.status, 1, rand=0.0, endpoint="download").action == "refresh"
    assert info.value.status == status


async def test_server_error_is_not_expired(tmp_path: Path) -> None:
    async with _client(lambda r: httpx.Response(503)) as http:
        with pytest.raises(DownloadError) as info:
            await download(http, "http://storage.test/o/x.png", tmp_path, "a")
    assert decide_fetch(info.value.failure, info.value.status, 1, rand=0.0, endpoint="download").action == "retry"
    assert info.value.status == 503


async def test_network_error_is_a_retryable_failure(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset", request=request)

    async with _client(handler) as http:
        with pytest.raises(DownloadError) as info:
            await download(http, "http://storage.test/o/x.png", tmp_path, "a")
    assert info.value.failure is Failure.SENT_NO_ANSWER
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("stem", ["../escape", "/abs/path", "a/../../b"])
async def test_names_cannot_leave_the_output_folder(tmp_path: Path, stem: str) -> None:
    calls = []
    async with _client(lambda r: calls.append(r) or httpx.Response(200, content=_png())) as http:
        with pytest.raises(DownloadError, match="would leave the output folder"):
            await download(http, "http://storage.test/o/x.png", tmp_path / "out", stem)
    assert calls == []


async def test_embed_runs_before_hashing(tmp_path: Path) -> None:
    body = _png()
    embedded: list[Path] = []

    def embed(tmp: Path) -> None:
        assert tmp.name.endswith(".part")  # still the temporary file, not yet in place
        embedded.append(tmp)
        with open(tmp, "ab") as fh:
            fh.write(b"meta")

    async with _client(lambda r: httpx.Response(200, content=body)) as http:
        got = await download(http, "http://storage.test/o/x.png", tmp_path, "a", embed=embed)
    final = got.path.read_bytes()
    assert final == body + b"meta"
    assert got.sha256 == hashlib.sha256(final).hexdigest()
    assert got.bytes == len(final)
    assert len(embedded) == 1


async def test_cancelled_download_leaves_no_temp_file(tmp_path: Path, autojump_clock: trio.abc.Clock) -> None:
    body = _png()

    class SlowStream(httpx.AsyncByteStream):
        async def __aiter__(self):
            yield body[:10]
            await trio.sleep(100)
            yield body[10:]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": str(len(body))}, stream=SlowStream())

    async with _client(handler) as http:
        with trio.move_on_after(1):
            await download(http, "http://storage.test/o/x.png", tmp_path, "a")
    assert list(tmp_path.iterdir()) == []


async def test_redownload_replaces_the_file_in_place(tmp_path: Path) -> None:
    body = _png()
    async with _client(lambda r: httpx.Response(200, content=body)) as http:
        first = await download(http, "http://storage.test/o/x.png", tmp_path, "a")
        second = await download(http, "http://storage.test/o/x.png", tmp_path, "a")
    assert first.path == second.path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


async def test_a_trickling_download_hits_its_deadline(tmp_path: Path, autojump_clock: trio.abc.Clock) -> None:
    body = _png()

    class Trickle(httpx.AsyncByteStream):
        async def __aiter__(self):
            for i in range(len(body)):
                await trio.sleep(5)  # each read well within any read timeout
                yield body[i : i + 1]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": str(len(body))}, stream=Trickle())

    start = trio.current_time()
    async with _client(handler) as http:
        with pytest.raises(DownloadError, match="longer than 60s") as info:
            await download(http, "http://storage.test/o/x.png", tmp_path, "a", deadline=60)
    assert trio.current_time() - start == 60
    assert info.value.failure is Failure.SENT_NO_ANSWER  # retried by the runner
    assert list(tmp_path.iterdir()) == []


async def test_large_bodies_spill_to_the_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os as _os

    from lumozbatch.shell import download as module

    monkeypatch.setattr(module, "_SPILL", 1024)
    buf = io.BytesIO()
    Image.frombytes("RGB", (64, 64), _os.urandom(64 * 64 * 3)).save(buf, format="PNG")
    body = buf.getvalue()
    assert len(body) > 4 * 1024

    async with _client(lambda r: httpx.Response(200, content=body)) as http:
        got = await download(http, "http://storage.test/o/x.png", tmp_path, "big")
    assert got.path.read_bytes() == body
    assert got.sha256 == hashlib.sha256(body).hexdigest()
    assert _leftovers(tmp_path) == []


class _RawStream(httpx.AsyncByteStream):
    """A body as it came off the wire (httpx decodes it while reading, not here)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def __aiter__(self):  # type: ignore[override]
        yield self._data


async def test_a_redirect_loop_is_a_retryable_download_error(tmp_path: Path) -> None:
    # A storage host stuck in a redirect loop must not escape as httpx.TooManyRedirects:
    # that would crash the whole run (and every resume) over one paid output.
    async with _client(lambda r: httpx.Response(302, headers={"Location": str(r.url)})) as http:
        with pytest.raises(DownloadError) as info:
            await download(http, "http://storage.test/o/x.png", tmp_path, "a")
    assert info.value.failure is Failure.SENT_NO_ANSWER and not info.value.permanent
    assert _leftovers(tmp_path) == []


async def test_an_undecodable_body_is_a_retryable_download_error(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, stream=_RawStream(_png()))

    async with _client(handler) as http:
        with pytest.raises(DownloadError) as info:
            await download(http, "http://storage.test/o/x.png", tmp_path, "a")
    assert info.value.failure is Failure.SENT_NO_ANSWER and not info.value.permanent
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("url", ["http://[::1/x.png", "http://exa\x00mple.test/x.png"])
async def test_an_unusable_output_url_is_a_download_error(tmp_path: Path, url: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("an unusable URL is never requested")

    async with _client(handler) as http:
        with pytest.raises(DownloadError) as info:
            await download(http, url, tmp_path, "a")
    assert info.value.permanent
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ConnectTimeout])
async def test_a_host_that_does_not_answer_asks_for_a_fresh_url(tmp_path: Path, error: type[Exception]) -> None:
    # Connection refused, a DNS failure, a host that never accepts: the stored URL points at a
    # storage host that is gone; retrying it cannot help, /check may give a URL that works.
    def handler(request: httpx.Request) -> httpx.Response:
        raise error("[Errno 111] Connection refused", request=request)

    async with _client(handler) as http:
        with pytest.raises(DownloadError) as info:
            await download(http, "http://storage.test/o/x.png", tmp_path, "a")
    assert info.value.failure is Failure.CONNECT
    assert decide_fetch(info.value.failure, info.value.status, 1, rand=0.0, endpoint="download").action == "refresh"
    assert list(tmp_path.iterdir()) == []


async def test_a_refused_connection_on_a_real_socket_is_a_connect_failure(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with httpx.AsyncClient() as http:
        with pytest.raises(DownloadError) as info:
            await download(http, f"http://127.0.0.1:{port}/o/x.png", tmp_path, "a")
    assert info.value.failure is Failure.CONNECT
