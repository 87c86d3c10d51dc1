"""``lumozbatch sandbox``: serve a local LumozAI-compatible API on loopback."""

from __future__ import annotations

import signal
import sys
from functools import partial

import click
import trio

from lumozbatch.errors import UsageError
from lumozbatch.sandbox.config import (
    SandboxConfig,
    parse_latency,
    parse_rate_limit,
    parse_seconds_range,
)
from lumozbatch.sandbox.server import RunningSandbox, serve_sandbox


def _rate(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, float]:
    try:
        return parse_rate_limit(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _latency(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, float]:
    try:
        return parse_latency(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _delay(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, float]:
    try:
        return parse_seconds_range(value, "webhook delay")
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


_share = click.FloatRange(0.0, 1.0)


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="API port; 0 picks a free one (the URL is printed).")
@click.option("--storage-port", type=click.IntRange(0, 65535), default=None,
              help="Serve output files from a second origin on this port (0 = free port); "
                   "default: from the API origin.")
@click.option("--api-key", "api_keys", multiple=True, metavar="KEY",
              help="An accepted key (repeatable). Default: sandbox-key.")
@click.option("--rate-limit", default="600/60", show_default=True, callback=_rate,
              metavar="N/SECONDS", help="Requests per fixed window per key; 0 = unlimited.")
@click.option("--latency", default="1-3", show_default=True, callback=_latency,
              metavar="MIN-MAX", help="Seconds a generation takes, drawn uniformly.")
@click.option("--sync-threshold", default=0.5, show_default=True, type=click.FloatRange(0),
              help="Jobs quicker than this are answered by run itself, with their output.")
@click.option("--fail-rate", default=0.0, show_default=True, type=_share,
              help="Share of jobs that end 'failed'.")
@click.option("--error-rate", default=0.0, show_default=True, type=_share,
              help="Share of API calls answered 500 (a run answered 500 created nothing).")
@click.option("--drop-rate", default=0.0, show_default=True, type=_share,
              help="Share of API calls whose connection is closed unanswered "
                   "(run: AFTER creating the job; check: before answering).")
@click.option("--reset-after-create", default=0.0, show_default=True, type=_share,
              help="Share of runs whose connection is reset right AFTER creating the job "
                   "(billed, no answer: the client's job is ambiguous).")
@click.option("--webhook-delay", default="0", show_default=True, callback=_delay,
              metavar="SECONDS|MIN-MAX", help="Extra wait of each webhook after its job is done.")
@click.option("--webhook-drop", default=0.0, show_default=True, type=_share,
              help="Share of webhook deliveries lost (never posted).")
@click.option("--webhook-dup", default=0.0, show_default=True, type=_share,
              help="Share of webhook deliveries posted twice.")
@click.option("--truncate-rate", default=0.0, show_default=True, type=_share,
              help="Share of downloads cut short (full Content-Length, fewer bytes).")
@click.option("--output-ttl", default=3600.0, show_default=True, type=click.FloatRange(0.001),
              help="Seconds an output URL lives; /check then issues a fresh one.")
@click.option("--image-scale", default=1.0, show_default=True, type=click.FloatRange(0.01, 4),
              help="Shrink (or grow) image sides, e.g. 0.125: 1024x1024 -> 128x128.")
@click.option("--forbid-model", "forbidden", multiple=True, metavar="[KEY:]MODEL",
              help="Answer 403 for this model (for every key, or only KEY). Repeatable.")
@click.option("--server", type=click.Choice(["h11", "hypercorn"]), default="h11",
              show_default=True, help="The socket server (same answers; h11 costs less CPU).")
@click.option("--journal", type=click.Path(dir_okay=False), default=None,
              help="Remember created jobs in this file, so a restarted sandbox still answers /check for them.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of every random knob (same seed, same sequence of outcomes).")
def sandbox_cmd(host: str, port: int, storage_port: int | None, api_keys: tuple[str, ...],
                rate_limit: tuple[int, float], latency: tuple[float, float],
                sync_threshold: float, fail_rate: float, error_rate: float, drop_rate: float,
                reset_after_create: float, webhook_delay: tuple[float, float],
                webhook_drop: float, webhook_dup: float, truncate_rate: float, output_ttl: float, image_scale: float,
                forbidden: tuple[str, ...], server: str, journal: str | None, seed: int) -> None:
    """Serve a local LumozAI-compatible API (run, check, output files) for free.

    Example: lumozbatch sandbox --port 0 --rate-limit 60/5 --latency 2-6 --fail-rate 0.05

    Point apply (or resume) at it from another shell with the URL and key of its first line:

    \b
      export LUMOZ_BASE_URL=http://127.0.0.1:8765 LUMOZ_API_KEY=sandbox-key
      lumozbatch apply manifests/sketch-portraits.yaml

    (lumozbatch apply MANIFEST --sandbox starts one in-process instead.)
    """
    try:
        config = SandboxConfig(
            host=host, port=port, storage_port=storage_port,
            api_keys=api_keys or ("sandbox-key",), rate_limit=rate_limit[0],
            rate_window=rate_limit[1], latency=latency, sync_threshold=sync_threshold,
            fail_rate=fail_rate, error_rate=error_rate, drop_rate=drop_rate,
            truncate_rate=truncate_rate, output_ttl=output_ttl, image_scale=image_scale,
            forbidden_models=forbidden, seed=seed, server=server, journal=journal,
            reset_after_create=reset_after_create, webhook_delay=webhook_delay,
            webhook_drop=webhook_drop, webhook_dup=webhook_dup,
        )
    except ValueError as exc:
        raise UsageError(f"invalid sandbox settings: {exc}") from None
    # A shell without job control starts background processes with SIGINT ignored; Ctrl-C
    # (and the tests' SIGINT) must still stop the server cleanly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        trio.run(partial(_main, config))
    except KeyboardInterrupt:
        pass
    except BaseExceptionGroup as group:
        interrupts, others = group.split(KeyboardInterrupt)
        if interrupts is not None and others is None:
            click.echo("sandbox stopped", err=True)
            return
        oserrors, rest = group.split(OSError)
        if oserrors is None or rest is not None:
            raise
        first = _first_leaf(oserrors)
        raise UsageError(f"cannot listen on {host}:{port}: {first}") from None
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc}") from None
    click.echo("sandbox stopped", err=True)


def _first_leaf(group: BaseException) -> BaseException:
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group


async def _stop_on_signal(cancel_scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            cancel_scope.cancel()
            return


async def _main(config: SandboxConfig) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_on_signal, nursery.cancel_scope)
        running: RunningSandbox = await nursery.start(serve_sandbox, config)
        storage = "" if running.storage_url == running.base_url else f" storage {running.storage_url}"
        keys = ",".join(config.api_keys)
        print(f"LumozAI sandbox on {running.base_url}{storage} key {keys} {config.describe()}",
              flush=True)
        print(f"  use: export LUMOZ_BASE_URL={running.base_url} LUMOZ_API_KEY={config.api_keys[0]}; "
              "lumozbatch apply MANIFEST", file=sys.stderr, flush=True)
        print(f"  try: curl -X POST {running.base_url}/api/v4/run -H \"Authorization: Bearer "
              f"{config.api_keys[0]}\" -H \"Accept: application/json\" -d \"model_id=hidream-l1\" "
              f"-d \"prompt=A beautiful sunset over mountains\"", file=sys.stderr, flush=True)
