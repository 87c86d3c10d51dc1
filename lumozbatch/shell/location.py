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

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BatchHome", "absolute", "batch_home", "bucket_home", "bucket_url", "find_out_dir", "is_bucket_url", "manifest_name",
    "shown", "work_tree_top",
]

BUCKET_SCHEMES = ("s3://",)

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


def is_bucket_url(out: str | Path | None) -> bool:
    """Whether ``out`` names object storage (``s3://BUCKET/PREFIX``) rather than a folder."""
    return isinstance(out, str) and out.startswith(BUCKET_SCHEMES)


def bucket_url(out: str) -> str:
    """An ``s3://`` URL as a batch records it: no slash at its end (``s3://b/p/`` is ``s3://b/p``)."""
    scheme, _, rest = out.partition("://")
    return f"{scheme}://{rest.rstrip('/')}"


def bucket_home(url: str, environ: Mapping[str, str] | None = None) -> Path:
    """The local home of a batch whose outputs are in object storage: its SQLite state (when
    no ``--state`` is given), lock, webhook secret and rate-limit figures, never the working
    folder. ``$XDG_STATE_HOME/lumozbatch/<url as a name>-<hash>/`` (default ``~/.local/state``),
    keyed by the output URL."""
    env = os.environ if environ is None else environ
    root = Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    canonical = url.rstrip("/")
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", canonical.split("://", 1)[-1]).strip("_")[:80]
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:12]
    return root / "lumozbatch" / f"{readable}-{digest}"


def find_out_dir(arg: str) -> Path:
    """``OUTPUT_DIR`` as given, or for a ``MANIFEST`` its batch's default folder
    (``batch_home``), as text shows it (``shown``)."""
    from lumozbatch.errors import UsageError

    path = Path(arg)
    if path.is_dir():
        return path
    if not path.is_file():
        raise UsageError(f"{arg}: no such folder or manifest")
    return shown(batch_home(path, manifest_name(arg)).out_dir)


def manifest_name(arg: str) -> str:
    """The ``name`` of the manifest at ``arg``, read alone (a manifest that no longer
    validates must not hide the batch it made), checked against the same size cap and name
    pattern as ``validate``."""
    import yaml

    from lumozbatch.errors import UsageError
    from lumozbatch.manifest_io import MAX_MANIFEST_BYTES
    from lumozbatch.resources import manifest_schema

    path = Path(arg)
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise UsageError(f"{arg}: larger than 4 MiB, not a manifest")
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UsageError(f"{arg}: not a readable manifest ({exc.__class__.__name__})") from None
    except OSError as exc:  # permission denied, an I/O error
        raise UsageError(f"cannot read {arg}: {exc.strerror or exc}") from None
    name = document.get("name") if isinstance(document, dict) else None
    pattern = manifest_schema()["properties"]["name"]["pattern"]
    if not isinstance(name, str) or not re.search(pattern, name):
        raise UsageError(
            f"{arg}: the manifest has no valid 'name', so its output folder is unknown",
            details=["give the output folder instead (the one that holds .lumozbatch/)"],
        )
    return name
