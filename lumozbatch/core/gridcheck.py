"""The checks only the expanded grid shows: templated values a model refuses, format specs
that do not fit a value, unsafe or colliding filenames, and two generations with one identity.

Streams the grid once, keeping 16 bytes a generation: a 64-bit hash of its identity and one
of its folded filename. Only when two hashes meet is the grid read again, to describe the
generations that really share an identity or a name (a million-job grid is checked in tens of
MB, not the ~500 MB a dict of every identity and name took). At most ``_PER_KIND``
diagnostics of one kind per job, then one line counts the rest.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

from lumozbatch.core.catalogue import SchemaCatalogue
from lumozbatch.core.filenames import filename_problem, filename_value_problem, output_name
from lumozbatch.core.grid import combination_params, combinations, written_at
from lumozbatch.core.identity import compute_identity
from lumozbatch.core.manifest import JobDef, Manifest
from lumozbatch.core.paramschema import always_valid_text, value_problem
from lumozbatch.core.templates import TemplateError
from lumozbatch.core.where import Where
from lumozbatch.errors import Diagnostic

__all__ = ["check", "repeated"]

_PER_KIND = 10


@dataclass
class _Seen:
    job: str
    index: int
    repeat: int
    variables: dict[str, Any]

    def describe(self) -> str:
        what = f"job {self.job!r} #{self.index}"
        if self.variables:
            what += " (" + _describe(self.variables) + ")"
        if self.repeat:
            what += f" repeat {self.repeat}"
        return what


def _describe(variables: dict[str, Any]) -> str:
    parts = []
    for k, v in variables.items():
        shown = repr(v) if not isinstance(v, str) or len(v) <= 40 else repr(v[:37] + "...")
        parts.append(f"{k}={shown}")
    return ", ".join(parts)


class _CappedDiagnostics:
    """Diagnostics, at most ``_PER_KIND`` of one kind per job."""

    def __init__(self) -> None:
        self.errors: list[Diagnostic] = []
        self.counts: dict[tuple[str, str], int] = {}
        self.first: dict[tuple[str, str], Where] = {}

    def add(self, job: str, kind: str, where: Where, message: str) -> None:
        key = (job, kind)
        n = self.counts.get(key, 0) + 1
        self.counts[key] = n
        if n <= _PER_KIND:
            self.errors.append(where.diag(message))
            self.first[key] = where

    def finish(self) -> list[Diagnostic]:
        for key, n in self.counts.items():
            if n > _PER_KIND:
                self.errors.append(self.first[key].diag(f"... and {n - _PER_KIND} more like the above in job {key[0]!r}"))
        return self.errors


@dataclass
class _Grid:
    """What one pass over the grid remembers."""

    catalogue: SchemaCatalogue
    out: _CappedDiagnostics = field(default_factory=_CappedDiagnostics)
    verdicts: dict[tuple[str, str], str | None] = field(default_factory=dict)  # (model\0param, value) -> problem
    #: hash() of each generation's identity, and of its folded name when that name is safe
    identity_hashes: array[int] = field(default_factory=lambda: array("q"))
    name_hashes: array[int] = field(default_factory=lambda: array("q"))


def check(manifest: Manifest, catalogue: SchemaCatalogue) -> list[Diagnostic]:
    """Every problem of ``manifest`` that only its expanded grid shows (see the module doc)."""
    grid = _Grid(catalogue)
    for jobdef in manifest.jobs:
        to_check = [
            name
            for name, template in jobdef.templates.items()
            if jobdef.known_model
            and name not in jobdef.param_vars
            and not always_valid_text(catalogue, jobdef.model, name, len(template.literal))
        ]
        for index, variables, _ in combinations(jobdef):
            params, failures = combination_params(jobdef, variables)
            for name, problem in failures:
                where = jobdef.param_wheres.get(name, jobdef.where)
                grid.out.add(jobdef.id, "template:" + name, where, f"{problem} (for {_describe(variables)})")
            for name in to_check:
                _check_templated_value(grid, jobdef, name, params[name], variables)
            for r in range(jobdef.repeat):
                _check_generation(grid, jobdef, index, r, params, variables)
    same_identity, same_name = repeated(grid.identity_hashes), repeated(grid.name_hashes)
    if same_identity or same_name:
        _describe_duplicates(manifest, grid.out, same_identity, same_name)
    return grid.out.finish()


def _check_templated_value(grid: _Grid, jobdef: JobDef, name: str, value: Any, variables: dict[str, Any]) -> None:
    if not isinstance(value, str):
        return
    key = (jobdef.model + "\0" + name, value)
    if key not in grid.verdicts:
        grid.verdicts[key] = value_problem(grid.catalogue, jobdef.model, name, value)
    if grid.verdicts[key] is not None:
        where = jobdef.param_wheres.get(name, jobdef.where)
        prefix = "" if where.path.endswith(name) else f"{name}: "
        message = f"{prefix}{grid.verdicts[key]} after filling the template (for {_describe(variables)})"
        grid.out.add(jobdef.id, "value:" + name, where, message)


def _check_generation(
    grid: _Grid, jobdef: JobDef, index: int, r: int, params: dict[str, Any], variables: dict[str, Any]
) -> None:
    """One generation: its filename safe; its identity's and name's hashes kept for later."""
    identity = compute_identity(jobdef.model, params, r, jobdef.repeat)
    grid.identity_hashes.append(hash(identity))
    name = _safe_name(grid.out, jobdef, index, r, variables, identity)
    if name is not None:
        grid.name_hashes.append(hash(name.casefold()))


def _safe_name(
    out: _CappedDiagnostics | None, jobdef: JobDef, index: int, r: int, variables: dict[str, Any], identity: str
) -> str | None:
    """The generation's output name, or None (said to ``out`` when given) if it is unsafe."""
    try:
        name = output_name(jobdef, index, r, variables, identity)
    except TemplateError as exc:
        if out is not None:
            out.add(jobdef.id, "filename", jobdef.filename_where, f"{exc} (for {_describe(variables)})")
        return None
    problem = filename_problem(name)
    if problem is None and jobdef.filename is not None:
        problem = filename_value_problem(jobdef.filename, variables)
    if problem is not None:
        if out is not None:
            seen = _Seen(jobdef.id, index, r, variables)
            out.add(jobdef.id, "filename", jobdef.filename_where, f"{problem} (for {seen.describe()})")
        return None
    return name


