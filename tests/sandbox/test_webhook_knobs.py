"""The sandbox's webhook knobs (delay, drop, duplicate) and the reset-after-create fault:
in-process on trio's virtual clock (exact times), and the reset over a real socket."""

from __future__ import annotations

import json

import httpx
import pytest
import trio

from lumozbatch.sandbox import SandboxConfig, parse_seconds_range, serve_sandbox
from sandbox_helpers import AUTH, client_for, make_sandbox

SUNSET = {"model_id": "hidream-l1", "prompt": "A beautiful sunset over mountains"}


def test_knobs_are_validated_and_described() -> None:
    cfg = SandboxConfig(webhook_delay=(1, 4), webhook_drop=0.25, webhook_dup=0.5,
                        reset_after_create=0.1)
    assert cfg.webhook_delay == (1.0, 4.0)
    line = cfg.describe()
    for part in ("webhook-delay=1-4s", "webhook-drop=0.25", "webhook-dup=0.5",
                 "reset-after-create=0.1"):
        assert part in line
    for bad in ({"webhook_delay": (3, 1)}, {"webhook_delay": (-1, 1)}, {"webhook_drop": 1.5},
                {"webhook_dup": -0.1}, {"reset_after_create": 2}):
        with pytest.raises(ValueError):
            SandboxConfig(**bad)


def test_parse_seconds_range_names_what_it_reads() -> None:
    assert parse_seconds_range("2") == (2.0, 2.0)
    assert parse_seconds_range("0.5-3s") == (0.5, 3.0)
    with pytest.raises(ValueError, match="webhook delay"):
        parse_seconds_range("3-1", "webhook delay")
    with pytest.raises(ValueError, match="webhook delay"):
        parse_seconds_range("soon", "webhook delay")


async def _deliveries(jobs: int, answer: int = 204, **knobs) -> tuple[list, list[int], object]:
    """Runs ``jobs`` webhook jobs; returns (time, body) per post, the request_ids, the sandbox."""
    received: list[tuple[float, dict]] = []

    def hook(request: httpx.Request) -> httpx.Response:
        received.append((trio.current_time(), json.loads(request.content)))
        return httpx.Response(answer)

    sb = make_sandbox(latency=(2.0, 2.0), **knobs)
    rids = []
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: sb.run_background(
            webhook_transport=httpx.MockTransport(hook), task_status=task_status))
        async with client_for(sb) as c:
            for i in range(jobs):
                r = await c.post("/api/v4/run", data={**SUNSET, "prompt": f"p{i}",
                                                      "webhook": f"http://hooks.test/{i}"})
                rids.append(r.json()["data"]["request_id"])
        await trio.sleep(60)
        nursery.cancel_scope.cancel()
    return received, rids, sb


async def test_delay_range_is_added_after_completion(autojump_clock) -> None:
    received, rids, sb = await _deliveries(20, webhook_delay=(1.0, 5.0))
    assert len(received) == 20
    times = [at for at, _ in received]
    assert all(3.0 <= at <= 7.0 for at in times)
    assert len(set(times)) > 1  # drawn, not constant
    assert {body["data"]["request_id"] for _, body in received} == set(rids)
    assert sb.stats.webhooks_sent == 20 and sb.stats.webhook_statuses == {"204": 20}


async def test_fixed_delay_is_exact(autojump_clock) -> None:
    received, _, _ = await _deliveries(1, webhook_delay=(1.5, 1.5))
    assert [at for at, _ in received] == [3.5]


