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

# command name -> "module:attribute" of its click command, imported only when that command
# runs, so `validate` does not pay for importing the sandbox's web stack.
COMMANDS: dict[str, str] = {
    "apply": "apply:apply_cmd",
    "gallery": "gallery:gallery_cmd",
    "init": "init:init_cmd",
    "models": "models:models_cmd",
    "plan": "plan:plan_cmd",
    "reproduce": "reproduce:reproduce_cmd",
    "resume": "apply:resume_cmd",
    "sandbox": "sandbox:sandbox_cmd",
    "schema": "schema:schema_cmd",
    "status": "status:status_cmd",
    "validate": "validate:validate_cmd",
}


def _fail(message: str, details: list[str], code: int) -> None:
    click.echo(f"Error: {message}", err=True)
    for line in details:
        click.echo(f"  {line}", err=True)
    sys.exit(code)


class LumozbatchGroup(click.Group):
    """Turns domain errors into SPEC.md's exit codes, with one clear line and no traceback.

    Commands are loaded lazily from ``COMMANDS``.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(f"lumozbatch.cli.{module}"), attr)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LumozbatchError as exc:
            _fail(exc.message, exc.details, exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", [], 130)
        except BrokenPipeError:
            # `lumozbatch models | head`: the reader left; that is not an error of ours.
            _silence_stdout()
            sys.exit(0)
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


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


@click.group(cls=LumozbatchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lumozbatch")
def main() -> None:
    """Declarative batch image generation for the LumozAI API.

    Example: lumozbatch apply manifests/sketch-portraits.yaml --sandbox
    """

