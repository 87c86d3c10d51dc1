"""Every documented answer of the seed pages, in-process through ``sandbox_transport`` on trio's
virtual clock (exact times, no sleeping)."""

from __future__ import annotations

import io
import json
from functools import partial
from email.utils import parsedate_to_datetime

import httpx
import pytest
import trio
from PIL import Image

from lumozbatch.sandbox import sandbox_transport
from sandbox_helpers import EPOCH, client_for, make_sandbox

FLUX = "flux-sketch-smudge"
SUNSET = {"model_id": "hidream-l1", "prompt": "A beautiful sunset over mountains"}
# the flux page's PHP example, as a form post
FLUX_EXAMPLE = {
    "model_id": FLUX, "prompt": "Sketch Smudge, a detailed sketch of a womans face",
    "aspect_ratio": "1:1", "prompt_strength": "0.8", "num_inference_steps": "28",
    "guidance": "3", "seed": "", "output_format": "webp", "output_quality": "80",
    "lora_scale": "1", "megapixels": "1",
}


def assert_rate_headers(r: httpx.Response) -> None:
    for name in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"):
        assert r.headers[name].isdigit(), name
    assert parsedate_to_datetime(r.headers["date"]).timestamp() == pytest.approx(
        EPOCH + trio.current_time(), abs=1)


def assert_error(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"success", "error"} and body["success"] is False
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code and body["error"]["message"]
    assert_rate_headers(r)
    return body["error"]


async def test_quick_run_answers_with_its_output_like_the_page(autojump_clock) -> None:
    sb = make_sandbox(latency=(0.2, 0.2), image_scale=0.125)
    async with client_for(sb) as c:
        r = await c.post("/api/v4/run", data=SUNSET)
        assert trio.current_time() == 0.2  # the run call waited for the job
    assert r.status_code == 200
    assert_rate_headers(r)
    body = r.json()
    assert body["success"] is True and set(body["data"]) == {"request_id", "output", "output_type"}
    rid = body["data"]["request_id"]
    assert isinstance(rid, int) and len(str(rid)) == 15
    assert body["data"]["output_type"] == "image"
    assert body["data"]["output"].startswith(f"{sb.storage_url}/storage/outputs/image_")
    assert body["data"]["output"].endswith(".jpg")  # hidream-l1 outputs jpg


async def test_slow_run_then_check_processing_progress_completed(autojump_clock) -> None:
    sb = make_sandbox(latency=(4.0, 4.0), image_scale=0.125)
    async with client_for(sb) as c:
        r = await c.post("/api/v4/run", data=FLUX_EXAMPLE)
        assert r.json() == {"success": True, "data": {"request_id": r.json()["data"]["request_id"]}}
        rid = r.json()["data"]["request_id"]
        seen = []
        for at in (1.0, 1.8, 3.96):
            await trio.sleep_until(at)
            chk = await c.post("/api/v4/check", data={"request_id": str(rid)})
            assert chk.status_code == 200
            assert_rate_headers(chk)
            data = chk.json()["data"]
            assert chk.json()["success"] is True
            assert set(data) == {"request_id", "status", "progress"}
            assert data["status"] == "processing" and data["request_id"] == rid
            seen.append(data["progress"])
        assert seen == [25, 45, 99]
        await trio.sleep_until(4.0)
        done = await c.post("/api/v4/check", data={"request_id": rid})
        assert done.json() == {"success": True, "data": {
            "request_id": rid, "status": "completed",
            "output": done.json()["data"]["output"], "output_type": "image"}}
        url = done.json()["data"]["output"]
        assert url.endswith(".webp")
        img = await c.get(url)
        assert img.status_code == 200 and img.headers["content-type"] == "image/webp"
        assert int(img.headers["content-length"]) == len(img.content)
        with Image.open(io.BytesIO(img.content)) as pic:
            assert (pic.format, pic.size) == ("WEBP", (128, 128))
        again = await c.post("/api/v4/check", data={"request_id": rid})
        assert again.json()["data"]["output"] == url  # stable until it expires


