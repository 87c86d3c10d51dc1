"""shell.webhooks: the receiver on a real loopback socket, its secret file, and the sandbox
delivering to it end to end (delay, duplicates, resets relinked by their webhook)."""

from __future__ import annotations

import json
import os
import socket
import stat
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from lumozbatch.core.webhook import (
    Action,
    Delivery,
    KnownJob,
    Verdict,
    decide,
    hook_path,
    hook_url,
)
from lumozbatch.errors import ConfigError
from lumozbatch.sandbox import SandboxConfig, serve_sandbox
from lumozbatch.shell.webhooks import (
    SECRET_FILE,
    load_or_create_secret,
    parse_listen,
    receiver_app,
    serve_receiver,
    url_path_prefix,
)

pytestmark = pytest.mark.e2e

SECRET = bytes(range(100, 132))
JOB = "ab" * 32
DONE = {"success": True, "data": {"request_id": 42, "status": "completed",
                                  "output": "https://cdn.test/x.png", "output_type": "image"}}


class Recorder:
    """A ``record`` callback: accepts everything for JOB, remembers what it saw."""

    def __init__(self) -> None:
        self.seen: list[Delivery] = []
        self.release = trio.Event()
        self.release.set()

    async def __call__(self, delivery: Delivery) -> Verdict:
        self.seen.append(delivery)
        await self.release.wait()
        return decide(KnownJob("submitted", 42, 1), delivery)


async def _post(url: str, **kw) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as c:
        return await c.post(url, **kw)


async def test_a_delivery_is_answered_only_after_record_returns() -> None:
    rec = Recorder()
    rec.release = trio.Event()
    answers: list[httpx.Response] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            receiver = await nursery.start(serve_receiver, SECRET, rec)
            assert receiver.port > 0 and receiver.url == f"http://127.0.0.1:{receiver.port}"
            url = receiver.url + hook_path(SECRET, JOB, 1)

            async def post() -> None:
                answers.append(await _post(url, json=DONE))

            nursery.start_soon(post)
            while not rec.seen:
                await trio.sleep(0.01)
            await trio.sleep(0.2)
            assert answers == []  # record has not returned: no answer yet
            rec.release.set()
            while not answers:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert answers[0].status_code == 200
    assert answers[0].json() == {"ok": True, "result": "complete", "reason": ""}
    got = rec.seen[0]
    assert (got.request_id, got.status, got.output) == (42, "completed", "https://cdn.test/x.png")
    assert (got.target.job, got.target.attempt) == (JOB, 1)
    assert receiver.stats.statuses == {200: 1}


async def test_refusals_never_reach_record_and_the_receiver_survives() -> None:
    rec = Recorder()
    path = hook_path(SECRET, JOB, 1)
    forged = path[:-1] + ("A" if path[-1] != "A" else "B")
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            receiver = await nursery.start(serve_receiver, SECRET, rec)
            base = receiver.url
            async with httpx.AsyncClient(base_url=base, timeout=10) as c:
                got = await c.get(path)
                assert got.status_code == 405 and got.headers["allow"] == "POST"
                assert (await c.put(path, json=DONE)).status_code == 405
                assert (await c.post(forged, json=DONE)).status_code == 404
                assert (await c.post(path + "?x=1", json=DONE)).status_code == 404
                assert (await c.post("/hook", json=DONE)).status_code == 404
                assert (await c.post(path, content=b"{not json",
                                     headers={"content-type": "application/json"})
                        ).status_code == 400
                assert (await c.post(path, content=b"x", headers={"content-type": "text/plain"})
                        ).status_code == 415
                assert (await c.post(path, json={"data": {"request_id": 42}})).status_code == 400
                big = json.dumps({**DONE, "pad": "x" * 70_000}).encode()
                assert (await c.post(path, content=big)).status_code == 413

                async def chunks():
                    for _ in range(20):
                        yield b"x" * 8192

                assert (await c.post(path, content=chunks())).status_code == 413
            # a huge declared body is refused before it is sent
            stream = await trio.open_tcp_stream("127.0.0.1", receiver.port)
            async with stream:
                await stream.send_all(f"POST {path} HTTP/1.1\r\nHost: x\r\n"
                                      "Content-Length: 10000000\r\n\r\n".encode())
                head = await stream.receive_some(4096)
            assert head.startswith(b"HTTP/1.1 413 ")
            stream = await trio.open_tcp_stream("127.0.0.1", receiver.port)
            async with stream:
                await stream.send_all(b"GARBAGE\r\n\r\n")
                assert (await stream.receive_some(4096)).startswith(b"HTTP/1.1 400 ")
            # forged request_id: record is called (the path is ours) and refuses it
            ok = await _post(base + path, json={**DONE, "data": {**DONE["data"],
                                                                 "request_id": 43}})
            assert ok.status_code == 409 and ok.json()["result"] == "contradicts"
            fine = await _post(base + path, data={"request_id": "42", "status": "completed",
                                                  "output": "https://cdn.test/x.png"})
            assert fine.status_code == 200
            nursery.cancel_scope.cancel()
    assert [d.request_id for d in rec.seen] == [43, 42]


