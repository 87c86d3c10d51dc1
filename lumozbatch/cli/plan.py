"""``lumozbatch plan MANIFEST [--json]``: what ``apply`` would do, without sending anything.

The counting is ``Batch.plan()`` (``core.plansummary``), the text and the JSON document
``ui.plan``; here: the options and the choice of output.
"""

from __future__ import annotations

import json
import time

import click

from lumozbatch.cli.options import state_option

__all__ = ["plan_cmd"]


@click.command("plan")
@click.argument("manifest_path", metavar="MANIFEST")
@click.option("--json", "json_out", is_flag=True, help="Print one JSON document instead of text.")
@click.option(
    "--out", "out_dir", metavar="DIR|s3://BUCKET/PREFIX",
    help="Output folder (default outputs/<name>/ at the top of the manifest's git work tree, else beside the manifest), or object storage.",
)
@state_option
def plan_cmd(manifest_path: str, json_out: bool, out_dir: str | None, state: str | None) -> None:
    """Expand the manifest's grid and show what apply would do against the batch's ledger
    (new, done, in flight, failed, ambiguous, no longer in the manifest): generations per job
    and per model, the variables that vary, and the estimated cost when the manifest gives
    prices, and the folder it compared against. Sends nothing.

    Example: lumozbatch plan manifests/sketch-portraits.yaml --json
    """
    from lumozbatch.batch import open_batch
    from lumozbatch.shell.location import absolute
    from lumozbatch.ui.eta import calls_needed
    from lumozbatch.ui.plan import plan_data, render_plan
    from lumozbatch.ui.ratelimit_file import eta_for, load_snapshot, plan_eta_line

    batch = open_batch(manifest_path, out=out_dir, state=state)
    summary = batch.plan()
    new, in_flight = summary.counts["new"], summary.counts["in_flight"]
    if json_out:
        data = plan_data(summary, batch.warnings)
        data["out_dir"] = str(absolute(batch.out_dir))  # the text names it as typed, machines absolute
        # Only a previous run of this batch knows the rate limit; without one there is no ETA.
        data["eta_seconds"] = eta_for(load_snapshot(batch.out_dir), calls_needed(new, in_flight), now=time.time())
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    for warning in batch.warnings:
        click.echo(warning, err=True)
    click.echo(render_plan(summary), nl=False)
    eta = plan_eta_line(batch.out_dir, new=new, in_flight=in_flight, now=time.time()) if new + in_flight else None
    if eta:
        click.echo(f"  {eta}")