async def test_failed_job_answers_like_the_page(autojump_clock) -> None:
    sb = make_sandbox(latency=(1.0, 1.0), fail_rate=1.0)
    async with client_for(sb) as c:
        rid = (await c.post("/api/v4/run", data=SUNSET)).json()["data"]["request_id"]
        await trio.sleep(1.0)
        r = await c.post("/api/v4/check", data={"request_id": rid})
    assert r.status_code == 200
    assert r.json() == {"success": False, "data": {
        "request_id": rid, "status": "failed",
        "error": "Model execution failed due to invalid parameters"}}
    assert sb.stats.jobs_failed == 1


async def test_quick_failing_job_gives_only_its_request_id(autojump_clock) -> None:
    sb = make_sandbox(latency=(0.0, 0.0), fail_rate=1.0)
    async with client_for(sb) as c:
        r = await c.post("/api/v4/run", data=SUNSET)
        assert set(r.json()["data"]) == {"request_id"}
        chk = await c.post("/api/v4/check", data={"request_id": r.json()["data"]["request_id"]})
        assert chk.json()["data"]["status"] == "failed"


async def test_fail_rate_is_deterministic_from_the_seed(autojump_clock) -> None:
    async def outcomes(seed: int) -> list[bool]:
        sb = make_sandbox(fail_rate=0.5, seed=seed, latency=(1.0, 1.0))
        async with client_for(sb) as c:
            for i in range(20):
                await c.post("/api/v4/run", data={**SUNSET, "prompt": f"p{i}"})
        return [sb.store.jobs[k].fails for k in sb.store.jobs]

    first = await outcomes(3)
    assert first == await outcomes(3)
    assert 0 < sum(first) < 20
    assert first != await outcomes(4)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": "Basic c2FuZGJveC1rZXk="}])
async def test_401_missing_or_wrong_key(autojump_clock, headers: dict) -> None:
    sb = make_sandbox()
    async with httpx.AsyncClient(transport=sandbox_transport(sb), base_url=sb.base_url) as c:
        r = await c.post("/api/v4/run", data=SUNSET, headers=headers)
    err = assert_error(r, 401, "authentication_failed")
    assert err["message"] == "Invalid or missing API key."
    assert sb.stats.jobs_created == 0


async def test_403_for_a_forbidden_model(autojump_clock) -> None:
    sb = make_sandbox(forbidden_models=("sandbox-key:hidream-l1",))
    async with client_for(sb) as c:
        r = await c.post("/api/v4/run", data=SUNSET)
    assert_error(r, 403, "permission_denied")
    assert sb.stats.jobs_created == 0


async def test_404_model_not_found(autojump_clock) -> None:
    sb = make_sandbox()
    async with client_for(sb) as c:
        r = await c.post("/api/v4/run", data={"model_id": "no-such-model", "prompt": "x"})
    err = assert_error(r, 404, "model_not_found")
    assert "no-such-model" in err["message"]


async def test_422_missing_model_id_is_the_page_example(autojump_clock) -> None:
    sb = make_sandbox()
    async with client_for(sb) as c:
        r = await c.post("/api/v4/run", data={"prompt": "x"})
    assert r.status_code == 422
    assert r.json() == {"success": False, "error": {
        "code": "validation_error", "message": "The model_id field is required.",
        "details": {"model_id": ["The model_id field is required."]}}}
    assert_rate_headers(r)


async def test_422_details_from_the_model_schema(autojump_clock) -> None:
    sb = make_sandbox()
    bad = {**FLUX_EXAMPLE, "guidance": "11", "aspect_ratio": "7:1", "num_inference_steps": "x"}
    async with client_for(sb) as c:
        r = await c.post("/api/v4/run", data=bad)
    err = assert_error(r, 422, "validation_error")
    assert set(err["details"]) == {"guidance", "aspect_ratio", "num_inference_steps"}
    assert err["details"]["guidance"] == ["The guidance field must not be greater than 10."]
    assert err["message"].endswith("(and 2 more errors)")
    assert sb.stats.jobs_created == 0 and not sb.stats.submissions


