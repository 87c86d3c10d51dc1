"""The command line. Errors become exit codes here, and only here.

Each command lives in its own module and is registered in ``COMMANDS`` below.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from lumozbatch.errors import LumozbatchError

# module name -> attribute holding the click command
COMMANDS: dict[str, str] = {
    "apply": "apply_cmd",
    "gallery": "gallery_cmd",
    "models": "models_cmd",
    "plan": "plan_cmd",
    "reproduce": "reproduce_cmd",
    "resume": "resume_cmd",
    "sandbox": "sandbox_cmd",
    "status": "status_cmd",
    "validate": "validate_cmd",
}


def _fail(message: str, details: list[str], code: int) -> None:
    click.echo(f"Error: {message}", err=True)
    for line in details:
        click.echo(f"  {line}", err=True)
    sys.exit(code)


class LumozbatchGroup(click.Group):
    """Turns domain errors into SPEC.md's exit codes, with one clear line and no traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LumozbatchError as exc:
            _fail(exc.message, exc.details, exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", [], 130)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug: still no traceback unless asked for
            if os.environ.get("LUMOZBATCH_DEBUG"):
                raise
            _fail(
                f"internal error: {type(exc).__name__}: {exc}",
                ["set LUMOZBATCH_DEBUG=1 to see the traceback, and please report it"],
                1,
            )


@click.group(cls=LumozbatchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lumozbatch")
def main() -> None:
    """Declarative batch image generation for the LumozAI API.

    Example: lumozbatch apply manifests/sketch-portraits.yaml --sandbox
    """


for _module, _attr in COMMANDS.items():
    main.add_command(getattr(importlib.import_module(f"lumozbatch.cli.{_module}"), _attr))
