"""Output names as paths inside the output folder (no trio, no httpx: ``status`` and the
outputs' checks import this without the download stack)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["safe_join", "safe_target"]


def safe_target(out_dir: Path, stem: str) -> Path:
    """``out_dir/stem`` with no way out of ``out_dir`` (absolute paths, ``..``, empty parts).

    A lexical check, no filesystem calls: the names come from the planner's templates, and
    a folder the user symlinked inside the output folder is theirs to choose.
    """
    _check(stem)
    return out_dir.joinpath(stem)


def safe_join(out_dir: str, stem: str) -> str:
    """:func:`safe_target` as a string (a run's check of every output stats two names a
    job: building ``Path`` objects cost ten times the ``stat`` calls)."""
    _check(stem)
    return f"{out_dir}/{stem}"


def _check(stem: str) -> None:
    # no part "", "." or "..": searched in C (a run checks two names a job, a million jobs)
    wrapped = f"/{stem}/"
    if "//" in wrapped or "/./" in wrapped or "/../" in wrapped:
        raise ValueError(f"output name {stem!r} would leave the output folder")