async def test_a_failing_record_is_answered_503_and_the_receiver_goes_on() -> None:
    calls = 0

    async def flaky(delivery: Delivery) -> Verdict:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk full")
        return decide(KnownJob("submitted", 42, 1), delivery)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            receiver = await nursery.start(serve_receiver, SECRET, flaky)
            url = receiver.url + hook_path(SECRET, JOB, 1)
            assert (await _post(url, json=DONE)).status_code == 503
            assert (await _post(url, json=DONE)).status_code == 200
            nursery.cancel_scope.cancel()


async def test_a_public_url_prefix_is_served() -> None:
    rec = Recorder()
    public = "https://tunnel.example/lumoz/"
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            receiver = await nursery.start(partial(serve_receiver, SECRET, rec,
                                                   prefix=url_path_prefix(public)))
            url = hook_url(public, SECRET, JOB, 1).replace("https://tunnel.example",
                                                          receiver.url)
            assert "/lumoz/hook/" in url
            assert (await _post(url, json=DONE)).status_code == 200
            nursery.cancel_scope.cancel()


async def test_cancelling_the_scope_frees_the_port() -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            receiver = await nursery.start(serve_receiver, SECRET, Recorder())
            port = receiver.port
            # an idle keep-alive connection must not hold the server open either
            idle = await trio.open_tcp_stream("127.0.0.1", port)
            nursery.cancel_scope.cancel()
        await idle.aclose()
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", port)
    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    for listener in listeners:
        await listener.aclose()


def test_the_secret_file_is_created_0600_and_read_back(tmp_path: Path) -> None:
    state = tmp_path / ".lumozbatch"
    first = load_or_create_secret(state)
    path = state / SECRET_FILE
    assert len(first) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(state) == first
    assert load_or_create_secret(tmp_path / "other") != first
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        load_or_create_secret(state)
    os.chmod(path, 0o600)
    path.write_bytes(b"short")
    with pytest.raises(ConfigError, match="no usable webhook secret"):
        load_or_create_secret(state)


@pytest.mark.parametrize(("text", "want"), [
    ("0.0.0.0:8080", ("0.0.0.0", 8080)), (":9000", ("127.0.0.1", 9000)),
    ("example.org", ("example.org", 443)), ("[::1]:81", ("::1", 81)), ("::1", ("::1", 443)),
    ("127.0.0.1:0", ("127.0.0.1", 0)),
])
def test_parse_listen(text: str, want: tuple[str, int]) -> None:
    assert parse_listen(text, 443) == want


@pytest.mark.parametrize("text", ["h:99999", "h:x", "[::1]x", "h:-1"])
def test_parse_listen_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_listen(text, 443)


# -- end to end: the sandbox delivering to the receiver ---------------------------------------


