"""The LumozAI client against httpx.MockTransport: wire format, answers, error classes."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import trio

from lumozbatch.core.retry import Failure, decide_fetch
from lumozbatch.errors import ConfigError
from lumozbatch.shell.api import ApiCallError, LumozClient, form_fields, normalize_base_url
from lumozbatch.shell.ratelimit import SharedLimiter

BASE = "https://api.example.test"


def _headers(remaining: int = 59, limit: int = 60) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": "2000000005",
        "Date": "Wed, 18 May 2033 03:33:20 GMT",  # = 2000000000
    }


def _client(handler, key: str = "k-123") -> tuple[LumozClient, httpx.AsyncClient, SharedLimiter]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    limiter = SharedLimiter()
    return LumozClient(http, BASE, key, limiter), http, limiter


def _form(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(request.content.decode(), keep_blank_values=True)


async def test_run_sends_a_form_with_bearer_and_accept() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"success": True, "data": {"request_id": 212121212121212}}, headers=_headers()
        )

    client, http, _ = _client(handler)
    async with http:
        answer = await client.run("hidream-l1", {"prompt": "a tower", "guidance_scale": 7.5, "seed": 3})
    assert answer.request_id == 212121212121212
    assert answer.output is None
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == BASE + "/api/v4/run"
    assert request.headers["authorization"] == "Bearer k-123"
    assert request.headers["accept"] == "application/json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert _form(request) == {
        "model_id": ["hidream-l1"],
        "prompt": ["a tower"],
        "guidance_scale": ["7.5"],
        "seed": ["3"],
    }


async def test_run_with_output_is_a_synchronous_completion() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        data = {"request_id": 7, "output": "https://s.test/o/7.png", "output_type": "image"}
        return httpx.Response(200, json={"success": True, "data": data})

    client, http, _ = _client(handler)
    async with http:
        answer = await client.run("m", {"prompt": "x"})
    assert (answer.request_id, answer.output, answer.output_type) == (7, "https://s.test/o/7.png", "image")


async def test_output_without_request_id_is_still_a_result() -> None:
    # the model page's own example answer: {"success": true, "data": {"output": "..."}}
    body = {"success": True, "data": {"output": "https://s.test/o/image_12345.jpg"}}
    client, http, _ = _client(lambda r: httpx.Response(200, json=body))
    async with http:
        answer = await client.run("flux-sketch-smudge", {"prompt": "x"})
    assert (answer.request_id, answer.output) == (None, "https://s.test/o/image_12345.jpg")


@pytest.mark.parametrize("status", [201, 202])
async def test_any_2xx_run_answer_with_a_request_id_is_accepted(status: int) -> None:
    # A job the server created (and bills) must never be recorded as "refused, not billed":
    # that would drop its request_id and --retry-failed would pay for it again.
    body = {"success": True, "data": {"request_id": 42}}
    client, http, _ = _client(lambda r: httpx.Response(status, json=body))
    async with http:
        answer = await client.run("m", {"prompt": "x"})
        checked = await client.check(42) if status == 202 else None
    assert answer.request_id == 42
    assert checked is None or checked.request_id == 42


async def test_a_2xx_run_answer_without_a_body_is_ambiguous() -> None:
    client, http, _ = _client(lambda r: httpx.Response(204))
    async with http:
        with pytest.raises(ApiCallError) as info:
            await client.run("m", {"prompt": "x"})
        with pytest.raises(ApiCallError) as checked:
            await client.check(42)  # a lost answer: polled again, not a refusal
    assert info.value.failure is Failure.SENT_NO_ANSWER
    assert checked.value.failure is Failure.SENT_NO_ANSWER


async def test_success_without_request_id_or_output_is_ambiguous() -> None:
    client, http, _ = _client(lambda r: httpx.Response(200, json={"success": True, "data": {}}))
    async with http:
        with pytest.raises(ApiCallError) as info:
            await client.run("m", {"prompt": "x"})
    assert info.value.failure is Failure.SENT_NO_ANSWER


async def test_validation_error_carries_the_apis_words() -> None:
    body = {
        "success": False,
        "error": {
            "code": "validation_error",
            "message": "Invalid parameters provided",
            "details": {"guidance": ["The guidance must not be greater than 10."]},
        },
    }
    client, http, _ = _client(lambda r: httpx.Response(422, json=body))
    async with http:
        with pytest.raises(ApiCallError) as info:
            await client.run("flux-sketch-smudge", {"guidance": 11})
    err = info.value
    assert (err.failure, err.status, err.code) == (Failure.HTTP, 422, "validation_error")
    assert err.details == {"guidance": ["The guidance must not be greater than 10."]}
    assert "guidance: The guidance must not be greater than 10." in err.describe()


async def test_model_not_found_and_auth_failures_are_http_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "bad-key" in request.headers["authorization"]:
            return httpx.Response(401, json={"success": False, "error": {"code": "authentication_failed", "message": "Invalid or missing API key"}})
        return httpx.Response(404, json={"success": False, "error": {"code": "model_not_found", "message": "The requested model does not exist"}})

    client, http, _ = _client(handler)
    async with http:
        with pytest.raises(ApiCallError) as info:
            await client.run("nope", {})
    assert (info.value.status, info.value.code) == (404, "model_not_found")

    client, http, _ = _client(handler, key="bad-key")
    async with http:
        with pytest.raises(ApiCallError) as info:
            await client.check(1)
    assert (info.value.status, info.value.code) == (401, "authentication_failed")


async def test_connect_error_means_nothing_was_sent() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client, http, limiter = _client(handler)
    async with http:
        with pytest.raises(ApiCallError) as info:
            await client.run("m", {"prompt": "x"})
    assert info.value.failure is Failure.CONNECT
    assert limiter.core.snapshot(0.0).in_flight == 0


@pytest.mark.parametrize(
    "exc", [httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError]
)
async def test_lost_answers_are_sent_no_answer(exc: type[httpx.TransportError]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc("lost", request=request)

    client, http, limiter = _client(handler)
    async with http:
        with pytest.raises(ApiCallError) as info:
            await client.run("m", {"prompt": "x"})
    assert info.value.failure is Failure.SENT_NO_ANSWER
    assert limiter.core.snapshot(0.0).in_flight == 0


class _RawStream(httpx.AsyncByteStream):
    def __init__(self, data: bytes) -> None:
        self._data = data

    async def __aiter__(self):  # type: ignore[override]
        yield self._data


async def test_an_undecodable_run_answer_is_ambiguous_not_a_crash() -> None:
    # The server answered (and may have created the job) with a body httpx cannot decode:
    # that is a lost answer, not an exception that takes the whole run down.
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.dumps({"success": True, "data": {"request_id": 5}}).encode()
        return httpx.Response(200, headers={"Content-Encoding": "gzip", **_headers()}, stream=_RawStream(body))

    client, http, limiter = _client(handler)
    async with http:
        with pytest.raises(ApiCallError) as info:
            await client.run("m", {"prompt": "x"})
        with pytest.raises(ApiCallError) as checked:
            await client.check(5)
    assert info.value.failure is Failure.SENT_NO_ANSWER
    assert checked.value.failure is Failure.SENT_NO_ANSWER
    assert limiter.core.snapshot(0.0).in_flight == 0


async def test_unreadable_run_answer_is_ambiguous_not_an_error_status() -> None:
    client, http, _ = _client(lambda r: httpx.Response(200, text="<html>oops</html>"))
    async with http:
        with pytest.raises(ApiCallError) as info:
            await client.run("m", {"prompt": "x"})
    assert info.value.failure is Failure.SENT_NO_ANSWER
    assert info.value.status == 200


async def test_server_error_with_html_body() -> None:
    client, http, _ = _client(lambda r: httpx.Response(502, text="<html>bad gateway</html>"))
    async with http:
        with pytest.raises(ApiCallError) as info:
            await client.run("m", {"prompt": "x"})
    assert (info.value.failure, info.value.status) == (Failure.HTTP, 502)


async def test_check_statuses() -> None:
    answers = iter(
        [
            {"success": True, "data": {"request_id": 5, "status": "processing", "progress": 45}},
            {"success": True, "data": {"request_id": 5, "status": "queued"}},
            {"success": True, "data": {"request_id": 5, "status": "completed", "output": "https://s.test/5.webp", "output_type": "image"}},
            {"success": False, "data": {"request_id": 5, "status": "failed", "error": "Model execution failed due to invalid parameters"}},
        ]
    )
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=next(answers))

    client, http, _ = _client(handler)
    async with http:
        processing = await client.check(5)
        queued = await client.check(5)
        done = await client.check(5)
        failed = await client.check(5)
    assert (processing.status, processing.progress, processing.completed) == ("processing", 45.0, False)
    assert (queued.status, queued.completed, queued.failed) == ("queued", False, False)
    assert done.completed and done.output == "https://s.test/5.webp"
    assert failed.failed and failed.error == "Model execution failed due to invalid parameters"
    assert _form(seen[0]) == {"request_id": ["5"]}
    assert str(seen[0].url) == BASE + "/api/v4/check"


async def test_every_answer_feeds_the_shared_limiter() -> None:
    remaining = iter([10, 9])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={"success": True, "data": {"request_id": 1, "status": "processing"}},
            headers=_headers(remaining=next(remaining)),
        )

    client, http, limiter = _client(handler)
    async with http:
        await client.check(1)
        await client.check(1)
    assert limiter.responses == 2
    snap = limiter.core.snapshot(0.0)
    assert snap.limit == 60
    assert snap.remaining is not None and snap.remaining <= 9


def test_form_fields() -> None:
    fields = form_fields("m", {"a": True, "b": None, "c": [1, 2], "d": 0.25, "model_id": "x"})
    assert fields == {"model_id": "m", "a": "true", "c": ["1", "2"], "d": "0.25"}


def test_base_url_is_checked() -> None:
    assert normalize_base_url("https://lumozai.com/") == "https://lumozai.com"
    assert normalize_base_url("http://127.0.0.1:8123") == "http://127.0.0.1:8123"
    for bad in ("ftp://x", "lumozai.com", "http://"):
        with pytest.raises(ConfigError, match="invalid base URL"):
            normalize_base_url(bad)


def test_a_key_is_required() -> None:
    with pytest.raises(ConfigError, match="LUMOZ_API_KEY"):
        LumozClient(httpx.AsyncClient(), BASE, "", SharedLimiter())


def test_error_describe_is_one_line() -> None:
    err = ApiCallError(Failure.HTTP, status=403, code="permission_denied", message="no")
    assert err.describe() == "HTTP 403 permission_denied: no"
    assert json.dumps(str(err))


async def test_every_call_has_a_deadline(autojump_clock: Any) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await trio.sleep(10_000)  # a server that never finishes answering
        return httpx.Response(200)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    limiter = SharedLimiter()
    client = LumozClient(http, BASE, "k", limiter, deadline=30.0)
    start = trio.current_time()
    async with http:
        with pytest.raises(ApiCallError) as info:
            await client.run("m", {"prompt": "x"})
    assert trio.current_time() - start == 30.0
    assert info.value.failure is Failure.SENT_NO_ANSWER  # sent: the run may exist
    assert limiter.core.in_flight == 0


def test_form_fields_send_mappings_and_nested_lists_as_json_text() -> None:
    # An unknown model's free-form params: never Python's repr ({'a': 1}) on the wire.
    fields = form_fields("m", {"nested": {"a": 1, "b": [True, None]}, "grid": [[1, 2], [3]], "s": "x"})
    assert fields["nested"] == '{"a":1,"b":[true,null]}'
    assert fields["grid"] == "[[1,2],[3]]"
    assert fields["s"] == "x"
    assert form_fields("m", {"tags": ["a", 2, False]})["tags"] == ["a", "2", "false"]


async def test_a_check_answered_200_without_data_is_retried_not_failed() -> None:
    # A 200 that says success: false, with an error and no job status, tells nothing about the
    # (accepted, paid) job: ask again rather than fail it as billed.
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"success": False, "error": {"code": "server_busy", "message": "try again"}}
        return httpx.Response(200, json=body, headers=_headers())

    client, http, _ = _client(handler)
    async with http:
        with pytest.raises(ApiCallError) as info:
            await client.check(5)
    err = info.value
    assert err.describe() == "HTTP 200 server_busy: try again"
    assert decide_fetch(err.failure, err.status, 1, rand=0.0).action == "retry"
