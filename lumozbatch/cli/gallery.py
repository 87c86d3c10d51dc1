"""``lumozbatch gallery OUTPUT_DIR|MANIFEST``: (re)write the batch's index.html. No network."""

from __future__ import annotations

import click

from lumozbatch.cli.options import state_option

__all__ = ["gallery_cmd"]


@click.command("gallery")
@click.argument("target", metavar="OUTPUT_DIR|MANIFEST")
@state_option
def gallery_cmd(target: str, state: str | None) -> None:
    """Write index.html, a contact sheet of the batch's outputs laid out by the grid's axes
    (switch rows and columns on the page; it works offline, straight from the folder, or
    served from the bucket).

    A MANIFEST means its batch's default folder; the line printed names the file written.

    Example: lumozbatch gallery outputs/sketch-portraits
    """
    from lumozbatch.batch import resume_batch
    from lumozbatch.errors import UsageError
    from lumozbatch.shell.outputs import GALLERY_FILE
    from lumozbatch.ui.gallery import write_gallery

    batch = resume_batch(target, state=state)
    with batch.status() as reads:  # LedgerNotFound (exit 2) when there is none
        outputs = batch.read_outputs(reads.batch)
        try:
            path = write_gallery(batch.out_dir, outputs, reads=reads)
        except OSError as exc:  # a read-only folder, something in the way of index.html
            raise UsageError(
                f"cannot write the gallery {outputs.shown.rstrip('/')}/{GALLERY_FILE}: {exc.strerror or exc}"
            ) from None
        finally:
            outputs.close()
    click.echo(f"wrote {path}")
