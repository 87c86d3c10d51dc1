"""Collecting the diagnostics found while a manifest is built, located in its document."""

from __future__ import annotations

from lumozbatch.core.where import Places, Where
from lumozbatch.core.yamlsafe import Document, PathKey, path_text
from lumozbatch.errors import Diagnostic

__all__ = ["Diagnostics", "ordered"]


class Diagnostics:
    """The errors and warnings found so far; ``doc`` locates a manifest path."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []

    def where(self, path: PathKey, *, key: bool = False) -> Where:
        line, col = self.doc.mark(path, key=key)
        return Where(self.doc.file, line, col, path_text(path), tuple(path))

    def places(self, path: PathKey) -> Places:
        """Where each item of the list at ``path`` was written (the document's own array)."""
        return Places(self.doc.file, tuple(path), self.doc.items[tuple(path)])

    def error(self, path: PathKey, message: str, *, key: bool = False) -> None:
        self.errors.append(self.doc.diag(path, message, key=key))

    def error_at(self, where: Where, message: str) -> None:
        self.errors.append(where.diag(message))

    def warn(self, path: PathKey, message: str, *, key: bool = False) -> None:
        self.warnings.append(self.doc.diag(path, message, key=key, severity="warning"))


def ordered(diags: list[Diagnostic]) -> list[Diagnostic]:
    """Without repeats, sorted by file, line and column; errors before warnings on one spot."""
    seen: set[Diagnostic] = set()
    unique = [d for d in diags if not (d in seen or seen.add(d))]
    return sorted(unique, key=lambda d: (d.file, d.line, d.col, d.severity != "error"))
