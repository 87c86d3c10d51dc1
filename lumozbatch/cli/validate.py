"""``lumozbatch validate MANIFEST...``: schema and semantic checks of every file, no network."""

from __future__ import annotations

import click

from lumozbatch.core.wording import count
from lumozbatch.errors import ManifestError, UsageError

__all__ = ["validate_cmd"]


@click.command("validate")
@click.argument("manifests", nargs=-1, required=True, metavar="MANIFEST...")
def validate_cmd(manifests: tuple[str, ...]) -> None:
    """Check manifests without sending anything: every error of every file at once, each as
    file:line:col, the path inside the document, and what was expected. Exit 0 when all are
    valid (warnings are printed), 2 otherwise.

    Example: lumozbatch validate manifests/*.yaml
    """
    from lumozbatch.manifest_io import UnreadableManifest, load_manifest

    details: list[str] = []
    invalid = 0
    errors = 0
    for path in manifests:
        try:
            manifest = load_manifest(path)
        except UnreadableManifest as exc:
            if len(manifests) == 1:
                raise  # one line: "cannot read m.yaml: it is a directory, not a file"
            invalid += 1
            errors += 1
            details.append(exc.message)
            continue
        except ManifestError as exc:
            invalid += 1
            found = [d for d in exc.diagnostics if d.severity == "error"]
            errors += len(found)
            details.extend(exc.details)
            continue
        for warning in manifest.warnings:
            click.echo(str(warning), err=True)
        jobs = len(manifest.jobs)
        total = manifest.count()
        click.echo(f"{path}: valid ({count(jobs, 'job')}, {count(total, 'generation')})")
    if invalid:
        files = f"{invalid} of {len(manifests)} manifests" if len(manifests) > 1 else manifests[0]
        raise UsageError(f"{files} invalid: {count(errors, 'error')}", details=details)