async def test_multipart_and_json_bodies_are_read_like_forms(autojump_clock) -> None:
    sb = make_sandbox(latency=(9.0, 9.0))
    async with client_for(sb) as c:
        r1 = await c.post("/api/v4/run", files={k: (None, v) for k, v in FLUX_EXAMPLE.items()})
        typed = {**FLUX_EXAMPLE, "num_inference_steps": 28, "guidance": 3.0, "output_quality": 80,
                 "prompt_strength": 0.8, "lora_scale": 1}
        r2 = await c.post("/api/v4/run", json=typed)
        r3 = await c.post("/api/v4/run", content=b"{not json",
                          headers={"content-type": "application/json"})
    assert r1.status_code == 200 and r2.status_code == 200
    # both are the same generation: one parameter set submitted twice
    assert list(sb.stats.submissions.values()) == [2]
    assert sb.stats.submissions_for(FLUX, typed) == 2
    assert_error(r3, 422, "validation_error")


async def test_check_errors(autojump_clock) -> None:
    sb = make_sandbox()
    async with client_for(sb) as c:
        missing = await c.post("/api/v4/check", data={})
        notint = await c.post("/api/v4/check", data={"request_id": "abc"})
        unknown = await c.post("/api/v4/check", data={"request_id": "212121212121212"})
    assert assert_error(missing, 422, "validation_error")["details"] == {
        "request_id": ["The request_id field is required."]}
    assert assert_error(notint, 422, "validation_error")["details"] == {
        "request_id": ["The request_id field must be an integer."]}
    assert_error(unknown, 404, "not_found")


async def test_another_keys_request_is_not_found(autojump_clock) -> None:
    sb = make_sandbox(api_keys=("k1", "k2"), latency=(5.0, 5.0))
    async with client_for(sb) as c:
        rid = (await c.post("/api/v4/run", data=SUNSET, headers={"Authorization": "Bearer k1"})
               ).json()["data"]["request_id"]
        r = await c.post("/api/v4/check", data={"request_id": rid},
                         headers={"Authorization": "Bearer k2"})
    assert_error(r, 404, "not_found")


async def test_get_is_405(autojump_clock) -> None:
    sb = make_sandbox()
    async with client_for(sb) as c:
        r = await c.get("/api/v4/run")
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "POST"


async def test_rate_limit_window_on_the_virtual_clock(autojump_clock) -> None:
    # 3 calls per 10 s; trio time 0 is unix EPOCH (a multiple of 10): windows start at 0, 10...
    sb = make_sandbox(rate_limit=3, rate_window=10.0, latency=(100.0, 100.0))
    async with client_for(sb) as c:
        await trio.sleep(4.0)
        answers = [await c.post("/api/v4/run", data={**SUNSET, "prompt": f"p{i}"})
                   for i in range(3)]
        assert [r.headers["x-ratelimit-remaining"] for r in answers] == ["2", "1", "0"]
        assert {r.headers["x-ratelimit-limit"] for r in answers} == {"3"}
        assert {r.headers["x-ratelimit-reset"] for r in answers} == {str(int(EPOCH) + 10)}
        limited = await c.post("/api/v4/check", data={"request_id": "1"})
        err = assert_error(limited, 429, "rate_limit_exceeded")
        assert err["message"]
        assert limited.headers["retry-after"] == "6"
        assert limited.headers["x-ratelimit-remaining"] == "0"
        await trio.sleep_until(9.999)
        assert (await c.post("/api/v4/check", data={"request_id": "1"})).status_code == 429
        await trio.sleep_until(10.0)
        opened = await c.post("/api/v4/run", data=SUNSET)
        assert opened.status_code == 200
        assert opened.headers["x-ratelimit-remaining"] == "2"
        assert opened.headers["x-ratelimit-reset"] == str(int(EPOCH) + 20)
    assert sb.stats.rate_limited == 2
    assert sb.stats.jobs_created == 4


async def test_unlimited_still_sends_headers(autojump_clock) -> None:
    sb = make_sandbox(rate_limit=0)
    async with client_for(sb) as c:
        r = await c.post("/api/v4/run", data=SUNSET)
    assert r.status_code == 200
    assert int(r.headers["x-ratelimit-remaining"]) > 10**6


async def test_error_rate_500_creates_nothing(autojump_clock) -> None:
    sb = make_sandbox(error_rate=1.0)
    async with client_for(sb) as c:
        r = await c.post("/api/v4/run", data=SUNSET)
    err = assert_error(r, 500, "internal_server_error")
    assert err["message"]
    assert sb.stats.jobs_created == 0 and not sb.stats.submissions
    assert sb.stats.server_errors == 1


