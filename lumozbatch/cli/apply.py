"""``lumozbatch apply`` and ``lumozbatch resume``: plan against the ledger, then run.

The work is ``lumozbatch.batch`` (``Batch.start`` -> ``BatchRun.execute``); here: the
options, the confirmation on a terminal, the display, and the exit code.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from lumozbatch.batch import Batch, BatchRun, open_batch, resume_batch
from lumozbatch.cli.options import state_option
from lumozbatch.core.wording import count
from lumozbatch.errors import Interrupted

__all__ = ["apply_cmd", "resume_cmd"]

#: On a terminal, ask before submitting more than this many generations (SPEC section 2).
CONFIRM_ABOVE = 50


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _confirm(run: BatchRun, yes: bool, json_out: bool) -> None:
    """On a terminal, show the plan and ask before submitting more than CONFIRM_ABOVE."""
    plan = run.plan
    if yes or json_out or plan.to_submit <= CONFIRM_ABOVE or not _interactive():
        return
    if run.describe is not None:
        click.echo(run.describe().rstrip("\n"))
    click.echo(
        f"This run will submit {count(plan.to_submit, 'generation')} "
        f"({plan.done} already done, {plan.in_flight} in flight, {plan.spent} spent so far)."
    )
    try:
        answer = click.confirm("Submit them?", default=False)
    except click.Abort as exc:
        # click turns Ctrl-C into Abort (exit 1); an interrupt is exit 130, nothing sent
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise Interrupted("interrupted at the question; nothing was sent") from None
        raise
    if not answer:
        raise click.Abort()


def _run(batch: Batch, options: dict[str, Any], *, adopt: bool = False) -> int:
    """Start, confirm, execute under the chosen display; the summary however it ends."""
    from lumozbatch.ui import make_reporter

    webhook = _webhook(options)  # a bad URL is a usage error before anything is opened
    with batch.start(
        retry_failed=options["retry_failed"],
        resubmit_ambiguous=options["resubmit_ambiguous"],
        regenerate_missing=options["regenerate_missing"],
        adopt=adopt,
        max_generations=options["max_generations"],
    ) as run:
        if batch.state.shared and batch.outputs_url is None:
            click.echo(
                f"warning: the state is shared ({batch.state.shown}) but the outputs stay in {run.where} on this "
                "machine: another machine finds them missing (fetched again while the provider keeps them); "
                "--out s3://BUCKET/PREFIX shares them too", err=True,
            )
        _confirm(run, options["yes"], options["json_out"])
        run.record_plan()
        reporter = make_reporter(json=options["json_out"], quiet=options["quiet"])
        with reporter:
            try:
                return run.execute(
                    concurrency=options["concurrency"], sink=reporter, webhook=webhook
                ).exit_code
            finally:
                if run.gallery_problem:
                    click.echo(f"warning: {run.gallery_problem}", err=True)
                reporter.summary(run.summary())


def _webhook(options: dict[str, Any]) -> Any:
    """``--webhook-url`` / ``--webhook-listen`` as the run's WebhookSettings (None: polling only)."""
    from lumozbatch.core.webhook import WebhookSettings

    url, listen = options["webhook_url"], options["webhook_listen"]
    if url is None:
        if listen is not None:
            raise click.UsageError("--webhook-listen needs --webhook-url (where the provider posts)")
        return None
    return WebhookSettings(url, listen)


def _common_run_options(func: Any) -> Any:
    options = [
        click.option("--concurrency", type=click.IntRange(1, 512), default=None, help="Jobs in flight at once (default: manifest limits.concurrency, else 8)."),
        click.option("--retry-failed", is_flag=True, help="Send failed jobs again (billed failures are paid again)."),
        click.option("--resubmit-ambiguous", is_flag=True, help="Send again the jobs whose run answer was lost (they may have been billed)."),
        click.option(
            "--regenerate-missing", is_flag=True,
            help="Pay again for outputs lost from disk that no kept copy or fresh URL could restore (each is a new generation).",
        ),
        click.option("--max-generations", type=click.IntRange(0), default=None, help="Refuse to run if the batch would pass this many generations in total."),
        click.option("--base-url", default=None, help="API root (else LUMOZ_BASE_URL, default https://lumozai.com)."),
        click.option("--sandbox", is_flag=True, help="Run against a local sandbox started in-process (no key, no cost)."),
        click.option("--yes", "-y", is_flag=True, help="Do not ask before submitting many generations."),
        click.option("--quiet", "-q", is_flag=True, help="Print only problems and the summary."),
        click.option("--json", "json_out", is_flag=True, help="One JSON event per line on stdout."),
        click.option("--webhook-url", envvar="LUMOZBATCH_WEBHOOK_URL", default=None, metavar="URL",
                     help="Public address the provider posts results to (else LUMOZBATCH_WEBHOOK_URL); polling stays the fallback."),
        click.option("--webhook-listen", default=None, metavar="HOST:PORT",
                     help="Where the receiver listens (default 127.0.0.1 and the URL's port)."),
        state_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.command("apply")
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out", default=None, metavar="DIR|s3://BUCKET/PREFIX",
    help="Output folder (default outputs/<name>/ at the top of the manifest's git work tree, else beside the manifest), "
    "or object storage: s3://BUCKET/PREFIX (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).",
)
@click.option(
    "--adopt", is_flag=True,
    help="This manifest was moved or renamed: continue the batch its folder holds (costs nothing; nothing done is sent again).",
)
@_common_run_options
def apply_cmd(
    manifest: Path, out: str | None, adopt: bool, base_url: str | None, sandbox: bool, state: str | None, **options: Any
) -> None:
    """Plan MANIFEST against its ledger and run what is not done yet.

    Example: lumozbatch apply manifests/sketch-portraits.yaml --sandbox
    """
    batch = open_batch(manifest, out=_out(out), sandbox=sandbox, base_url=base_url, state=state)
    batch.target()  # a missing key is exit 3 before anything else is said or written
    for warning in batch.warnings:
        click.echo(warning, err=True)  # the diagnostic already says "warning:"

    sys.exit(_run(batch, options, adopt=adopt))


@click.command("resume")
@click.argument("target_arg", metavar="OUTPUT_DIR|MANIFEST")
@_common_run_options
def resume_cmd(target_arg: str, base_url: str | None, sandbox: bool, state: str | None, **options: Any) -> None:
    """Finish the batch exactly as its ledger recorded it, even if the manifest changed or is gone.

    Example: lumozbatch resume outputs/sketch-portraits
    """
    sys.exit(_run(resume_batch(target_arg, sandbox=sandbox, base_url=base_url, state=state), options))


def _out(out: str | None) -> str | Path | None:
    """``--out``: an ``s3://`` URL as it is, else a folder."""
    from lumozbatch.shell.location import is_bucket_url

    if out is None or is_bucket_url(out):
        return out
    if not out:
        raise click.BadParameter("an empty folder name", param_hint="'--out'")
    return Path(out)
