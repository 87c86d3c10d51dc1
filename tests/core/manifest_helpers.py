"""Build manifests from YAML text without reading the manifest from disk (the core is pure)."""

from __future__ import annotations

from lumozbatch.core import gridcheck
from lumozbatch.core.build import build_partial
from lumozbatch.core.catalogue import SchemaCatalogue
from lumozbatch.core.manifest import Manifest, SourceText
from lumozbatch.core.yamlsafe import parse_yaml
from lumozbatch.errors import Diagnostic, ManifestError
from lumozbatch.resources import schema_catalogue

HEAD = "version: 1\nname: t\n"


def job(body: str, model: str = "hidream-l1") -> str:
    """A one-job manifest (id ``j``) whose entry continues with ``body``."""
    return HEAD + f"jobs:\n  - id: j\n    model: {model}\n" + body


def build(
    text: str,
    sources: dict[str, str] | None = None,
    *,
    file: str = "m.yaml",
    check: bool = True,
    catalogue: SchemaCatalogue | None = None,
) -> Manifest:
    """What load_manifest does, minus the file reading; raises ManifestError.

    ``check=False`` skips the full-grid pass (for tests of huge grids' laziness); the
    catalogue defaults to the shipped schemas."""
    catalogue = catalogue or schema_catalogue()
    doc = parse_yaml(text, file)
    texts = {ref: SourceText(ref, text=body) for ref, body in (sources or {}).items()}
    manifest, problems = build_partial(doc, file, texts, catalogue)
    if manifest is not None and check:
        problems = problems + gridcheck.check(manifest, catalogue)
    if manifest is None or any(d.severity == "error" for d in problems):
        raise ManifestError(problems)
    return manifest


def errors(text: str, sources: dict[str, str] | None = None) -> list[Diagnostic]:
    try:
        build(text, sources)
    except ManifestError as exc:
        return [d for d in exc.diagnostics if d.severity == "error"]
    return []


def messages(text: str, sources: dict[str, str] | None = None) -> str:
    return "\n".join(str(d) for d in errors(text, sources))
