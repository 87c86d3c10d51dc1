"""``lumozbatch init [DIR]``: start a repository of manifests (the work is in ``shell.repo_init``)."""

from __future__ import annotations

from pathlib import Path

import click

from lumozbatch.shell.repo_init import EXAMPLE_MANIFEST, init_repository

__all__ = ["init_cmd"]


@click.command("init")
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
def init_cmd(directory: Path) -> None:
    """Start a repository of manifests in DIRECTORY (default: here).

    Writes an example manifest, the JSON Schemas its modeline points at (so editors check and
    complete manifests with no network), a .gitignore for outputs and a README. Refuses to
    overwrite anything.

    Example: lumozbatch init my-batches
    """
    written = init_repository(directory)
    for path in written:
        click.echo(f"wrote {path}")
    example = directory / EXAMPLE_MANIFEST
    click.echo(f"next: lumozbatch validate {example} && lumozbatch apply {example} --sandbox")
