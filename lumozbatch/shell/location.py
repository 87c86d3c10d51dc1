"""Where a manifest's batch lives: the same manifest means the same batch from any folder.

A batch's default output folder is ``outputs/<name>/`` at the top of the git work tree that
holds the manifest, or, for a manifest outside any work tree, ``outputs/<name>/`` beside the
manifest itself; never relative to the folder the command happens to be typed in (running
``apply`` from another folder used to pay for the whole batch again into a new folder).

A batch also remembers *which* manifest made it (its ``manifest_key``): the manifest's path
inside its git work tree (``manifests/x.yaml``, the same on every clone), else its absolute
path. A folder holds one batch: another manifest with the same ``name`` is refused unless
the user says it was moved or renamed (``--adopt``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BatchHome", "absolute", "batch_home", "shown", "work_tree_top"]

OUTPUTS = "outputs"


def work_tree_top(folder: Path) -> Path | None:
    """The top of the git work tree holding ``folder`` (a ``.git`` folder, or the ``.git``
    file of a linked worktree or submodule), or None. No git process: a stat per level."""
    current = folder
    while True:
        if os.path.lexists(current / ".git"):
            return current
        parent = current.parent
        if parent == current:
            return None
        current = parent


@dataclass(frozen=True, slots=True)
class BatchHome:
    """A manifest's batch: its default output folder and the key that names its manifest."""

    out_dir: Path
    manifest_key: str  # path inside the git work tree (posix), else the absolute path
    in_git: bool


def batch_home(manifest: Path | str, name: str) -> BatchHome:
    """The default home of the batch ``name`` made by ``manifest`` (which need not exist)."""
    path = Path(os.path.abspath(manifest))
    # Resolve symlinks of the folders only: a manifest symlinked into a repository is that
    # repository's manifest under the link's name.
    folder = path.parent.resolve()
    path = folder / path.name
    top = work_tree_top(folder)
    if top is None:
        return BatchHome(out_dir=folder / OUTPUTS / name, manifest_key=str(path), in_git=False)
    return BatchHome(
        out_dir=top / OUTPUTS / name,
        manifest_key=path.relative_to(top).as_posix(),
        in_git=True,
    )


def absolute(path: Path | str) -> Path:
    """``path`` made absolute against the current folder, as ``--json`` names folders."""
    return Path(os.path.abspath(path))


def shown(path: Path | str) -> Path:
    """``path`` as text names it to a person: relative to the current folder when inside it
    (``outputs/x``, what they would type), else absolute. Still a working path from here."""
    full = absolute(path)
    try:
        return full.relative_to(os.getcwd())
    except ValueError:
        return full
