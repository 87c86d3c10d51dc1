"""Reading manifests from disk: the file (size-capped, UTF-8 text only) and its ``file:`` sources.

``load_manifest`` is the one entry point the rest of lumozbatch uses; it returns a Manifest
that ``lumozbatch.core.grid.expand`` can expand without further checks, or raises
``ManifestError`` holding every problem found.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from lumozbatch.core import gridcheck
from lumozbatch.core.build import build_partial, source_refs
from lumozbatch.core.catalogue import SchemaCatalogue
from lumozbatch.core.diagnostics import ordered
from lumozbatch.core.manifest import Manifest, SourceText
from lumozbatch.core.yamlsafe import Document, parse_yaml
from lumozbatch.errors import Diagnostic, ManifestError
from lumozbatch.resources import schema_catalogue
from lumozbatch.core.wording import count

__all__ = ["MAX_MANIFEST_BYTES", "MAX_SOURCE_BYTES", "UnreadableManifest", "load_manifest", "read_text"]

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_SOURCE_BYTES = 64 * 1024 * 1024


class UnreadableManifest(ManifestError):
    """The manifest file itself cannot be read as text: one line says why."""

    def __init__(self, shown: str, reason: str) -> None:
        super().__init__([Diagnostic(shown, 1, 1, "", reason)])
        self.message = f"cannot read {shown}: {reason}"
        self.details = []


def read_text(path: Path, limit: int, hint: str = "") -> str:
    """The UTF-8 text of ``path``; raises ``OSError``/``ValueError`` with a readable reason."""
    if path.is_dir():
        raise ValueError("it is a directory, not a file")
    with path.open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"it is larger than {limit // (1024 * 1024)} MiB{hint}")
    if b"\x00" in data:
        raise ValueError("it is a binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"it is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


def _reason(exc: Exception) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


def load_manifest(path: str | os.PathLike[str], *, catalogue: SchemaCatalogue | None = None) -> Manifest:
    """Read, parse and fully validate a manifest (including its expanded grid) against
    ``catalogue`` (default: the shipped schemas, ``resources.schema_catalogue()``).

    Raises ``ManifestError`` with every problem (``UnreadableManifest`` when the file itself
    cannot be read). Warnings (unknown model, an exclude that drops nothing...) are in
    ``Manifest.warnings``.
    """
    if catalogue is None:
        catalogue = schema_catalogue()
    shown = os.fspath(path)
    file = Path(shown)
    try:
        text = read_text(file, MAX_MANIFEST_BYTES, "; long prompt lists belong in file: sources")
    except (OSError, ValueError) as exc:
        raise UnreadableManifest(shown, _reason(exc)) from None
    doc = parse_yaml(text, shown)
    manifest, problems = build_partial(doc, shown, _read_sources(doc, file, shown), catalogue)
    cap_mark = doc.mark(("limits", "max_generations"))
    del doc, text  # the grid check and the run need neither: free them before the grid's pass
    if manifest is not None:
        problems = ordered(problems + gridcheck.check(manifest, catalogue))
    if manifest is None or any(d.severity == "error" for d in problems):
        raise ManifestError(problems)
    return _warn_over_max_generations(manifest, cap_mark)


def _read_sources(doc: Document, file: Path, shown: str) -> dict[str, SourceText]:
    """The text of every ``file:`` source, read beside the manifest (or why it could not be)."""
    sources: dict[str, SourceText] = {}
    for _, ref in source_refs(doc):
        if ref in sources:
            continue
        target = file.parent / ref
        shown_ref = os.path.normpath(os.path.join(os.path.dirname(shown), ref))
        try:
            sources[ref] = SourceText(shown_ref, text=read_text(target, MAX_SOURCE_BYTES))
        except (OSError, ValueError) as exc:
            sources[ref] = SourceText(shown_ref, error=_reason(exc))
    return sources


def _warn_over_max_generations(manifest: Manifest, at: tuple[int, int]) -> Manifest:
    total = manifest.count()
    if manifest.max_generations is None or total <= manifest.max_generations:
        return manifest
    line, col = at
    warning = Diagnostic(
        manifest.path,
        line,
        col,
        "limits.max_generations",
        f"the manifest expands to {count(total, 'generation')}, more than max_generations "
        f"{manifest.max_generations}: apply will refuse it",
        "warning",
    )
    return dataclasses.replace(manifest, warnings=manifest.warnings + [warning])