class Store:
    """The runner's side, in memory: what it knows per job, updated as the runner would."""

    def __init__(self) -> None:
        self.jobs: dict[str, KnownJob] = {}
        self.verdicts: list[tuple[str, Action]] = []
        self.outputs: dict[str, str] = {}

    async def record(self, delivery: Delivery) -> Verdict:
        job = delivery.target.job
        verdict = decide(self.jobs.get(job), delivery)
        self.verdicts.append((job, verdict.action))
        outcome = verdict
        if verdict.action is Action.RELINK:  # the request_id first, then the outcome
            self.jobs[job] = KnownJob("submitted", delivery.request_id, 1)
            outcome = decide(self.jobs[job], delivery)
        if outcome.action is Action.COMPLETE:
            self.jobs[job] = KnownJob("completed", delivery.request_id, 1)
            self.outputs[job] = delivery.output
        return verdict


async def _submit(c: httpx.AsyncClient, store: Store, job: str, hook: str) -> bool:
    """One run, recorded as the runner would; False when its answer was lost (ambiguous)."""
    store.jobs[job] = KnownJob("submitting", None, 1)
    try:
        r = await c.post("/api/v4/run", data={"model_id": "hidream-l1", "prompt": job,
                                              "webhook": hook})
    except httpx.TransportError:  # the run's answer was lost: maybe billed
        if store.jobs[job].state == "submitting":
            store.jobs[job] = KnownJob("ambiguous", None, 1)
        return False
    if store.jobs[job].state == "submitting":
        store.jobs[job] = KnownJob("submitted", r.json()["data"]["request_id"], 1)
    return True


async def _drive(cfg: SandboxConfig, n: int, *, strangers: bool):
    """n jobs through the sandbox, webhooks to the receiver; returns what each side saw."""
    store = Store()
    ambiguous = set()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            receiver = await nursery.start(serve_receiver, SECRET, store.record)
            running = await nursery.start(serve_sandbox, cfg)
            auth = {"Authorization": f"Bearer {running.api_key}"}
            async with httpx.AsyncClient(base_url=running.base_url, headers=auth,
                                         timeout=10) as c:
                for i in range(n):
                    if not await _submit(c, store, f"job{i}",
                                         hook_url(receiver.url, SECRET, f"job{i}", 1)):
                        ambiguous.add(f"job{i}")
                if strangers:  # valid runs whose webhook is a forged or an unknown hook
                    forged = hook_url(receiver.url, SECRET, "job0", 1)[:-2] + "xx"
                    for hook in (forged, hook_url(receiver.url, SECRET, "nobody", 1)):
                        await c.post("/api/v4/run", data={"model_id": "hidream-l1",
                                                          "prompt": "stranger", "webhook": hook})
            stats = running.stats
            created = n + 2 * strangers
            with trio.move_on_after(20):
                while (stats.webhooks_sent + stats.webhooks_failed
                       < created - stats.webhooks_dropped + stats.webhooks_duplicated):
                    await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
    return store, ambiguous, stats, receiver.stats


# latency >= 1 s: each run's answer is recorded long before its webhook can arrive
E2E = dict(port=0, latency=(1.0, 1.5), sync_threshold=0.0, image_scale=0.125, rate_limit=0,
           webhook_delay=(0.0, 0.3), reset_after_create=0.25)


