"""A place a diagnostic points at: a path in the manifest, or a line of a ``file:`` source;
and ``Places``, where each value of a list was written, kept as two ints a value."""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lumozbatch.core.yamlsafe import PathKey, path_text
from lumozbatch.errors import Diagnostic

__all__ = ["Places", "Where"]


@dataclass(frozen=True, slots=True)
class Where:
    """A place to report: a manifest path, or a line of a source file."""

    file: str
    line: int
    col: int
    path: str = ""
    doc_path: tuple[str | int, ...] | None = None  # the path inside the manifest, when there

    def diag(self, message: str, severity: str = "error") -> Diagnostic:
        return Diagnostic(self.file, self.line, self.col, self.path, message, severity)


@dataclass(frozen=True, slots=True, eq=False)
class Places(Sequence[Where]):
    """Where each value of a list was written: item ``j`` is at ``path + (j,)`` in the
    manifest (``path`` None: line ``j`` of the source ``file``, path-less).

    A 100,000-seed list keeps 800 KB of positions here, not a ``Where`` (and its path text)
    per value; a ``Where`` is made only when a diagnostic or a check asks for one.
    """

    file: str
    path: PathKey | None
    positions: array[int]  # line, col of item 0, then of item 1...

    def __len__(self) -> int:
        return len(self.positions) // 2

    def __getitem__(self, j: int) -> Where:  # type: ignore[override]  # no slices: none needed
        if j < 0:
            j += len(self)
        if not 0 <= j < len(self):
            raise IndexError(j)
        line, col = self.positions[2 * j], self.positions[2 * j + 1]
        if self.path is None:
            return Where(self.file, line, col)
        doc_path = self.path + (j,)
        return Where(self.file, line, col, path_text(doc_path), doc_path)

    def __eq__(self, other: Any) -> bool:
        """Equal to any sequence of the same Wheres (a tuple of them too)."""
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))
