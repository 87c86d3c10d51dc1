"""Output names as paths inside the output folder (no trio, no httpx: ``status`` and the
outputs' checks import this without the download stack)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["safe_target"]

_NOT_A_NAME = frozenset(("..", ".", ""))


def safe_target(out_dir: Path, stem: str) -> Path:
    """``out_dir/stem`` with no way out of ``out_dir`` (absolute paths, ``..``, empty parts).

    A lexical check, no filesystem calls: the names come from the planner's templates, and
    a folder the user symlinked inside the output folder is theirs to choose.
    """
    # string checks, one path built: status checks a thousand names, apply every one
    if not stem or stem.startswith("/") or any(p in _NOT_A_NAME for p in stem.split("/")):
        raise ValueError(f"output name {stem!r} would leave the output folder")
    return out_dir.joinpath(stem)
