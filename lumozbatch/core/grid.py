"""Manifest -> JobSpecs, streaming and in a fixed order.

Order: jobs in manifest order; within a job the product of its axes (matrix axes in order,
first slowest, then the zip group) minus ``exclude``, then the ``include`` entries; within a
combination its repeats. ``index`` is the combination's position in its job (0-based, after
exclude), ``repeat`` the repeat index (0-based). Output names: ``lumozbatch.core.filenames``;
the checks that need the expanded grid: ``lumozbatch.core.gridcheck``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from lumozbatch.core.filenames import output_name
from lumozbatch.core.identity import compute_identity, final_value
from lumozbatch.core.jobspec import JobSpec
from lumozbatch.core.manifest import JobDef, Manifest
from lumozbatch.core.templates import TemplateError
from lumozbatch.core.where import Where
from lumozbatch.errors import ManifestError

__all__ = ["combination_params", "combinations", "expand"]


def combinations(jobdef: JobDef) -> Iterator[tuple[int, dict[str, Any], tuple[Where, ...]]]:
    """``(index, variables, where the values were written)`` for each combination of ``jobdef``."""
    index = 0
    if jobdef.axes:
        per_axis = [
            [(dict(zip(axis.names, row)), dict(zip(axis.names, keys)), where) for row, keys, where in zip(axis.rows, axis.keys, axis.wheres)]
            for axis in jobdef.axes
        ]
        for parts in itertools.product(*per_axis):
            if jobdef.exclude:
                keys: dict[str, str] = {}
                for part in parts:
                    keys.update(part[1])
                if any(all(keys[k] == v for k, v in entry.items()) for entry in jobdef.exclude):
                    continue
            variables: dict[str, Any] = {}
            for part in parts:
                variables.update(part[0])
            yield index, variables, tuple(part[2] for part in parts)
            index += 1
    for combo, where in jobdef.include:
        yield index, dict(combo), (where,)
        index += 1
    if not jobdef.axes and not jobdef.include:
        yield 0, {}, ()


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
