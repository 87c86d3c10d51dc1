"""A place a diagnostic points at: a path in the manifest, or a line of a ``file:`` source."""

from __future__ import annotations

from dataclasses import dataclass

from lumozbatch.errors import Diagnostic

__all__ = ["Where"]


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
