"""One run of a batch, wired together: the sandbox (when asked for), the two HTTP clients,
the shared limiter, the webhook receiver (with ``--webhook-url``) and the runner; then the
rate-limit file that ``plan``'s ETA reads.

This is the composition root under ``lumozbatch.batch`` (the Python API) and the CLI: the
only place that knows every layer, so the layers themselves do not know each other.
"""

from __future__ import annotations

import dataclasses
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio

from lumozbatch.core.layout import STATE_DIR
from lumozbatch.core.events import Event, EventSink
from lumozbatch.core.webhook import WebhookSettings
from lumozbatch.errors import ConfigError
from lumozbatch.provenance import embed_metadata
from lumozbatch.sandbox.config import SandboxConfig
from lumozbatch.shell.api import LumozClient
from lumozbatch.shell.ledger import Ledger
from lumozbatch.shell.location import absolute
from lumozbatch.shell.outputs import Outputs, OutputTree
from lumozbatch.shell.ratelimit import SharedLimiter
from lumozbatch.shell.runner import BatchRunner, Hooks, RunOptions, RunOutcome, run_batch
from lumozbatch.shell.services import run_with_services
from lumozbatch.shell.target import Target
from lumozbatch.shell.transport import ShardedTransport, shard_count
from lumozbatch.ui.ratelimit_file import RateLimitRecord, save_snapshot

__all__ = ["demo_sandbox_config", "drive", "save_rate_limit"]


async def drive(
    ledger: Ledger,
    target: Target,
    out_dir: Path,
    *,
    options: RunOptions,
    sink: EventSink,
    result_extra: dict[str, Any],
    webhook: WebhookSettings | None = None,
    outputs: Outputs | None = None,
) -> RunOutcome:
    """Run the ledger's unfinished jobs against ``target``; ends with the ``finished`` event.
    With ``webhook``, the receiver listens in the same nursery from before the first ``run``
    until the run is over (the port is free again however it ends). ``outputs``: where the
    outputs go (default: the folder ``out_dir``); ``out_dir`` is the batch's local home
    either way (the sandbox journal, the webhook secret, the rate-limit snapshot).

    Events reach ``sink`` with ``time`` in seconds since this run started."""
    start = trio.current_time()

    def relative(event: Event) -> None:
        # Events carry trio's clock; people want seconds since this run started.
        sink(dataclasses.replace(event, time=max(0.0, event.time - start)))

    # A loopback sandbox must not be reached through the user's HTTP(S)_PROXY settings.
    trust_env = not target.sandbox
    shards = shard_count(options.concurrency)

    def http() -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=ShardedTransport(shards, trust_env=trust_env), trust_env=trust_env)

    async with http() as api_http, http() as storage_http:

        async def run(nursery: trio.Nursery) -> RunOutcome:
            base_url, api_key = target.base_url, target.api_key
            if target.sandbox:
                from lumozbatch.sandbox.server import serve_sandbox

                running = await nursery.start(serve_sandbox, demo_sandbox_config(out_dir))
                base_url, api_key = running.base_url, running.api_key
            assert base_url is not None and api_key is not None
            limiter = SharedLimiter(sink=relative)
            client = LumozClient(api_http, base_url, api_key, limiter)
            hooks = _hooks(webhook, out_dir)
            runner = BatchRunner(
                ledger, client, storage_http, out_dir,
                options=options, sink=relative, embed=embed_metadata, result_extra=result_extra,
                hooks=hooks, outputs=outputs,
            )
            if webhook is not None and hooks is not None:
                await _start_receiver(nursery, webhook, hooks, runner)
            try:
                return await run_batch(runner, handle_sigint=True)
            finally:
                save_rate_limit(out_dir, limiter)

        outcome = await run_with_services(run)
    relative(
        Event(
            "finished",
            time=trio.current_time(),
            counts=outcome.counts,
            # as the plan event: machines get absolute paths (or the s3:// URL)
            out_dir=str(absolute(out_dir)) if outputs is None or isinstance(outputs, OutputTree) else outputs.shown,
            exit_code=outcome.exit_code,
            # SPEC 4 "Spent": the same number as plan, status and the summary (retired jobs included)
            extra={"spent": ledger.spend().generations},
        )
    )
    return outcome


def _hooks(webhook: WebhookSettings | None, out_dir: Path) -> Hooks | None:
    if webhook is None:
        return None
    from lumozbatch.shell.webhooks import load_or_create_secret

    return Hooks(webhook.url, load_or_create_secret(out_dir / STATE_DIR))


async def _start_receiver(nursery: trio.Nursery, webhook: WebhookSettings, hooks: Hooks, runner: BatchRunner) -> None:
    from lumozbatch.shell.webhooks import parse_listen, serve_receiver, url_path_prefix

    host, port = parse_listen(webhook.listen or "", webhook.port)
    serve = partial(serve_receiver, hooks.secret, runner.record_delivery, host, port,
                    prefix=url_path_prefix(webhook.url))
    try:
        await nursery.start(serve)
    except* OSError as group:  # the port is taken, or the address is not this machine's
        exc = group.exceptions[0]
        why = getattr(exc, "strerror", None) or exc
        raise ConfigError(
            f"cannot listen for webhooks on {host}:{port}: {why}",
            details=["choose another with --webhook-listen HOST:PORT (the --webhook-url must lead there)"],
        ) from None


def save_rate_limit(out_dir: Path, limiter: SharedLimiter) -> None:
    """Leave the last rate-limit state for ``plan``'s ETA (best effort: only an estimate)."""
    snap = limiter.core.snapshot(trio.current_time())
    if snap.limit is None or snap.remaining is None or snap.reset_in is None:
        return
    now = time.time()
    record = RateLimitRecord(
        limit=snap.limit,
        remaining=snap.remaining,
        reset_at=now + snap.reset_in,
        observed_at=now,
        window=snap.window,
    )
    try:
        save_snapshot(out_dir, record)
    except OSError:
        pass  # the outputs and the ledger are what matter


def demo_sandbox_config(out_dir: Path) -> SandboxConfig:
    """A sandbox that makes ``apply --sandbox`` quick but real: free loopback ports (outputs
    on a second origin, as the real service serves them), 0.5-2 s jobs, small real images,
    and a journal beside the ledger so that the next ``--sandbox`` run still knows the
    request ids of jobs an interrupted run left in flight."""
    return SandboxConfig(
        host="127.0.0.1",
        port=0,
        storage_port=0,
        latency=(0.5, 2.0),
        image_scale=0.25,
        journal=str(out_dir / STATE_DIR / "sandbox-journal.jsonl"),
    )
