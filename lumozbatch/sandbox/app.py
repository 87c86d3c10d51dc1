"""The sandbox's ASGI apps: the LumozAI API (``/api/v4/run``, ``/api/v4/check``) and the
storage origin (``/storage/outputs/<name>``), answer for answer as the seed pages show them.

Order of checks on an API call: rate limit (429, not counted), key (401), method (405),
injected 5xx (``error_rate``: nothing is created), body, then the endpoint. Every API answer,
errors and 429s included, carries ``X-RateLimit-Limit/Remaining/Reset`` and ``Date``.

Choices the pages leave open (the README's sandbox section lists them too):
- an unknown ``request_id`` (or another key's) answers 404 with code ``not_found``;
- a quick job that fails answers ``run`` with its request_id only; ``/check`` says ``failed``;
- ``/check`` on a completed job whose output URL expired issues a FRESH URL (a new name), so a
  client can refresh an expired link; the old one answers 410 Gone;
- the webhook body is exactly what ``/check`` would answer when the job finishes;
- ``drop_rate`` on ``run`` closes the connection AFTER the job was created (a real ambiguous
  submission: it was paid, and its request_id never reached the client);
  ``reset_after_create`` does the same with a TCP reset, at once after creation;
- webhook knobs are drawn when the job is created (in creation order, so a seed replays the
  same outcomes whatever the timing): its delay, whether it is lost, whether it is posted twice
  (the second post follows the first one's answer, whatever it was).
"""

from __future__ import annotations

import random
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import trio

from lumozbatch.resources import model_schemas
from lumozbatch.sandbox import render
from lumozbatch.sandbox.config import SandboxConfig
from lumozbatch.sandbox.jobs import FAILURE_MESSAGE, Job, JobStore
from lumozbatch.sandbox.journal import Journal
from lumozbatch.sandbox.params import coerce_params, submission_key, validate_params
from lumozbatch.sandbox.ratelimit import FixedWindowLimiter
from lumozbatch.sandbox.stats import SandboxStats
from lumozbatch.sandbox.wire import (
    BodyError,
    DropConnection,
    Receive,
    ResetConnection,
    Scope,
    Send,
    header,
    http_date,
    parse_fields,
    read_body,
    send_bytes,
    send_json,
)

__all__ = [
    "IN_PROCESS_API",
    "IN_PROCESS_STORAGE",
    "DropConnection",
    "ResetConnection",
    "Sandbox",
    "create_app",
]

#: Origins of an in-process sandbox (no socket): ``sandbox_transport`` routes them.
IN_PROCESS_API = "http://api.sandbox.test"
IN_PROCESS_STORAGE = "http://cdn.sandbox.test"

STORAGE_PREFIX = "/storage/outputs/"

_ERRORS = {
    401: ("authentication_failed", "Invalid or missing API key."),
    429: ("rate_limit_exceeded", "You've exceeded your rate limit."),
    500: ("internal_server_error", "An unexpected error occurred on our servers."),
}


def _trio_or_monotonic() -> float:
    try:
        return trio.current_time()
    except RuntimeError:
        return time.monotonic()


def create_app(
    config: SandboxConfig,
    *,
    clock: Callable[[], float] | None = None,
    wall_clock: Callable[[], float] | None = None,
) -> Sandbox:
    """A sandbox with its state. ``clock``: monotonic seconds for latencies and expiry (default
    trio's clock inside trio, else ``time.monotonic``); ``wall_clock``: unix seconds for the
    rate-limit windows and ``Date`` (default ``time.time``)."""
    return Sandbox(config, clock=clock or _trio_or_monotonic, wall_clock=wall_clock or time.time)