async def test_dropped_run_created_the_job(autojump_clock) -> None:
    sb = make_sandbox(drop_rate=1.0, latency=(3.0, 3.0))
    async with client_for(sb) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            await c.post("/api/v4/run", data=SUNSET)
    assert sb.stats.jobs_created == 1
    assert sb.stats.submissions_for("hidream-l1", SUNSET) == 1
    assert sb.stats.drops["run"] == 1


async def test_dropped_check_answers_nothing(autojump_clock) -> None:
    sb = make_sandbox(latency=(3.0, 3.0))
    async with client_for(sb) as c:
        rid = (await c.post("/api/v4/run", data=SUNSET)).json()["data"]["request_id"]
        sb.config.drop_rate = 1.0
        with pytest.raises(httpx.RemoteProtocolError):
            await c.post("/api/v4/check", data={"request_id": rid})
    assert sb.stats.drops["check"] == 1 and sb.stats.jobs_created == 1


async def test_truncated_download_advertises_full_length(autojump_clock) -> None:
    sb = make_sandbox(image_scale=0.125, truncate_rate=1.0)
    async with client_for(sb) as c:
        url = (await c.post("/api/v4/run", data=SUNSET)).json()["data"]["output"]
        async with c.stream("GET", url) as r:
            assert r.status_code == 200
            length = int(r.headers["content-length"])
            got = b""
            with pytest.raises(httpx.RemoteProtocolError, match="incomplete|complete message"):
                async for chunk in r.aiter_raw():
                    got += chunk
    assert 0 < len(got) < length
    assert sb.stats.truncated == 1


async def test_expired_output_is_gone_and_check_issues_a_fresh_url(autojump_clock) -> None:
    sb = make_sandbox(latency=(1.0, 1.0), output_ttl=60.0, image_scale=0.125)
    async with client_for(sb) as c:
        rid = (await c.post("/api/v4/run", data=SUNSET)).json()["data"]["request_id"]
        await trio.sleep(1.0)
        first = (await c.post("/api/v4/check", data={"request_id": rid})).json()["data"]["output"]
        await trio.sleep(59.9)
        assert (await c.get(first)).status_code == 200
        await trio.sleep(0.1)
        assert (await c.get(first)).status_code == 410
        fresh = (await c.post("/api/v4/check", data={"request_id": rid})).json()["data"]["output"]
        assert fresh != first
        r = await c.get(fresh)
        assert r.status_code == 200
        assert (await c.get(first.replace("image_", "image_x"))).status_code == 404
    assert sb.stats.outputs_issued == 2


async def test_separate_storage_origin_counts_authorization(autojump_clock) -> None:
    sb = make_sandbox(storage_port=0, image_scale=0.125)
    assert sb.storage_url != sb.base_url
    async with client_for(sb) as c:
        url = (await c.post("/api/v4/run", data=SUNSET)).json()["data"]["output"]
        assert url.startswith(sb.storage_url + "/storage/outputs/")
        assert (await c.get(url)).status_code == 200  # the client's default headers: Bearer
        assert (await c.get(url, headers={"Authorization": ""})).status_code == 200
    async with httpx.AsyncClient(transport=c._transport) as anon:
        assert (await anon.get(url)).status_code == 200
        # the API origin does not serve storage when it is separate
        assert (await anon.get(sb.base_url + "/storage/outputs/x.jpg")).status_code == 404
    assert sb.stats.storage_authorization == 2 and sb.stats.storage_saw_authorization
    assert sb.stats.calls["storage"] == 3


async def test_same_params_same_bytes_different_seed_different_bytes(autojump_clock) -> None:
    sb = make_sandbox(image_scale=0.125)
    base = {**FLUX_EXAMPLE, "output_format": "png", "aspect_ratio": "16:9", "megapixels": "0.25"}
    async with client_for(sb) as c:
        async def fetch(seed: str) -> bytes:
            url = (await c.post("/api/v4/run", data={**base, "seed": seed})).json()["data"]["output"]
            return (await c.get(url)).content

        a1, a2, b = await fetch("1"), await fetch("1"), await fetch("2")
    assert a1 == a2 and a1 != b
    with Image.open(io.BytesIO(a1)) as pic:
        assert pic.format == "PNG" and pic.size == (80, 48)  # 16:9 at 0.25 MP (688x384), scaled 1/8, sides in 16s
    assert sb.stats.submissions_for(FLUX, {**base, "seed": 1}) == 2


