"""The run loop with webhooks, against the sandbox in-process on trio's virtual clock: the
sandbox delivers to the runner's receiver app through an in-process transport."""

from __future__ import annotations

from typing import Any

import httpx
import trio

from lumozbatch.core.webhook import Delivery, HookTarget, hook_path
from lumozbatch.shell.runner import BatchRunner, Hooks, RunOutcome, run_batch
from lumozbatch.shell.store import MemoryStore
from lumozbatch.shell.webhooks import receiver_app
from lumozbatch.core.ledger_codec import pin_job_record
from test_runner import Rig, planned, spec, states

SECRET = bytes(range(32))
PUBLIC = "https://hooks.example.test/lb"


def receiver_transport(get_runner: Any) -> httpx.AsyncBaseTransport:
    """Posts to the public URL reach the receiver app of the runner ``get_runner()`` gives."""

    async def handler(request: httpx.Request) -> httpx.Response:
        runner = get_runner()
        if runner is None:  # nobody listening: as a closed port
            raise httpx.ConnectError("connection refused", request=request)
        app = receiver_app(SECRET, runner.record_delivery, prefix="/lb")
        sent: list[dict[str, Any]] = []
        body = request.content

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        raw_path, _, query = request.url.raw_path.partition(b"?")
        scope = {"type": "http", "method": request.method, "path": request.url.path,
                 "raw_path": raw_path, "query_string": query,
                 "headers": [(k.lower(), v) for k, v in request.headers.raw]}
        await app(scope, receive, send)
        return httpx.Response(sent[0]["status"], content=sent[1]["body"])

    return httpx.MockTransport(handler)


class HookRig(Rig):
    def __init__(self, out_dir: Any, **knobs: Any) -> None:
        super().__init__(out_dir, **knobs)
        self.current: BatchRunner | None = None
        self.last: BatchRunner | None = None  # the runner of the latest run (after it)

    def runner(self, ledger: Any, **kw: Any) -> BatchRunner:
        made = super().runner(ledger, **kw)
        made.hooks = Hooks(PUBLIC, SECRET)
        self.current = self.last = made
        return made

    async def run(self, ledger: Any, **kw: Any) -> RunOutcome:
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: self.sandbox.run_background(
                webhook_transport=receiver_transport(lambda: self.current), task_status=task_status))
            outcome = await run_batch(self.runner(ledger, **kw))
            self.current = None
            nursery.cancel_scope.cancel()
        return outcome

    def results(self) -> list[str]:
        return [e.result for e in self.kinds("webhook")]  # type: ignore[attr-defined]


async def test_pushed_results_are_downloaded_without_a_single_poll(tmp_path: Any, autojump_clock: Any) -> None:
    rig = HookRig(tmp_path)
    ledger = MemoryStore(planned(spec(i) for i in range(20)))
    outcome = await rig.run(ledger, concurrency=8)
    assert outcome.exit_code == 0 and states(ledger) == {"done": 20}
    assert outcome.calls["run"] == 20 and outcome.calls["check"] == 0
    assert outcome.webhooks["complete"] == 20 and outcome.webhooks["polls_saved"] == 20
    assert rig.stats.duplicates() == {} and rig.stats.webhook_statuses == {"200": 20}
    first = rig.kinds("webhook")[0].to_dict()
    assert first["result"] == "complete" and first["http_status"] == 200 and first["attempt"] == 1
    tag = hook_path(SECRET, first["identity"], 1).rsplit("/", 1)[1]
    assert "/hook/" not in str(first) and tag not in str(first)  # never the path or its tag


async def test_lost_webhooks_are_polled_once_overdue_and_duplicates_change_nothing(
    tmp_path: Any, autojump_clock: Any
) -> None:
    rig = HookRig(tmp_path, webhook_drop=0.3, webhook_dup=0.3, seed=3)
    ledger = MemoryStore(planned(spec(i) for i in range(30)))
    outcome = await rig.run(ledger, concurrency=30)
    assert outcome.exit_code == 0 and states(ledger) == {"done": 30}
    dropped, doubled = rig.stats.webhooks_dropped, rig.stats.webhooks_duplicated
    assert dropped > 0 and doubled > 0
    assert outcome.calls["run"] == 30
    assert dropped <= outcome.calls["check"] <= 2 * dropped  # only the lost ones are polled
    assert outcome.webhooks["complete"] == 30 - dropped
    assert outcome.webhooks["duplicate"] == doubled  # the second post of each: nothing changed
    assert rig.stats.duplicates() == {}
    runner = rig.last
    assert runner is not None
    assert runner._accepted_at == {} and runner._sent_at == {} and runner._hook_locks == {}  # nothing per done job


