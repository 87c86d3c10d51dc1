"""``lumozbatch apply`` and ``lumozbatch resume``: plan against the ledger, then run."""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import click
import httpx
import trio

from lumozbatch.core.events import Event, EventSink
from lumozbatch.errors import ConfigError, LumozbatchError, UsageError
from lumozbatch.shell.api import DEFAULT_BASE_URL, LumozClient, normalize_base_url
from lumozbatch.shell.ledger import Ledger, default_out_dir, find_out_dir
from lumozbatch.shell.planning import Plan, check_cap, plan_batch, plan_resume
from lumozbatch.shell.ratelimit import SharedLimiter
from lumozbatch.shell.runner import BatchRunner, RunOptions, RunOutcome, run_batch
from lumozbatch.shell.transport import ShardedTransport, shard_count

__all__ = ["apply_cmd", "resume_cmd"]

#: On a terminal, ask before submitting more than this many generations (SPEC section 2).
CONFIRM_ABOVE = 50
DEFAULT_CONCURRENCY = 8


@dataclass(frozen=True, slots=True)
class Target:
    """Where the API is: a real root with a key, or the in-process sandbox."""

    base_url: str | None
    api_key: str | None
    sandbox: bool


def _target(base_url: str | None, sandbox: bool) -> Target:
    if sandbox:
        return Target(None, None, True)
    key = os.environ.get("LUMOZ_API_KEY", "").strip()
    if not key:
        raise ConfigError(
            "no API key: set LUMOZ_API_KEY (or try the free local sandbox with --sandbox)"
        )
    root = base_url or os.environ.get("LUMOZ_BASE_URL") or DEFAULT_BASE_URL
    return Target(normalize_base_url(root), key, False)


def _api_of(target: Target) -> str:
    """What the ledger records as the API a batch runs against."""
    return "sandbox" if target.sandbox else str(target.base_url)


def _check_same_api(batch: dict[str, Any], target: Target, out_dir: Path) -> None:
    """Refuse to continue a batch against another API than the one that ran it: its request
    ids mean nothing there (the other API would fail paid requests as unknown) and its done
    outputs are not that API's (a sandbox's images would count as generated)."""
    recorded = batch.get("api")
    current = _api_of(target)
    if not isinstance(recorded, str) or recorded == current:
        return  # same API, or a ledger from before the API was recorded

    def name(api: str) -> str:
        return "the sandbox" if api == "sandbox" else api

    how = "with --sandbox" if recorded == "sandbox" else f"with --base-url {recorded}"
    raise UsageError(
        f"the batch in {out_dir} was run against {name(recorded)}, not {name(current)}",
        details=[
            "its request ids and outputs belong to that API; nothing was sent",
            f"continue it there ({how}), or give this run another folder with --out",
        ],
    )


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _confirm(plan: Plan, yes: bool, json_out: bool, describe: Callable[[], str] | None = None) -> None:
    """On a terminal, show the plan and ask before submitting more than CONFIRM_ABOVE."""
    if yes or json_out or plan.to_submit <= CONFIRM_ABOVE or not _interactive():
        return
    if describe is not None:
        click.echo(describe().rstrip("\n"))
    click.echo(
        f"This run will submit {plan.to_submit} generations "
        f"({plan.done} already done, {plan.in_flight} in flight, {plan.spent} spent so far)."
    )
    if not click.confirm("Submit them?", default=False):
        raise click.Abort()


def _describe_plan(manifest: Any, specs: list[Any], state: Any) -> Callable[[], str]:
    """The text ``lumozbatch plan`` prints, for the confirmation on a terminal."""

    def render() -> str:
        from lumozbatch.cli.plan import render_plan, summarize
        from lumozbatch.core.jobcategory import category_of

        wanted = {s.identity for s in specs}
        states = {i: category_of(r) for i, r in state.jobs.items()}
        removed = sum(1 for i, r in state.jobs.items() if i not in wanted and not r.retired)
        return render_plan(summarize(manifest, specs, states, removed=removed))

    return render


def _plan_event(plan: Plan, out_dir: Path, name: str, state: Any) -> Event:
    """The run's first event. After planning, the ledger's active jobs are exactly the
    manifest's (the others were retired), so counts and the summary cover every active job."""
    from lumozbatch.ui.view import plan_extra

    # extra: per manifest job, its total and what is already settled (the live display's rows)
    return Event(
        "plan",
        counts=plan.counts(),
        out_dir=str(out_dir),
        name=name,
        extra=plan_extra(state),
    )