async def test_stats_and_reset_endpoints(autojump_clock) -> None:
    sb = make_sandbox(latency=(2.0, 2.0))
    async with client_for(sb) as c:
        await c.post("/api/v4/run", data=SUNSET)
        await c.post("/api/v4/run", data=SUNSET)
        await c.post("/api/v4/check", data={"request_id": "1"})
        stats = (await c.get("/_sandbox/stats")).json()
        assert stats["calls"] == {"run": 2, "check": 1}
        assert stats["total_submissions"] == 2 and stats["distinct_submissions"] == 1
        assert list(stats["duplicate_submissions"].values()) == [2]
        assert stats["peak_concurrent"] >= 1 and stats["concurrent"] == 1  # this request
        assert stats["storage_saw_authorization"] is False
        assert (await c.post("/_sandbox/reset")).json() == {"reset": True}
        after = (await c.get("/_sandbox/stats")).json()
    assert after["calls"] == {} and after["total_submissions"] == 0
    assert sb.store.jobs == {}


async def test_peak_concurrency_counts_waiting_run_calls(autojump_clock) -> None:
    sb = make_sandbox(latency=(0.3, 0.3))
    async with client_for(sb) as c, trio.open_nursery() as nursery:
        for i in range(5):
            nursery.start_soon(partial(c.post, "/api/v4/run", data={**SUNSET, "prompt": f"{i}"}))
    assert sb.stats.peak_concurrent == 5 and sb.stats.concurrent == 0


async def test_webhook_posts_the_check_answer_when_done(autojump_clock) -> None:
    received: list[tuple[float, dict]] = []

    def hook(request: httpx.Request) -> httpx.Response:
        received.append((trio.current_time(), json.loads(request.content)))
        return httpx.Response(204)

    sb = make_sandbox(latency=(2.5, 2.5))
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: sb.run_background(
            webhook_transport=httpx.MockTransport(hook), task_status=task_status))
        async with client_for(sb) as c:
            r = await c.post("/api/v4/run", data={**SUNSET, "webhook": "http://hooks.test/done"})
            rid = r.json()["data"]["request_id"]
            await trio.sleep(3.0)
        nursery.cancel_scope.cancel()
    assert len(received) == 1
    at, body = received[0]
    assert at == 2.5
    assert body["success"] is True and body["data"]["status"] == "completed"
    assert body["data"]["request_id"] == rid and body["data"]["output_type"] == "image"
    assert sb.stats.webhooks_sent == 1
    # the webhook is not part of what was generated
    assert sb.stats.submissions_for("hidream-l1", SUNSET) == 1


async def test_webhook_without_background_is_counted_skipped(autojump_clock) -> None:
    sb = make_sandbox()
    async with client_for(sb) as c:
        await c.post("/api/v4/run", data={**SUNSET, "webhook": "http://hooks.test/x"})
        bad = await c.post("/api/v4/run", data={**SUNSET, "webhook": "ftp://nope"})
    assert sb.stats.webhooks_skipped == 1
    assert assert_error(bad, 422, "validation_error")["details"]["webhook"]


async def test_unknown_host_is_a_connect_error(autojump_clock) -> None:
    sb = make_sandbox()
    async with client_for(sb) as c:
        with pytest.raises(httpx.ConnectError):
            await c.post("http://elsewhere.test/api/v4/run", data=SUNSET)



async def test_request_ids_and_urls_never_repeat_across_restarts(autojump_clock) -> None:
    # a restarted sandbox (same seed) must not hand out an id a client's ledger already holds
    answers = []
    for _ in range(2):
        sb = make_sandbox(seed=0)
        async with client_for(sb) as c:
            answers.append((await c.post("/api/v4/run", data=SUNSET)).json()["data"])
    assert answers[0]["request_id"] != answers[1]["request_id"]
    assert answers[0]["output"] != answers[1]["output"]
