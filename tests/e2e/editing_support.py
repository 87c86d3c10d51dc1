"""Helpers of the manifest-editing stories (issue #9): a git repository made by the test,
manifests edited as a user edits them, and the images on disk read by their pixels.

The sandbox's own counters (``Sandbox.stats()``) say what was paid; the files on disk, hashed
and decoded, say what the user sees.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
}
OBJECTS = ".lumozbatch/objects"
PRICE = 0.025  # per generation of flux-sketch-smudge in every manifest written here


def git(repo: Path, *args: str) -> None:
    import os

    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, timeout=30,
                   env={**os.environ, **GIT_ENV})


def make_repo(tmp_path: Path) -> Path:
    """``<tmp>/repo``: a git work tree with an empty ``manifests/`` folder."""
    repo = tmp_path / "repo"
    (repo / "manifests").mkdir(parents=True)
    git(repo, "init", "-q")
    return repo


@dataclass
class Spec:
    """The parts of a manifest these stories edit."""

    name: str
    subjects: list[str] = field(default_factory=lambda: ["cat", "dog"])
    seeds: list[int] = field(default_factory=lambda: [1, 2])
    style: str = "charcoal"  # inside the prompt text: not a variable, so the names stay
    extra: str = ""

    def text(self) -> str:
        subjects = ", ".join(json.dumps(s) for s in self.subjects)
        seeds = ", ".join(str(s) for s in self.seeds)
        return f"""version: 1
name: {self.name}
defaults:
  aspect_ratio: "1:1"
  output_format: png
jobs:
  - id: grid
    model: flux-sketch-smudge
    params:
      prompt: "Sketch Smudge, {{subject}}, drawn in {self.style}"
      num_inference_steps: 28
    matrix:
      subject: [{subjects}]
      seed: [{seeds}]
    filename: "{{job}}/{{subject}}-s{{seed}}"
pricing: {{flux-sketch-smudge: {PRICE}}}
{self.extra}"""

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.text())
        return path

    @property
    def names(self) -> list[str]:
        """The named files, relative to the output folder."""
        return [f"grid/{s}-s{n}.png" for s in self.subjects for n in self.seeds]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pixels(path: Path) -> bytes:
    """The decoded image (not the file's bytes: the embedded metadata differs between runs)."""
    with Image.open(path) as image:
        return image.convert("RGB").tobytes()


def snapshot(out_dir: Path, names: list[str]) -> dict[str, tuple[str, bytes]]:
    """Each named file's sha256 and pixels."""
    return {n: (sha256(out_dir / n), pixels(out_dir / n)) for n in names}


def kept_objects(out_dir: Path) -> dict[str, Path]:
    """Every file of the output store, by its sha256."""
    root = out_dir / OBJECTS
    return {sha256(p): p for p in root.rglob("*") if p.is_file()} if root.is_dir() else {}


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def event(stdout: str, kind: str) -> dict[str, Any]:
    found = [e for e in events(stdout) if e.get("event") == kind]
    assert len(found) == 1, f"{len(found)} {kind!r} events in: {stdout[-2000:]}"
    return found[0]


def doc(stdout: str) -> dict[str, Any]:
    """The one JSON document ``plan --json`` / ``status --json`` print."""
    return json.loads(stdout)


_SPENT = re.compile(r"spent: (\$[0-9][0-9,]*\.[0-9]+) for (\d+) generations?")


def summary_spent(stderr: str) -> tuple[str, int]:
    """The summary's "spent: $X for N generations" line, as ($X text, N)."""
    found = _SPENT.findall(stderr)
    assert found, f"no 'spent' line in the summary: {stderr[-2000:]}"
    money, count = found[-1]
    return money, int(count)


def created(stats: dict[str, Any]) -> int:
    """How many jobs the sandbox created (each one is paid)."""
    return int(stats["jobs_created"])