async def _drive(
    ledger: Ledger,
    target: Target,
    out_dir: Path,
    *,
    options: RunOptions,
    sink: EventSink,
    result_extra: dict[str, Any],
) -> RunOutcome:
    from lumozbatch.provenance import embed_metadata

    start = trio.current_time()

    def relative(event: Event) -> None:
        # Events carry trio's clock; people want seconds since this run started.
        sink(dataclasses.replace(event, time=max(0.0, event.time - start)))

    outcome: RunOutcome | None = None
    error: LumozbatchError | None = None
    # A loopback sandbox must not be reached through the user's HTTP(S)_PROXY settings.
    trust_env = not target.sandbox
    shards = shard_count(options.concurrency)
    async with (
        trio.open_nursery() as nursery,
        httpx.AsyncClient(transport=ShardedTransport(shards, trust_env=trust_env), trust_env=trust_env) as api_http,
        httpx.AsyncClient(transport=ShardedTransport(shards, trust_env=trust_env), trust_env=trust_env) as storage_http,
    ):
        base_url, api_key = target.base_url, target.api_key
        if target.sandbox:
            from lumozbatch.sandbox.server import serve_sandbox

            running = await nursery.start(serve_sandbox, _demo_sandbox_config(out_dir))
            base_url, api_key = running.base_url, running.api_key
        assert base_url is not None and api_key is not None
        limiter = SharedLimiter(sink=relative)
        client = LumozClient(api_http, base_url, api_key, limiter)
        runner = BatchRunner(
            ledger,
            client,
            storage_http,
            out_dir,
            options=options,
            sink=relative,
            embed=embed_metadata,
            result_extra=result_extra,
        )
        try:
            outcome = await run_batch(runner, handle_sigint=True)
        except LumozbatchError as exc:
            error = exc  # re-raised outside the nursery: the error itself, not a group
        finally:
            nursery.cancel_scope.cancel()
            _save_rate_limit(out_dir, limiter)
    if error is not None:
        raise error
    assert outcome is not None
    relative(
        Event(
            "finished",
            time=trio.current_time(),
            counts=outcome.counts,
            out_dir=str(out_dir),
            exit_code=outcome.exit_code,
        )
    )
    return outcome


def _save_rate_limit(out_dir: Path, limiter: SharedLimiter) -> None:
    """Leave the last rate-limit state for ``plan``'s ETA (best effort: only an estimate)."""
    import time

    from lumozbatch.ui.ratelimit_file import RateLimitRecord, save_snapshot

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


def _demo_sandbox_config(out_dir: Path) -> Any:
    """A sandbox that makes ``apply --sandbox`` quick but real: free loopback ports (outputs
    on a second origin, as the real service serves them), 0.5-2 s jobs, small real images,
    and a journal beside the ledger so that the next ``--sandbox`` run still knows the
    request ids of jobs an interrupted run left in flight."""
    from lumozbatch.sandbox.config import SandboxConfig

    return SandboxConfig(
        host="127.0.0.1",
        port=0,
        storage_port=0,
        latency=(0.5, 2.0),
        image_scale=0.25,
        journal=str(out_dir / ".lumozbatch" / "sandbox-journal.jsonl"),
    )


def _execute(
    ledger: Ledger,
    plan: Plan,
    target: Target,
    out_dir: Path,
    *,
    name: str,
    concurrency: int,
    quiet: bool,
    json_out: bool,
    command_hint: str,
    pricing: dict[str, float] | None,
    result_extra: dict[str, Any],
) -> int:
    from lumozbatch.ui import make_reporter
    from lumozbatch.ui.summary import render_summary

    reporter = make_reporter(json=json_out, quiet=quiet)
    exit_code = 1
    with reporter:
        reporter(_plan_event(plan, out_dir, name, ledger.state))
        try:
            outcome = trio.run(
                lambda: _drive(
                    ledger,
                    target,
                    out_dir,
                    options=RunOptions(concurrency=concurrency),
                    sink=reporter,
                    result_extra=result_extra,
                )
            )
            exit_code = outcome.exit_code
        finally:
            _write_gallery(out_dir)
            reporter.summary(
                render_summary(
                    ledger.state,
                    out_dir=out_dir,
                    command_hint=command_hint,
                    pricing=pricing,
                )
                + (_billed_note(plan) if plan.reset_billed else "")
            )
    return exit_code


def _billed_note(plan: Plan) -> str:
    return (
        f"\nnote: {plan.reset_billed} of the retried failed jobs had been billed before they "
        "failed: each one sent again is paid again."
    )


def _write_gallery(out_dir: Path) -> None:
    try:
        from lumozbatch.ui.gallery import write_gallery
    except ImportError:  # the gallery is optional; the outputs are what matters
        return
    try:
        write_gallery(out_dir)
    except Exception as exc:  # noqa: BLE001 - a gallery problem must not hide the run's result
        click.echo(f"warning: could not write the gallery: {exc}", err=True)


