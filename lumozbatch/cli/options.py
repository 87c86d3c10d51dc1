"""Options that several commands share."""

from __future__ import annotations

from typing import Any

import click

__all__ = ["state_option"]

state_option: Any = click.option(
    "--state", default=None, metavar="URL",
    help="Keep the batch's state in PostgreSQL (postgresql://USER@HOST/DB), shared by every machine "
    "that names it (else LUMOZBATCH_STATE; default .lumozbatch/state.db beside the outputs).",
)
