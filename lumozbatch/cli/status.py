"""``lumozbatch status OUTPUT_DIR|MANIFEST [--json]``: what the ledger knows. No network.

Besides the ledger (a read-only snapshot of ``state.db``: counts, causes and the first jobs
of each kind, never every job): a cheap look at the outputs on disk
(``shell.reconcile.survey_outputs``: stats, no hashing, the first ``SURVEY_LIMIT`` done
jobs), the prices of the batch's manifest when it is readable (for the cost of the spent),
and whether a run is in progress (its pid, from the lock file, without taking it).
"""

from __future__ import annotations

import json

import click

from lumozbatch.cli.options import state_option

__all__ = ["SURVEY_LIMIT", "status_cmd"]

#: Done jobs whose outputs ``status`` looks at (a record read and two stats each, ~0.25 ms): a
#: huge batch answers at once, and says how many it looked at; ``apply`` checks every one.
#: (20,000 took 5 s of a 1,000,000-job status, whose budget is 1 s.)
SURVEY_LIMIT = 1_000


@click.command("status")
@click.argument("target", metavar="OUTPUT_DIR|MANIFEST")
@click.option("--json", "json_out", is_flag=True, help="Print one JSON object instead of the table.")
@state_option
def status_cmd(target: str, json_out: bool, state: str | None) -> None:
    """Show what the batch's ledger knows: jobs per state, each failure with its reason,
    ambiguous submissions, outputs missing from disk, what was spent, and the commands that
    continue or retry. Sends nothing. A MANIFEST means its batch's default folder (named in
    the first line).

    Example: lumozbatch status outputs/sketch-portraits
    """
    from lumozbatch.batch import resume_batch
    from lumozbatch.shell.location import absolute
    from lumozbatch.shell.recorded_pricing import recorded_pricing
    from lumozbatch.shell.reconcile import survey_outputs
    from lumozbatch.ui.status import OutputsSeen, render_status, status_data

    batch = resume_batch(target, state=state)
    out_dir = batch.out_dir  # a MANIFEST's default folder, as text shows it
    with batch.status() as reads:  # LedgerNotFound (exit 2) when there is none
        outputs = batch.read_outputs(reads.batch)
        try:
            survey = survey_outputs(reads, outputs, limit=SURVEY_LIMIT)
        finally:
            outputs.close()
        shown = out_dir if outputs.shown == str(out_dir) else outputs.shown  # a folder, or the bucket
        seen = OutputsSeen(
            restorable=survey.restorable, unkept=survey.unkept, lost=survey.lost,
            lost_count=survey.lost_count, checked=survey.checked, of=survey.of,
        )
        # the snapshot names the batch's API: no second lookup of the batch by name
        running = batch.state.running(out_dir, name=batch.name, api=(reads.batch or {}).get("api"))
        options = {"outputs": seen, "pricing": recorded_pricing(reads.batch), "running": running}
        if json_out:  # machines get the folder absolute
            where = absolute(out_dir) if shown is out_dir else shown
            click.echo(json.dumps(status_data(reads, out_dir=where, **options), ensure_ascii=False, indent=2))
        else:
            click.echo(render_status(reads, out_dir=shown, **options), nl=False)
