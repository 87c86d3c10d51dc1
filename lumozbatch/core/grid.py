"""Manifest -> JobSpecs, streaming and in a fixed order.

Order: jobs in manifest order; within a job the product of its axes (matrix axes in order,
first slowest, then the zip group) minus ``exclude``, then the ``include`` entries; within a
combination its repeats. ``index`` is the combination's position in its job (0-based, after
exclude), ``repeat`` the repeat index (0-based). Output names: ``lumozbatch.core.filenames``;
the checks that need the expanded grid: ``lumozbatch.core.gridcheck``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

from lumozbatch.core.filenames import output_name
from lumozbatch.core.identity import compute_identity, final_value
from lumozbatch.core.jobspec import JobSpec
from lumozbatch.core.manifest import Axis, JobDef, Manifest, value_key
from lumozbatch.core.templates import TemplateError
from lumozbatch.core.where import Where
from lumozbatch.errors import ManifestError

__all__ = ["Place", "combination_params", "combinations", "expand", "written_at"]

#: where a combination's last value was written: a list of places and the index in it
Place = tuple[Sequence[Where], int]


def written_at(place: Place) -> Where:
    places, j = place
    return places[j]


def combinations(jobdef: JobDef) -> Iterator[tuple[int, dict[str, Any], Place]]:
    """``(index, variables, where its last value was written)`` for each combination of
    ``jobdef`` (the place, not a ``Where``: one is made only for a diagnostic)."""
    index = 0
    if jobdef.axes:
        excluding = bool(jobdef.exclude)
        outer, *inner = jobdef.axes
        last = jobdef.axes[-1]
        # Each inner axis's parts are made once and reused for every row outside it; the first
        # (slowest) axis is read a row at a time, so a long list (a 100,000-seed axis) is never
        # held as one dict per row beside the manifest.
        inner_parts = [list(_parts(axis, excluding)) for axis in inner]
        for first in _parts(outer, excluding):
            for rest in itertools.product(*inner_parts):
                parts = (first, *rest)
                if excluding and _excluded(jobdef, parts):
                    continue
                variables: dict[str, Any] = {}
                for part in parts:
                    variables.update(part[0])
                yield index, variables, (last.wheres, parts[-1][2])
                index += 1
    include_wheres = [where for _, where in jobdef.include]
    for k, (combo, _) in enumerate(jobdef.include):
        yield index, dict(combo), (include_wheres, k)
        index += 1
    if not jobdef.axes and not jobdef.include:
        yield 0, {}, ((jobdef.where,), 0)


_Part = tuple[dict[str, Any], dict[str, str], int]


def _parts(axis: Axis, excluding: bool) -> Iterator[_Part]:
    """Each row of ``axis``: its variables, their keys (only to match ``exclude``), and its
    index."""
    names = axis.names
    for j, row in enumerate(axis.rows()):
        yield dict(zip(names, row)), {n: value_key(v) for n, v in zip(names, row)} if excluding else {}, j


def _excluded(jobdef: JobDef, parts: tuple[_Part, ...]) -> bool:
    keys: dict[str, str] = {}
    for part in parts:
        keys.update(part[1])
    return any(all(keys[k] == v for k, v in entry.items()) for entry in jobdef.exclude)


def combination_params(jobdef: JobDef, variables: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The final parameters of one combination, and (param, problem) for templates that failed."""
    params = dict(jobdef.params)
    failures: list[tuple[str, str]] = []
    for name in jobdef.param_vars:
        params[name] = final_value(name, variables[name])
    for name, template in jobdef.templates.items():
        if name in jobdef.param_vars:
            continue
        try:
            params[name] = final_value(name, template.render(variables))
        except TemplateError as exc:
            failures.append((name, str(exc)))
            params[name] = template.source
    return params, failures


def expand(manifest: Manifest) -> Iterator[JobSpec]:
    """Every JobSpec of a validated manifest, lazily, in a fixed order (see the module doc)."""
    for jobdef in manifest.jobs:
        for index, variables, _ in combinations(jobdef):
            params, failures = combination_params(jobdef, variables)
            if failures:  # load_manifest's check rules this out; never send a half-filled prompt
                raise ManifestError([jobdef.where.diag(f"{failures[0][0]}: {failures[0][1]}")])
            for r in range(jobdef.repeat):
                identity = compute_identity(jobdef.model, params, r, jobdef.repeat)
                yield JobSpec(
                    job=jobdef.id,
                    index=index,
                    repeat=r,
                    model=jobdef.model,
                    params=params if jobdef.repeat == 1 else dict(params),
                    variables=variables,
                    identity=identity,
                    filename=output_name(jobdef, index, r, variables, identity),
                    known_model=jobdef.known_model,
                )