def _common_run_options(func: Any) -> Any:
    options = [
        click.option("--concurrency", type=click.IntRange(1, 512), default=None, help="Jobs in flight at once (default: manifest limits.concurrency, else 8)."),
        click.option("--retry-failed", is_flag=True, help="Send failed jobs again (billed failures are paid again)."),
        click.option("--resubmit-ambiguous", is_flag=True, help="Send again the jobs whose run answer was lost (they may have been billed)."),
        click.option("--max-generations", type=click.IntRange(0), default=None, help="Refuse to run if the batch would pass this many generations in total."),
        click.option("--base-url", default=None, help="API root (else LUMOZ_BASE_URL, default https://lumozai.com)."),
        click.option("--sandbox", is_flag=True, help="Run against a local sandbox started in-process (no key, no cost)."),
        click.option("--yes", "-y", is_flag=True, help="Do not ask before submitting many generations."),
        click.option("--quiet", "-q", is_flag=True, help="Print only problems and the summary."),
        click.option("--json", "json_out", is_flag=True, help="One JSON event per line on stdout."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.command("apply")
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Output folder (default outputs/<name>/).")
@_common_run_options
def apply_cmd(
    manifest: Path,
    out: Path | None,
    concurrency: int | None,
    retry_failed: bool,
    resubmit_ambiguous: bool,
    max_generations: int | None,
    base_url: str | None,
    sandbox: bool,
    yes: bool,
    quiet: bool,
    json_out: bool,
) -> None:
    """Plan MANIFEST against its ledger and run what is not done yet.

    Example: lumozbatch apply manifests/sketch-portraits.yaml --sandbox
    """
    from lumozbatch.core.grid import expand
    from lumozbatch.manifest_io import load_manifest
    from lumozbatch.provenance import git_info

    loaded = load_manifest(manifest)
    specs = list(expand(loaded))
    target = _target(base_url, sandbox)
    out_dir = out if out is not None else default_out_dir(loaded.name)
    for warning in loaded.warnings:
        click.echo(f"warning: {warning}", err=True)
    cap = max_generations if max_generations is not None else loaded.max_generations
    cap_source = "--max-generations" if max_generations is not None else "limits.max_generations"
    ledger = Ledger.open(out_dir, create=True)
    try:
        batch = ledger.state.batch
        if batch is None:
            ledger.append_sync(
                {"t": "batch", "v": 1, "name": loaded.name, "manifest": str(manifest), "api": _api_of(target), "at": _now()}
            )
        elif batch.get("name") != loaded.name:
            # Planning this manifest here would retire every job of the other batch.
            raise UsageError(
                f"{out_dir} holds the batch {batch.get('name')!r}, not {loaded.name!r}",
                details=[f"choose another folder with --out, or resume that batch: lumozbatch resume {out_dir}"],
            )
        else:
            _check_same_api(batch, target, out_dir)
        plan = plan_batch(
            ledger.state, specs, retry_failed=retry_failed, resubmit_ambiguous=resubmit_ambiguous
        )
        check_cap(plan, cap, source=cap_source)
        _confirm(plan, yes, json_out, _describe_plan(loaded, specs, ledger.state))
        if plan.records:
            ledger.append_sync(*plan.records)
        hint = shlex.join(["lumozbatch", "apply", str(manifest)] + (["--out", str(out)] if out else []) + (["--sandbox"] if sandbox else []))
        code = _execute(
            ledger,
            plan,
            target,
            out_dir,
            name=loaded.name,
            concurrency=concurrency or loaded.concurrency or DEFAULT_CONCURRENCY,
            quiet=quiet,
            json_out=json_out,
            command_hint=hint,
            pricing=dict(loaded.pricing) or None,
            result_extra=git_info(manifest),
        )
    finally:
        ledger.close()
    sys.exit(code)


@click.command("resume")
@click.argument("target_arg", metavar="OUTPUT_DIR|MANIFEST")
@_common_run_options
def resume_cmd(
    target_arg: str,
    concurrency: int | None,
    retry_failed: bool,
    resubmit_ambiguous: bool,
    max_generations: int | None,
    base_url: str | None,
    sandbox: bool,
    yes: bool,
    quiet: bool,
    json_out: bool,
) -> None:
    """Finish the batch exactly as its ledger recorded it, even if the manifest changed or is gone.

    Example: lumozbatch resume outputs/sketch-portraits
    """
    from lumozbatch.provenance import git_info

    out_dir = find_out_dir(target_arg)
    ledger = Ledger.open(out_dir, create=False)  # no ledger: exit 2, before asking for a key
    try:
        target = _target(base_url, sandbox)
        batch = ledger.state.batch or {}
        _check_same_api(batch, target, out_dir)
        plan = plan_resume(
            ledger.state, retry_failed=retry_failed, resubmit_ambiguous=resubmit_ambiguous
        )
        check_cap(plan, max_generations, source="--max-generations")
        _confirm(plan, yes, json_out)
        if plan.records:
            ledger.append_sync(*plan.records)
        manifest = batch.get("manifest")
        extra = git_info(manifest) if manifest and Path(manifest).is_file() else ({"manifest": manifest} if manifest else {})
        code = _execute(
            ledger,
            plan,
            target,
            out_dir,
            name=str(batch.get("name") or out_dir.name),
            concurrency=concurrency or DEFAULT_CONCURRENCY,
            quiet=quiet,
            json_out=json_out,
            command_hint=shlex.join(["lumozbatch", "resume", str(out_dir)]),
            pricing=None,
            result_extra=extra,
        )
    finally:
        ledger.close()
    sys.exit(code)


def _now() -> float:
    import time

    return time.time()
