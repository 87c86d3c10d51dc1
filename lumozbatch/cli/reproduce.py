"""``lumozbatch reproduce IMAGE``: the one-job manifest that regenerates an image."""

from __future__ import annotations

from pathlib import Path

import click

from lumozbatch.errors import UsageError

__all__ = ["reproduce_cmd"]


@click.command("reproduce")
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--schema",
    default="../schemas/manifest.editor.schema.json",
    show_default=True,
    help="Schema path or URL for the editor modeline (relative to where you save the manifest).",
)
def reproduce_cmd(image: Path, schema: str) -> None:
    """Print a one-job manifest (version 1 YAML) that regenerates IMAGE, from the model and
    parameters (with the concrete seed) that lumozbatch stored inside it.

    Example: lumozbatch reproduce outputs/sketch-portraits/portraits/a-b.webp > manifests/again.yaml
    """
    from lumozbatch.provenance import read_metadata
    from lumozbatch.ui.reproduce import reproduction_manifest

    meta = read_metadata(image)
    if meta is None:
        raise UsageError(
            f"{image} holds no lumozbatch metadata, so it cannot be reproduced",
            details=["only images downloaded by `lumozbatch apply` carry their parameters"],
        )
    click.echo(reproduction_manifest(meta, source=str(image), schema=schema), nl=False)
