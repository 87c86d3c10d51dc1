"""Manifest -> JobSpecs, streaming and in a fixed order; and the checks that need the grid.

Order: jobs in manifest order; within a job the product of its axes (matrix axes in order,
first slowest, then the zip group) minus ``exclude``, then the ``include`` entries; within a
combination its repeats. ``index`` is the combination's position in its job (0-based, after
exclude), ``repeat`` the repeat index (0-based).

Filenames: the job's template (or ``output.filename``) filled with the variables and
``{job}``, ``{model}``, ``{index}``, ``{repeat}``, ``{key}``; else a readable default:
``<job>/<index>-<values of the variables that vary, slugified>`` (``-r<repeat>`` added when
``repeat > 1``; just ``<job>`` for a job of one generation).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lumozbatch.core.explain import always_valid_text, value_problem
from lumozbatch.core.identity import compute_identity, final_value
from lumozbatch.core.jobspec import JobSpec
from lumozbatch.core.manifest import JobDef, Manifest
from lumozbatch.core.sources import Where
from lumozbatch.core.templates import TemplateError, render_value
from lumozbatch.errors import Diagnostic, ManifestError

__all__ = ["check", "combinations", "expand", "filename_problem"]

#: At most this many diagnostics of one kind per job; then one line counts the rest.
_PER_KIND = 10
_MAX_SEGMENT_BYTES = 200  # leaves room for the extension under the usual 255-byte limit
_SLUG_CHARS = 32
_LEDGER_DIR = ".lumozbatch"


def combinations(job: JobDef) -> Iterator[tuple[int, dict[str, Any], tuple[Where, ...]]]:
    """``(index, variables, where the values were written)`` for each combination of ``job``."""
    index = 0
    if job.axes:
        per_axis = [
            [(dict(zip(axis.names, row)), dict(zip(axis.names, keys)), where) for row, keys, where in zip(axis.rows, axis.keys, axis.wheres)]
            for axis in job.axes
        ]
        for parts in itertools.product(*per_axis):
            if job.exclude:
                keys: dict[str, str] = {}
                for part in parts:
                    keys.update(part[1])
                if any(all(keys[k] == v for k, v in entry.items()) for entry in job.exclude):
                    continue
            variables: dict[str, Any] = {}
            for part in parts:
                variables.update(part[0])
            yield index, variables, tuple(part[2] for part in parts)
            index += 1
    for combo, where in job.include:
        yield index, dict(combo), (where,)
        index += 1
    if not job.axes and not job.include:
        yield 0, {}, ()


def _params(job: JobDef, variables: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The final parameters of one combination, and (param, problem) for templates that failed."""
    params = dict(job.params)
    failures: list[tuple[str, str]] = []
    for name in job.param_vars:
        params[name] = final_value(name, variables[name])
    for name, template in job.templates.items():
        if name in job.param_vars:
            continue
        try:
            params[name] = final_value(name, template.render(variables))
        except TemplateError as exc:
            failures.append((name, str(exc)))
            params[name] = template.source
    return params, failures


_NOT_WORD = re.compile(r"[^\w]+")
_BAD_CHAR = re.compile(r"[\x00-\x1f\x7f\\]")


@functools.lru_cache(maxsize=65536)
def _slug_cached(kind: type, value: Any) -> str:
    text = _NOT_WORD.sub("-", render_value(value, "").lower()).strip("-_")
    return text[:_SLUG_CHARS].strip("-_") or "x"


def _slug(value: Any) -> str:
    return _slug_cached(type(value), value)  # the type keeps 1, 1.0 and true apart


def _filename(job: JobDef, index: int, repeat: int, variables: dict[str, Any], identity: str) -> str:
    if job.filename is not None:
        values = dict(variables)
        values.update(job=job.id, model=job.model, index=index, repeat=repeat, key=identity[:12])
        return job.filename.render(values)
    if job.count == 1:
        return job.id
    width = max(4, len(str(job.combinations - 1)))
    name = f"{job.id}/{index:0{width}d}"
    slugs = [_slug(variables[v]) for v in job.varying]
    if slugs:
        name += "-" + "-".join(slugs)
    if job.repeat > 1:
        name += f"-r{repeat}"
    return name


