"""``lumozbatch status OUTPUT_DIR|MANIFEST [--json]``: what the ledger knows. No network."""

from __future__ import annotations

import json

import click

__all__ = ["status_cmd"]


@click.command("status")
@click.argument("target", metavar="OUTPUT_DIR|MANIFEST")
@click.option("--json", "json_out", is_flag=True, help="Print one JSON object instead of the table.")
def status_cmd(target: str, json_out: bool) -> None:
    """Show what the batch's ledger knows: jobs per state, each failure with its reason,
    ambiguous submissions, and the commands that continue or retry. Sends nothing. A
    MANIFEST means its batch's default folder (named in the first line).

    Example: lumozbatch status outputs/sketch-portraits
    """
    from lumozbatch.batch import resume_batch
    from lumozbatch.shell.location import absolute
    from lumozbatch.ui.status import render_status, status_data

    batch = resume_batch(target)
    out_dir = batch.out_dir  # a MANIFEST's default folder, as text shows it
    state = batch.status()  # LedgerNotFound (exit 2) when there is none
    if json_out:  # machines get the folder absolute
        click.echo(json.dumps(status_data(state, out_dir=absolute(out_dir)), ensure_ascii=False, indent=2))
    else:
        click.echo(render_status(state, out_dir=out_dir), nl=False)
