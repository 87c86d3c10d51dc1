"""``lumozbatch gallery OUTPUT_DIR|MANIFEST``: (re)write the batch's index.html. No network."""

from __future__ import annotations

import click

__all__ = ["gallery_cmd"]


@click.command("gallery")
@click.argument("target", metavar="OUTPUT_DIR|MANIFEST")
def gallery_cmd(target: str) -> None:
    """Write index.html, a contact sheet of the batch's outputs laid out by the grid's axes
    (switch rows and columns on the page; it works offline, straight from the folder).

    A MANIFEST means its batch's default folder; the line printed names the file written.

    Example: lumozbatch gallery outputs/sketch-portraits
    """
    from lumozbatch.errors import UsageError
    from lumozbatch.shell.location import find_out_dir
    from lumozbatch.ui.gallery import GALLERY_FILE, write_gallery

    out_dir = find_out_dir(target)
    try:
        path = write_gallery(out_dir)
    except OSError as exc:  # a read-only folder, something in the way of index.html
        raise UsageError(
            f"cannot write the gallery {out_dir / GALLERY_FILE}: {exc.strerror or exc}"
        ) from None
    click.echo(f"wrote {path}")
