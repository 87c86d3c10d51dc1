"""A repository like this one, made by a test: ``git init`` and the demo manifest in
``manifests/``. A manifest's batch lives at the top of its git work tree, so a test that
applied this checkout's own manifest would write into the checkout."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

MANIFESTS_DIR = Path(__file__).resolve().parents[2] / "manifests"


def git_init(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(folder)], check=True, timeout=30)
    return folder


def demo_repo(folder: Path, name: str = "sketch-portraits.yaml") -> Path:
    """``folder`` made a git repository holding ``manifests/<name>``; the manifest's path."""
    git_init(folder)
    (folder / "manifests").mkdir(exist_ok=True)
    return Path(shutil.copy(MANIFESTS_DIR / name, folder / "manifests" / name))