async def test_runs_reset_after_creation_are_relinked_by_their_webhooks_never_resent(
    tmp_path: Any, autojump_clock: Any
) -> None:
    rig = HookRig(tmp_path, reset_after_create=0.3, seed=4)
    ledger = MemoryStore(planned(spec(i) for i in range(20)))
    outcome = await rig.run(ledger, concurrency=20)
    assert outcome.exit_code == 0 and states(ledger) == {"done": 20}
    relinked = [r for r in ledger.records if r["t"] == "relinked"]
    ambiguous = [r for r in ledger.records if r["t"] == "ambiguous"]
    assert relinked and len(relinked) == len(ambiguous) == outcome.webhooks["relinked"]
    assert rig.stats.jobs_created == 20 and rig.stats.duplicates() == {}
    assert sum(1 for r in ledger.records if r["t"] == "intent") == 20
    assert all(ledger.job(r["id"]).relinked for r in relinked)


async def test_an_ambiguous_job_waits_for_its_webhook_then_stays_ambiguous(tmp_path: Any, autojump_clock: Any) -> None:
    rig = HookRig(tmp_path, reset_after_create=1.0, webhook_drop=1.0)
    ledger = MemoryStore(planned([spec(0)]))
    start = trio.current_time()
    outcome = await rig.run(ledger)
    assert outcome.exit_code == 1 and states(ledger) == {"ambiguous": 1}
    # nothing seen in this batch: the webhook was plausible for PollPlanner.unseen_wait (30 s)
    assert 30.0 <= trio.current_time() - start < 31.0
    assert outcome.calls == {"run": 1, "check": 0, "download": 0}


async def test_a_later_run_relinks_an_earlier_ambiguous_job_and_downloads_it(tmp_path: Any, autojump_clock: Any) -> None:
    rig = HookRig(tmp_path, reset_after_create=1.0, webhook_drop=1.0)
    ledger = MemoryStore(planned([spec(0)]))
    await rig.run(ledger)
    assert states(ledger) == {"ambiguous": 1}
    (rid,) = rig.sandbox.store.jobs
    rig.config.reset_after_create = rig.config.webhook_drop = 0.0
    later = MemoryStore([*ledger.records, pin_job_record(spec(1), 1)])  # the manifest grew

    async def provider_retries() -> None:
        await trio.sleep(1.0)  # while the later run carries its new job
        answer = await httpx.AsyncClient(transport=rig.transport).post(
            rig.sandbox.base_url + "/api/v4/check", data={"request_id": str(rid)},
            headers={"Authorization": f"Bearer {rig.config.api_keys[0]}"})
        runner = rig.current
        assert runner is not None
        verdict = await runner.record_delivery(Delivery(
            request_id=rid, status="completed", output=answer.json()["data"]["output"],
            target=HookTarget(spec(0).identity, 1)))
        assert verdict.action.value == "relink"

    async with trio.open_nursery() as nursery:
        nursery.start_soon(provider_retries)
        outcome = await rig.run(later)
    assert outcome.exit_code == 0 and states(later) == {"done": 2}
    old = later.job(spec(0).identity)
    assert old.relinked and old.request_id == rid and old.attempts == 1
    assert rig.stats.jobs_created == 2 and outcome.webhooks["relinked"] == 1


async def test_a_run_answer_after_its_webhook_relinked_the_job_is_a_no_op(tmp_path: Any, autojump_clock: Any) -> None:
    rig = HookRig(tmp_path)
    inner = rig.transport

    class WebhookFirst(httpx.AsyncBaseTransport):
        """The run is answered only after a webhook for it came (and relinked the job)."""

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await inner.handle_async_request(request)
            if request.url.path.endswith("/run"):
                await response.aread()
                rid = response.json()["data"]["request_id"]
                runner = rig.current
                assert runner is not None
                identity = next(iter(runner._sent_at))
                verdict = await runner.record_delivery(
                    Delivery(request_id=rid, status="processing", target=HookTarget(identity, 1)))
                assert verdict.action.value == "relink"
            return response

    rig.transport = WebhookFirst()
    ledger = MemoryStore(planned([spec(0)]))
    outcome = await rig.run(ledger)
    assert outcome.exit_code == 0 and states(ledger) == {"done": 1}
    kinds = [r["t"] for r in ledger.records if r.get("id") == spec(0).identity]
    assert kinds == ["job", "intent", "relinked", "completed", "downloaded"]  # no 'accepted'
    assert not rig.kinds("warning")