def filename_problem(name: str) -> str | None:
    """Why ``name`` cannot be an output path inside the output folder (None when it can)."""
    if not name:
        return "the filename is empty"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return f"{name!r} is absolute; filenames are relative to the output folder"
    if _BAD_CHAR.search(name):
        return f"{name!r} holds a backslash or a control character"
    segments = name.split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            return f"{name!r} has an empty, . or .. segment; it must stay inside the output folder"
        if len(segment.encode("utf-8")) > _MAX_SEGMENT_BYTES:
            return f"a part of {name[:40]!r}... is longer than {_MAX_SEGMENT_BYTES} bytes"
    if segments[0] == _LEDGER_DIR:
        return f"{name!r} would write into the ledger folder {_LEDGER_DIR}/"
    return None


def expand(manifest: Manifest) -> Iterator[JobSpec]:
    """Every JobSpec of a validated manifest, lazily, in a fixed order (see the module doc)."""
    for job in manifest.jobs:
        for index, variables, _ in combinations(job):
            params, failures = _params(job, variables)
            if failures:  # load_manifest's check() rules this out; never send a half-filled prompt
                raise ManifestError([job.where.diag(f"{failures[0][0]}: {failures[0][1]}")])
            for r in range(job.repeat):
                identity = compute_identity(job.model, params, r, job.repeat)
                yield JobSpec(
                    job=job.id,
                    index=index,
                    repeat=r,
                    model=job.model,
                    params=params if job.repeat == 1 else dict(params),
                    variables=variables,
                    identity=identity,
                    filename=_filename(job, index, r, variables, identity),
                    known_model=job.known_model,
                )


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


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Diagnostic] = []
        self.counts: dict[tuple[str, str], int] = {}
        self.first: dict[tuple[str, str], Where] = {}

    def add(self, job: str, kind: str, where: Where, message: str) -> None:
        key = (job, kind)
        n = self.counts.get(key, 0) + 1
        self.counts[key] = n
        if n <= _PER_KIND:
            self.problems.append(where.diag(message))
            self.first[key] = where

    def finish(self) -> list[Diagnostic]:
        for key, n in self.counts.items():
            if n > _PER_KIND:
                self.problems.append(self.first[key].diag(f"... and {n - _PER_KIND} more like the above in job {key[0]!r}"))
        return self.problems


def check(manifest: Manifest) -> list[Diagnostic]:
    """Problems only the expanded grid shows: templated values a model refuses, format specs
    that do not fit a value, unsafe or colliding filenames, and two jobs with one identity.

    Streams the grid once, keeping only identities and filenames (for duplicates).
    """
    out = _Collector()
    identities: dict[str, _Seen] = {}
    filenames: dict[str, _Seen] = {}
    verdicts: dict[tuple[str, str], str | None] = {}  # (param, value) -> problem, per model
    for job in manifest.jobs:
        to_check = [
            name
            for name, template in job.templates.items()
            if job.known_model
            and name not in job.param_vars
            and not always_valid_text(job.model, name, len(template.literal))
        ]
        for index, variables, wheres in combinations(job):
            params, failures = _params(job, variables)
            for name, problem in failures:
                out.add(job.id, "template:" + name, job.param_wheres.get(name, job.where), f"{problem} (for {_describe(variables)})")
            if to_check:
                for name in to_check:
                    value = params[name]
                    if not isinstance(value, str):
                        continue
                    key = (job.model + "\0" + name, value)
                    if key not in verdicts:
                        verdicts[key] = value_problem(job.model, name, value)
                    if verdicts[key] is not None:
                        where = job.param_wheres.get(name, job.where)
                        prefix = "" if where.path.endswith(name) else f"{name}: "
                        out.add(job.id, "value:" + name, where, f"{prefix}{verdicts[key]} after filling the template (for {_describe(variables)})")
            for r in range(job.repeat):
                identity = compute_identity(job.model, params, r, job.repeat)
                seen = _Seen(job.id, index, r, variables)
                earlier = identities.get(identity)
                if earlier is not None:
                    where = wheres[-1] if wheres else job.where
                    out.add(job.id, "identity", where, f"{seen.describe()} is the same generation as {earlier.describe()} (same model and parameters); it would be paid twice")
                else:
                    identities[identity] = seen
                try:
                    name = _filename(job, index, r, variables, identity)
                except TemplateError as exc:
                    out.add(job.id, "filename", job.filename_where, f"{exc} (for {_describe(variables)})")
                    continue
                problem = filename_problem(name)
                if problem is not None:
                    out.add(job.id, "filename", job.filename_where, f"{problem} (for {seen.describe()})")
                    continue
                folded = name.casefold()
                other = filenames.get(folded)
                if other is not None:
                    out.add(job.id, "collision", job.filename_where, f"{seen.describe()} and {other.describe()} would both be written to {name!r}; add a varying part such as {{key}} or {{index}}")
                else:
                    filenames[folded] = seen
    return out.finish()
