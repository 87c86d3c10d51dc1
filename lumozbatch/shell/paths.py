"""Output names as paths inside the output folder (no trio, no httpx: ``status`` and the
outputs' checks import this without the download stack)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

__all__ = ["safe_target"]


def safe_target(out_dir: Path, stem: str) -> Path:
    """``out_dir/stem`` with no way out of ``out_dir`` (absolute paths, ``..``, empty parts).

    A lexical check, no filesystem calls: the names come from the planner's templates, and
    a folder the user symlinked inside the output folder is theirs to choose.
    """
    rel = PurePosixPath(stem)
    if not stem or rel.is_absolute() or any(p in ("..", ".", "") for p in stem.split("/")):
        raise ValueError(f"output name {stem!r} would leave the output folder")
    return out_dir.joinpath(*rel.parts)
