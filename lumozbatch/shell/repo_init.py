"""``lumozbatch init``: start a repository of manifests, checked and completed by editors offline.

Writes an example manifest whose modeline points at a copy of the schemas, a ``.gitignore``
for outputs and a short README. Nothing that exists is overwritten: if any of those files is
already there, nothing at all is written.
"""

from __future__ import annotations

from pathlib import Path

from lumozbatch.core.editor_schema import EDITOR_SCHEMA_FILE
from lumozbatch.errors import UsageError
from lumozbatch.shell.schema_files import copy_schemas, schema_files

__all__ = ["EXAMPLE_MANIFEST", "init_repository"]

EXAMPLE_MANIFEST = "manifests/example.yaml"
SCHEMA_FOLDER = "schemas"

_EXAMPLE = f"""\
# yaml-language-server: $schema=../{SCHEMA_FOLDER}/{EDITOR_SCHEMA_FILE}
#
# A small grid: 2 subjects x 2 seeds = 4 generations.
#   lumozbatch plan {EXAMPLE_MANIFEST}
#   lumozbatch apply {EXAMPLE_MANIFEST} --sandbox    (free, local, no account)
version: 1
name: example
defaults:
  aspect_ratio: "1:1"          # quoted: unquoted 1:1 is a YAML 1.1 number
  output_format: webp
jobs:
  - id: sketches
    model: flux-sketch-smudge
    params:
      prompt: "Sketch Smudge, {{subject}}, charcoal on cream paper"
      guidance: 3
    matrix:
      subject: ["a fox in the snow", "a lighthouse at dusk"]
      seed: [1, 2]             # named like a parameter, so it sets the seed
    filename: "{{job}}/{{subject}}-s{{seed}}"
limits:
  concurrency: 4
  max_generations: 20
pricing:
  flux-sketch-smudge: 0.025
"""

_GITIGNORE = """\
# lumozbatch's output folders (images, results.jsonl, the ledger): large, and not source
outputs/
"""

_README = f"""\
# Manifests for lumozbatch

Each `manifests/*.yaml` is a batch of LumozAI generations. `{SCHEMA_FOLDER}/` holds lumozbatch's
JSON Schemas: the modeline on a manifest's first line points an editor running a YAML language
server (VS Code's or Neovim's Red Hat YAML) at `{SCHEMA_FOLDER}/{EDITOR_SCHEMA_FILE}`, which checks
and completes the manifest's keys, the known model ids and every model parameter, offline.

```sh
git init && git add -A && git commit -m "manifests"
lumozbatch validate manifests/*.yaml
lumozbatch plan {EXAMPLE_MANIFEST}
lumozbatch apply {EXAMPLE_MANIFEST} --sandbox     # a free local imitation of the API
export LUMOZ_API_KEY=...                           # never in a manifest
lumozbatch apply {EXAMPLE_MANIFEST}
lumozbatch models                                  # the parameters each model takes
```

After upgrading lumozbatch, refresh the copy: `cp -r "$(lumozbatch schema --path)"/. {SCHEMA_FOLDER}/`.
"""


def _planned() -> dict[str, str | None]:
    """Relative path -> text (None: a schema file, copied from the installation)."""
    files: dict[str, str | None] = {EXAMPLE_MANIFEST: _EXAMPLE, ".gitignore": _GITIGNORE, "README.md": _README}
    files.update({f"{SCHEMA_FOLDER}/{name}": None for name in schema_files()})
    return files


def init_repository(target: Path) -> list[Path]:
    """Write the new repository's files under ``target``; returns them, in writing order.

    Raises ``UsageError`` (exit 2), naming every file in the way, before writing anything.
    """
    planned = _planned()
    in_the_way = sorted(p for p in planned if (target / p).exists() or (target / p).is_symlink())
    if (target / SCHEMA_FOLDER).exists() and not (target / SCHEMA_FOLDER).is_dir():
        in_the_way.insert(0, SCHEMA_FOLDER)
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} exists and is not a folder")
    if in_the_way:
        raise UsageError(
            f"{target} already has files that init would write; nothing was changed",
            details=[f"exists: {target / p}" for p in in_the_way],
        )
    written = copy_schemas(target / SCHEMA_FOLDER)
    for rel, text in planned.items():
        if text is None:
            continue
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as out:  # "x": a file that appeared meanwhile stays
            out.write(text)
        written.append(path)
    return written