def repeated(hashes: array[int]) -> set[int]:
    """The hashes that occur more than once (sorted: a few MB beside the array, no set of all)."""
    ordered = sorted(hashes)
    return {a for a, b in zip(ordered, ordered[1:]) if a == b}


def _describe_duplicates(manifest: Manifest, out: _CappedDiagnostics, same_identity: set[int], same_name: set[int]) -> None:
    """Read the grid again, remembering only the generations whose hash was repeated, and
    say which share an identity (paid twice) or a name (one file overwrites another)."""
    identities: dict[str, _Seen] = {}
    filenames: dict[str, _Seen] = {}
    for jobdef in manifest.jobs:
        for index, variables, place in combinations(jobdef):
            params, _ = combination_params(jobdef, variables)
            for r in range(jobdef.repeat):
                identity = compute_identity(jobdef.model, params, r, jobdef.repeat)
                seen = _Seen(jobdef.id, index, r, variables)
                if hash(identity) in same_identity:
                    earlier = identities.setdefault(identity, seen)
                    if earlier is not seen:
                        out.add(jobdef.id, "identity", written_at(place), f"{seen.describe()} is the same generation as {earlier.describe()} (same model and parameters); it would be paid twice")
                if not same_name:
                    continue
                name = _safe_name(None, jobdef, index, r, variables, identity)
                if name is None or hash(folded := name.casefold()) not in same_name:
                    continue
                other = filenames.setdefault(folded, seen)
                if other is not seen:
                    out.add(jobdef.id, "collision", jobdef.filename_where, f"{seen.describe()} and {other.describe()} would both be written to {name!r}; add a varying part such as {{key}} or {{index}}")