class Sandbox:
    """State and ASGI apps of one sandbox. ``api`` serves ``/api/v4/*``, ``/_sandbox/*`` and,
    when there is no separate storage origin, ``/storage/*``; ``storage`` serves ``/storage/*``.
    """

    def __init__(self, config: SandboxConfig, *, clock: Callable[[], float],
                 wall_clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self.wall_clock = wall_clock
        self.stats = SandboxStats()
        self.store = JobStore(config)
        self.limiter = FixedWindowLimiter(config.rate_limit, config.rate_window)
        self.base_url = IN_PROCESS_API
        self.storage_url = IN_PROCESS_API if config.storage_port is None else IN_PROCESS_STORAGE
        self._nursery: trio.Nursery | None = None
        self._webhook_client: Any = None
        render.set_cache_size(config.render_cache_size)
        self._reseed()
        self.journal = Journal(config.journal) if config.journal else None
        if self.journal is not None:
            for job in self.journal.load(now=clock(), wall_now=wall_clock()):
                self.store.jobs[job.request_id] = job

    @property
    def separate_storage(self) -> bool:
        return self.config.storage_port is not None

    def _reseed(self) -> None:
        seed = self.config.seed
        self._errors = random.Random(f"{seed}:error")
        self._drops = random.Random(f"{seed}:drop")
        self._truncates = random.Random(f"{seed}:truncate")
        self._resets = random.Random(f"{seed}:reset-after-create")
        self._hook_delays = random.Random(f"{seed}:webhook-delay")
        self._hook_drops = random.Random(f"{seed}:webhook-drop")
        self._hook_dups = random.Random(f"{seed}:webhook-dup")

    def reset(self) -> None:
        """Forget every job, output and counter, and restart the random knobs from the seed."""
        concurrent = self.stats.concurrent
        self.stats.__init__()  # in place: callers hold a reference to this object
        self.stats.concurrent = self.stats.peak_concurrent = concurrent
        self.store.clear()
        self.limiter.reset()
        self._reseed()

    def _roll(self, rng: random.Random, rate: float) -> bool:
        return rate > 0 and rng.random() < rate

    def output_url(self, name: str) -> str:
        return f"{self.storage_url}{STORAGE_PREFIX}{name}"

    # -- background work (webhooks) --------------------------------------------------------

    async def run_background(self, *, webhook_transport: Any = None,
                             task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Delivers webhooks until cancelled: ``await nursery.start(sandbox.run_background)``.
        ``serve_sandbox`` starts it itself; an in-process sandbox without it counts webhooks as
        ``webhooks_skipped``."""
        import httpx

        timeout = httpx.Timeout(self.config.webhook_timeout)
        async with httpx.AsyncClient(transport=webhook_transport, timeout=timeout) as client:
            async with trio.open_nursery() as nursery:
                self._webhook_client = client
                self._nursery = nursery
                task_status.started()
                try:
                    await trio.sleep_forever()
                finally:
                    self._nursery = None
                    self._webhook_client = None

    def _schedule_webhook(self, job: Job) -> None:
        # drawn now, in creation order, so that a seed gives the same outcomes whatever the timing
        lo, hi = self.config.webhook_delay
        delay = lo if hi == lo else self._hook_delays.uniform(lo, hi)
        lost = self._roll(self._hook_drops, self.config.webhook_drop)
        posts = 2 if self._roll(self._hook_dups, self.config.webhook_dup) else 1
        if self._nursery is None:
            self.stats.webhooks_skipped += 1
        elif lost:
            self.stats.webhooks_dropped += 1
        else:
            if posts == 2:
                self.stats.webhooks_duplicated += 1
            self._nursery.start_soon(self._deliver_webhook, job, self._webhook_client, delay,
                                     posts)

    async def _deliver_webhook(self, job: Job, client: Any, delay: float, posts: int) -> None:
        import httpx

        await trio.sleep(max(0.0, job.done_at + delay - self.clock()))
        for _ in range(posts):
            _, payload = self._check_answer(job, self.clock())
            try:
                answer = await client.post(job.webhook, json=payload)
            except httpx.HTTPError:
                self.stats.webhooks_failed += 1
                self.stats.webhook_statuses["error"] += 1
                continue
            self.stats.webhook_statuses[str(answer.status_code)] += 1
            if answer.is_success:
                self.stats.webhooks_sent += 1
            else:
                self.stats.webhooks_failed += 1

    # -- ASGI entry points -----------------------------------------------------------------

    async def api(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await _lifespan(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/storage/") and not self.separate_storage:
            await self._storage_request(scope, receive, send)
            return
        self.stats.enter()
        try:
            if path.startswith("/api/"):
                await self._api_request(scope, receive, send)
            elif path.startswith("/_sandbox/"):
                await self._introspection(scope, receive, send)
            else:
                self.stats.calls["other"] += 1
                await self._send_error(send, 404, "not_found",
                                       "The requested URL was not found.", [])
        finally:
            self.stats.leave()

    async def storage(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await _lifespan(scope, receive, send)
            return
        await self._storage_request(scope, receive, send)

    # -- the API ---------------------------------------------------------------------------

    def _date(self) -> tuple[bytes, bytes]:
        return (b"date", http_date(self.wall_clock()))

    async def _send_error(self, send: Send, status: int, code: str, message: str,
                          headers: list[tuple[bytes, bytes]],
                          details: dict[str, list[str]] | None = None) -> None:
        self.stats.statuses[status] += 1
        if status >= 500:
            self.stats.server_errors += 1
        payload = {"success": False,
                   "error": {"code": code, "message": message, "details": details or {}}}
        await send_json(send, status, payload, [*headers, self._date()])

    async def _api_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"].rstrip("/")
        endpoint = {"/api/v4/run": "run", "/api/v4/check": "check"}.get(path, "other")
        self.stats.calls[endpoint] += 1
        auth = header(scope, b"authorization") or ""
        scheme, _, token = auth.partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        decision = self.limiter.hit(token, self.wall_clock())
        headers = decision.headers()
        try:
            body = await read_body(receive, self.config.max_body_bytes)
        except BodyError as exc:
            await self._send_error(send, exc.status, "validation_error", str(exc), headers)
            return
        if not decision.allowed:
            self.stats.rate_limited += 1
            await self._send_error(send, 429, *_ERRORS[429],
                                   [*headers, (b"retry-after", str(decision.retry_after).encode())])
            return
        if token not in self.config.api_keys:
            await self._send_error(send, 401, *_ERRORS[401], headers)
            return
        if endpoint == "other":
            await self._send_error(send, 404, "not_found", "The requested URL was not found.",
                                   headers)
            return
        if scope["method"] != "POST":
            await self._send_error(send, 405, "method_not_allowed",
                                   f"The {scope['method']} method is not supported; use POST.",
                                   [*headers, (b"allow", b"POST")])
            return
        if self._roll(self._errors, self.config.error_rate):
            await self._send_error(send, 500, *_ERRORS[500], headers)
            return
        try:
            fields = parse_fields(header(scope, b"content-type"), body, scope.get("query_string", b""))
        except BodyError as exc:
            await self._send_error(send, exc.status, "validation_error", str(exc), headers,
                                   {"body": [str(exc)]})
            return
        try:
            if endpoint == "run":
                await self._run(send, token, fields, headers)
            else:
                await self._check(send, token, fields, headers)
        except (DropConnection, trio.Cancelled):
            raise
        except Exception:  # a sandbox bug: answer like the service would, and say it loudly
            traceback.print_exc(file=sys.stderr)
            await self._send_error(send, 500, *_ERRORS[500], headers)

    async def _validation_error(self, send: Send, details: dict[str, list[str]],
                                headers: list[tuple[bytes, bytes]]) -> None:
        messages = [m for msgs in details.values() for m in msgs]
        message = messages[0]
        if len(messages) > 1:
            more = len(messages) - 1
            message += f" (and {more} more error{'s' if more > 1 else ''})"
        await self._send_error(send, 422, "validation_error", message, headers, details)

    async def _run(self, send: Send, key: str, fields: dict[str, Any],
                   headers: list[tuple[bytes, bytes]]) -> None:
        model_id = fields.get("model_id")
        if not isinstance(model_id, str) or not model_id.strip():
            await self._validation_error(
                send, {"model_id": ["The model_id field is required."]}, headers)
            return
        model_id = model_id.strip()
        if model_id not in model_schemas():
            await self._send_error(send, 404, "model_not_found",
                                   f"The requested model does not exist: {model_id}.", headers)
            return
        if self.config.is_forbidden(key, model_id):
            await self._send_error(send, 403, "permission_denied",
                                   f"You don't have permission to use the model {model_id}.",
                                   headers)
            return
        params = coerce_params(model_id, fields)
        details = validate_params(model_id, params)
        webhook = params.pop("webhook", None)
        if webhook is not None and webhook != "" and not (
            isinstance(webhook, str) and webhook.startswith(("http://", "https://"))
        ):
            details.setdefault("webhook", []).append("The webhook field must be a valid URL.")
        if details:
            await self._validation_error(send, details, headers)
            return
        now = self.clock()
        job = self.store.create(key, model_id, params, now, webhook=webhook or None)
        if self.journal is not None:
            self.journal.append(job, now=now, wall_now=self.wall_clock())
        self.stats.jobs_created += 1
        self.stats.submissions[submission_key(model_id, params)] += 1
        if job.fails:
            self.stats.jobs_failed += 1
        if job.webhook:
            self._schedule_webhook(job)
        if self._roll(self._resets, self.config.reset_after_create):
            self.stats.drops["run-reset"] += 1
            raise ResetConnection("run reset after the job was created")
        data: dict[str, Any] = {"request_id": job.request_id}
        if job.latency < self.config.sync_threshold and not job.fails:
            await trio.sleep(job.latency)  # a quick job: the run call waits for it
            name, issued = self.store.output_for(job, self.clock())
            self.stats.outputs_issued += issued
            data.update(output=self.output_url(name), output_type="image")
        if self._roll(self._drops, self.config.drop_rate):
            self.stats.drops["run"] += 1
            raise DropConnection("run dropped after the job was created")
        self.stats.statuses[200] += 1
        await send_json(send, 200, {"success": True, "data": data}, [*headers, self._date()])

    def _check_answer(self, job: Job, now: float) -> tuple[int, dict[str, Any]]:
        status = job.status(now)
        if status == "processing":
            return 200, {"success": True, "data": {
                "request_id": job.request_id, "status": "processing",
                "progress": job.progress(now)}}
        if status == "failed":
            return 200, {"success": False, "data": {
                "request_id": job.request_id, "status": "failed", "error": FAILURE_MESSAGE}}
        name, issued = self.store.output_for(job, now)
        self.stats.outputs_issued += issued
        return 200, {"success": True, "data": {
            "request_id": job.request_id, "status": "completed",
            "output": self.output_url(name), "output_type": "image"}}

    async def _check(self, send: Send, key: str, fields: dict[str, Any],
                     headers: list[tuple[bytes, bytes]]) -> None:
        raw = fields.get("request_id")
        if raw is None or raw == "":
            await self._validation_error(
                send, {"request_id": ["The request_id field is required."]}, headers)
            return
        try:
            request_id = int(str(raw).strip(), 10) if not isinstance(raw, bool) else None
        except ValueError:
            request_id = None
        if request_id is None:
            await self._validation_error(
                send, {"request_id": ["The request_id field must be an integer."]}, headers)
            return
        if self._roll(self._drops, self.config.drop_rate):
            self.stats.drops["check"] += 1
            raise DropConnection("check dropped before answering")
        job = self.store.get(key, request_id)
        if job is None:
            await self._send_error(send, 404, "not_found",
                                   f"No request with request_id {request_id}.", headers)
            return
        status, payload = self._check_answer(job, self.clock())
        self.stats.statuses[status] += 1
        await send_json(send, status, payload, [*headers, self._date()])

    # -- introspection ---------------------------------------------------------------------

    async def _introspection(self, scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive, self.config.max_body_bytes)
        path, method = scope["path"].rstrip("/"), scope["method"]
        if path == "/_sandbox/stats" and method == "GET":
            await send_json(send, 200, self.stats.to_json(), [self._date()])
        elif path == "/_sandbox/reset" and method == "POST":
            self.reset()
            await send_json(send, 200, {"reset": True}, [self._date()])
        else:
            await send_json(send, 404, {"error": "unknown sandbox endpoint"}, [self._date()])

    # -- storage ---------------------------------------------------------------------------

    async def _storage_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.stats.enter()
        try:
            await self._serve_output(scope, receive, send)
        finally:
            self.stats.leave()

    async def _serve_output(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.stats.calls["storage"] += 1
        if header(scope, b"authorization") is not None:
            self.stats.storage_authorization += 1
        await read_body(receive, self.config.max_body_bytes)
        date = self._date()
        path: str = scope["path"]
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await send_bytes(send, 405, b"Method Not Allowed\n",
                             [(b"content-type", b"text/plain"), (b"allow", b"GET, HEAD"), date])
            return
        name = path[len(STORAGE_PREFIX):] if path.startswith(STORAGE_PREFIX) else ""
        output = self.store.find_output(name) if name and "/" not in name else None
        if output is None:
            await send_bytes(send, 404, b"Not Found\n", [(b"content-type", b"text/plain"), date],
                             head_only=method == "HEAD")
            return
        if output.expired(self.clock()):
            await send_bytes(send, 410, b"Gone: this output has expired; ask /api/v4/check "
                             b"for a fresh URL\n", [(b"content-type", b"text/plain"), date],
                             head_only=method == "HEAD")
            return
        job = output.job
        data = render.render(job.prompt, job.seed, job.width, job.height, job.fmt, job.quality)
        headers = [
            (b"content-type", render.FORMATS[job.fmt][1].encode()),
            (b"cache-control", b"public, max-age=%d" % int(self.config.output_ttl)),
            date,
        ]
        if method == "GET" and self._roll(self._truncates, self.config.truncate_rate):
            self.stats.truncated += 1
            await send({"type": "http.response.start", "status": 200,
                        "headers": [*headers, (b"content-length", str(len(data)).encode())]})
            await send({"type": "http.response.body", "body": data[: len(data) // 2],
                        "more_body": True})
            raise DropConnection("download cut short")
        await send_bytes(send, 200, data, headers, head_only=method == "HEAD")


async def _lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "lifespan":
        return
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
