"""``lumozbatch schema [--path]``: where the installed JSON Schemas are, for pointing an editor there."""

from __future__ import annotations

from pathlib import Path

import click

from lumozbatch.core.editor_schema import EDITOR_SCHEMA_FILE
from lumozbatch.resources import schema_dir

__all__ = ["schema_cmd"]


@click.command("schema")
@click.option("--path", "folder", is_flag=True, help="Print only the folder holding the schemas.")
def schema_cmd(folder: bool) -> None:
    """Print the modeline that points an editor at the installed manifest schema.

    With --path, print the folder of the schemas (manifest.schema.json, the editor's entry
    schema and models/*.json) instead.

    Example: lumozbatch schema >> manifests/new.yaml
    """
    root = Path(str(schema_dir())).resolve()
    if folder:
        click.echo(str(root))
    else:
        click.echo(f"# yaml-language-server: $schema={(root / EDITOR_SCHEMA_FILE).as_uri()}")