async def test_the_sandbox_delivers_to_the_receiver_end_to_end() -> None:
    n = 16
    store, ambiguous, stats, received = await _drive(
        SandboxConfig(**E2E, webhook_dup=0.5, seed=5), n, strangers=True)
    assert 0 < len(ambiguous) < n and stats.drops == {"run-reset": len(ambiguous)}
    # every job completed and was delivered at least once; the ambiguous ones were relinked
    assert all(store.jobs[f"job{i}"].state == "completed" for i in range(n))
    assert set(store.outputs) == {f"job{i}" for i in range(n)}
    relinked = {job for job, action in store.verdicts if action is Action.RELINK}
    assert relinked == ambiguous
    # duplicates were answered 2xx and changed nothing; strangers (a forged tag, an unknown
    # job; twice when duplicated) were refused 404
    duplicates = [job for job, action in store.verdicts if action is Action.DUPLICATE]
    strangers = 2 + stats.webhooks_duplicated - len(duplicates)
    assert duplicates and strangers >= 2
    assert stats.webhook_statuses == {"200": n + len(duplicates), "404": strangers}
    unknown = [job for job, action in store.verdicts if action is Action.UNKNOWN_JOB]
    assert set(unknown) == {"nobody"}  # its path verifies; the store knows no such job
    assert len(store.verdicts) == n + len(duplicates) + len(unknown)
    assert received.statuses == {200: n + len(duplicates), 404: strangers}


async def test_lost_webhooks_leave_their_jobs_to_the_polling_fallback() -> None:
    n = 16
    store, ambiguous, stats, received = await _drive(
        SandboxConfig(**E2E, webhook_drop=0.3, seed=2), n, strangers=False)
    assert 0 < stats.webhooks_dropped < n and ambiguous
    done = {job for job, known in store.jobs.items() if known.state == "completed"}
    assert len(done) == n - stats.webhooks_dropped == stats.webhooks_sent
    # a job whose webhook was lost is where its run left it: submitted (to be polled when
    # overdue) or ambiguous (still unknown); nothing was invented for it
    for job in set(store.jobs) - done:
        assert store.jobs[job].state == ("ambiguous" if job in ambiguous else "submitted")
        assert job not in store.outputs
    assert received.statuses == {200: n - stats.webhooks_dropped}


# -- the router, in-process: random requests never reach record by accident -----------------


def _call(app, method: str, raw_path: bytes, body: bytes, ctype: bytes | None,
          query: bytes = b"") -> tuple[int, dict]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": raw_path.decode("latin-1"),
             "raw_path": raw_path, "query_string": query,
             "headers": [(b"content-type", ctype)] if ctype else []}
    trio.run(app, scope, receive, send)
    return sent[0]["status"], json.loads(sent[1]["body"])


METHODS = st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "post", "POST"])


@settings(max_examples=200, deadline=None)
@given(METHODS, st.binary(max_size=200), st.binary(max_size=600),
       st.sampled_from([None, b"application/json", b"application/x-www-form-urlencoded"]))
def test_random_requests_are_refused_without_reaching_record(method, path, body, ctype) -> None:
    rec = Recorder()
    status, answer = _call(receiver_app(SECRET, rec), method, b"/" + path, body, ctype)
    assert rec.seen == [] and 400 <= status < 500 and answer["ok"] is False


@settings(max_examples=200, deadline=None)
@given(METHODS, st.data())
def test_only_post_on_the_exact_path_reaches_record(method: str, data) -> None:
    rec = Recorder()
    path = hook_path(SECRET, JOB, 1)
    if data.draw(st.booleans()):  # one character changed
        i = data.draw(st.integers(0, len(path) - 1))
        c = data.draw(st.characters(min_codepoint=0x21, max_codepoint=0x7E))
        path = path[:i] + c + path[i + 1:]
    status, _ = _call(receiver_app(SECRET, rec), method, path.encode(), json.dumps(DONE).encode(),
                      b"application/json")
    valid = method == "POST" and path == hook_path(SECRET, JOB, 1)
    assert (status == 200) == valid and (rec.seen != []) == valid


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 2**63 - 1).filter(lambda rid: rid != 42))
def test_a_forged_request_id_is_refused_409(rid: int) -> None:
    rec = Recorder()
    body = json.dumps({"data": {**DONE["data"], "request_id": rid}}).encode()
    status, answer = _call(receiver_app(SECRET, rec), "POST", hook_path(SECRET, JOB, 1).encode(),
                           body, b"application/json")
    assert status == 409 and answer == {"ok": False, "result": "contradicts",
                                        "reason": "this job has another request_id"}