async def test_drop_and_dup_are_counted_and_seeded(autojump_clock) -> None:
    received, rids, sb = await _deliveries(40, webhook_drop=0.3, webhook_dup=0.4, seed=3)
    dropped, duplicated = sb.stats.webhooks_dropped, sb.stats.webhooks_duplicated
    assert 0 < dropped < 40 and 0 < duplicated < 40
    per_rid: dict[int, int] = {}
    for _, body in received:
        per_rid[body["data"]["request_id"]] = per_rid.get(body["data"]["request_id"], 0) + 1
    assert len(per_rid) == 40 - dropped  # a dropped delivery is never posted
    # every duplicated delivery reached the hook twice (a drop wins over a dup)...
    assert sum(1 for n in per_rid.values() if n == 2) == duplicated
    assert set(per_rid.values()) <= {1, 2}
    assert len(received) == sb.stats.webhooks_sent
    # ...the bodies of both posts are the same /check answer
    by_rid: dict[int, list[dict]] = {}
    for _, body in received:
        by_rid.setdefault(body["data"]["request_id"], []).append(body)
    assert all(b[0] == b[-1] for b in by_rid.values())
    stats = sb.stats.to_json()
    assert stats["webhooks_dropped"] == dropped and stats["webhooks_duplicated"] == duplicated
    # the same seed gives the same outcomes; the ids are fresh, so compare by position
    again, rids2, sb2 = await _deliveries(40, webhook_drop=0.3, webhook_dup=0.4, seed=3)
    assert (sb2.stats.webhooks_dropped, sb2.stats.webhooks_duplicated) == (dropped, duplicated)
    pattern = [per_rid.get(r, 0) for r in rids]
    counts2: dict[int, int] = {}
    for _, body in again:
        counts2[body["data"]["request_id"]] = counts2.get(body["data"]["request_id"], 0) + 1
    assert [counts2.get(r, 0) for r in rids2] == pattern


async def test_refused_deliveries_count_as_failed_with_their_status(autojump_clock) -> None:
    received, _, sb = await _deliveries(3, answer=403, webhook_dup=1.0)
    assert len(received) == 6  # the duplicate follows even a refusal
    assert sb.stats.webhooks_sent == 0 and sb.stats.webhooks_failed == 6
    assert sb.stats.webhook_statuses == {"403": 6}


async def test_reset_after_create_bills_the_job_and_answers_nothing(autojump_clock) -> None:
    sb = make_sandbox(reset_after_create=1.0, latency=(0.0, 0.0))
    async with client_for(sb) as c:
        with pytest.raises(httpx.ReadError, match="reset"):
            await c.post("/api/v4/run", data=SUNSET)
        sb.config.reset_after_create = 0.0
        ok = await c.post("/api/v4/run", data={**SUNSET, "prompt": "after"})
    assert ok.status_code == 200
    assert sb.stats.submissions_for("hidream-l1", SUNSET) == 1  # created: paid
    assert sb.stats.jobs_created == 2 and sb.stats.drops == {"run-reset": 1}


async def test_reset_after_create_still_delivers_the_webhook(autojump_clock) -> None:
    """What makes relinking testable: the client never learns the request_id, the hook does."""
    got: list[dict] = []

    def hook(request: httpx.Request) -> httpx.Response:
        got.append(json.loads(request.content))
        return httpx.Response(200)

    sb = make_sandbox(reset_after_create=1.0, latency=(1.0, 1.0))
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: sb.run_background(
            webhook_transport=httpx.MockTransport(hook), task_status=task_status))
        async with client_for(sb) as c:
            with pytest.raises(httpx.ReadError):
                await c.post("/api/v4/run", data={**SUNSET, "webhook": "http://hooks.test/a"})
        await trio.sleep(2)
        nursery.cancel_scope.cancel()
    assert len(got) == 1 and got[0]["data"]["status"] == "completed"
    assert got[0]["data"]["request_id"] in sb.store.jobs


@pytest.mark.e2e
@pytest.mark.parametrize(("server", "error"), [("h11", httpx.ReadError),
                                               ("hypercorn", httpx.RemoteProtocolError)])
async def test_reset_after_create_over_a_real_socket(server: str, error: type) -> None:
    cfg = SandboxConfig(port=0, latency=(0.0, 0.0), image_scale=0.125, server=server,
                        reset_after_create=1.0)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            running = await nursery.start(serve_sandbox, cfg)
            async with httpx.AsyncClient(base_url=running.base_url, headers=AUTH) as c:
                with pytest.raises(error):
                    await c.post("/api/v4/run", data=SUNSET)
                running.sandbox.config.reset_after_create = 0.0
                ok = await c.post("/api/v4/run", data={**SUNSET, "prompt": "after"})
                assert ok.status_code == 200
            assert running.stats.submissions_for("hidream-l1", SUNSET) == 1
            assert running.stats.drops == {"run-reset": 1}
            nursery.cancel_scope.cancel()
