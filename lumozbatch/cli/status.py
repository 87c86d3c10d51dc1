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

__all__ = ["SURVEY_LIMIT", "status_cmd"]

#: Done jobs whose outputs ``status`` looks at (a record read and two stats each, ~0.25 ms): a
#: huge batch answers at once, and says how many it looked at; ``apply`` checks every one.
#: (20,000 took 5 s of a 1,000,000-job status, whose budget is 1 s.)
SURVEY_LIMIT = 1_000


@click.command("status")
@click.argument("target", metavar="OUTPUT_DIR|MANIFEST")
@click.option("--json", "json_out", is_flag=True, help="Print one JSON object instead of the table.")
def status_cmd(target: str, json_out: bool) -> None:
    """Show what the batch's ledger knows: jobs per state, each failure with its reason,
    ambiguous submissions, outputs missing from disk, what was spent, and the commands that
    continue or retry. Sends nothing. A MANIFEST means its batch's default folder (named in
    the first line).

    Example: lumozbatch status outputs/sketch-portraits
    """
    from lumozbatch.batch import resume_batch
    from lumozbatch.shell.ledger import run_in_progress
    from lumozbatch.shell.location import absolute
    from lumozbatch.shell.recorded_pricing import recorded_pricing
    from lumozbatch.shell.reconcile import survey_outputs
    from lumozbatch.ui.status import OutputsSeen, render_status, status_data

    batch = resume_batch(target)
    out_dir = batch.out_dir  # a MANIFEST's default folder, as text shows it
    with batch.status() as state:  # LedgerNotFound (exit 2) when there is none
        survey = survey_outputs(state, out_dir, limit=SURVEY_LIMIT)
        seen = OutputsSeen(
            restorable=survey.restorable, unkept=survey.unkept, lost=survey.lost,
            lost_count=survey.lost_count, checked=survey.checked, of=survey.of,
        )
        options = {"outputs": seen, "pricing": recorded_pricing(state.batch), "running": run_in_progress(out_dir)}
        if json_out:  # machines get the folder absolute
            click.echo(json.dumps(status_data(state, out_dir=absolute(out_dir), **options), ensure_ascii=False, indent=2))
        else:
            click.echo(render_status(state, out_dir=out_dir, **options), nl=False)
