"""One ``jobs:`` entry -> a ``JobDef``: parameters, variables, templates and their checks.

See ``lumozbatch.core.build`` for the rules; this module applies them to one entry, reporting
through ``Diagnostics`` so that every problem of every entry is found in one pass. Names: the
mapping as written is an ``entry`` (at ``jobs[i]``); while it is built it is a ``_Draft``; what
is built from it is a ``JobDef``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lumozbatch.core.axisbuild import (
    build_axes,
    build_include,
    count_and_excludes,
    read_csv_numbers,
    varying_variables,
)
from lumozbatch.core.catalogue import SchemaCatalogue
from lumozbatch.core.diagnostics import Diagnostics
from lumozbatch.core.filenames import template_problem
from lumozbatch.core.identity import final_value, normalize
from lumozbatch.core.jobspec import RANDOM_SEED
from lumozbatch.core.manifest import BUILTINS, Axis, JobDef, SourceText
from lumozbatch.core.paramschema import value_problem
from lumozbatch.core.templates import Template, TemplateError, parse_template
from lumozbatch.core.where import Where
from lumozbatch.core.wording import suggest
from lumozbatch.core.yamlsafe import PathKey

__all__ = ["FORBIDDEN_KEYS", "ManifestContext", "build_jobdef"]


FORBIDDEN_KEYS = re.compile(r"^api[_-]?key$", re.IGNORECASE)

_Include = list[tuple[dict[str, Any], Where]]


@dataclass(frozen=True, slots=True)
class ManifestContext:
    """What every entry of one manifest is built with."""

    diag: Diagnostics
    catalogue: SchemaCatalogue
    sources: Mapping[str, SourceText]
    defaults: Mapping[str, Any]
    output_filename: str | None


@dataclass(frozen=True, slots=True)
class _Draft:
    """An entry being built: where it is, what it says, and its model's schema (None for an
    unknown model)."""

    ctx: ManifestContext
    path: PathKey
    entry: dict[str, Any]
    model: str
    schema: Mapping[str, Any] | None
    props: Mapping[str, Any]

    @property
    def diag(self) -> Diagnostics:
        return self.ctx.diag


@dataclass(slots=True)
class _Params:
    """The entry's parameters so far, where each was written, and the templated ones
    (``broken``: the good fields of templates with bad ones, kept to check their names)."""

    values: dict[str, Any]
    paths: dict[str, PathKey]
    templates: dict[str, Template]
    broken: dict[str, Template] = field(default_factory=dict)


def build_jobdef(ctx: ManifestContext, i: int, entry: dict[str, Any]) -> JobDef | None:
    """The JobDef of ``jobs[i]``, or None when it has errors (reported to ``ctx.diag``)."""
    before = len(ctx.diag.errors)
    draft = _open_entry(ctx, i, entry)
    params = _merge_params(draft)
    axes, complete = build_axes(draft.diag, ctx.sources, draft.path, entry)
    variables: list[str] = [n for axis in axes for n in axis.names]
    include = build_include(draft.diag, draft.path, entry, variables)
    if not complete:
        return None  # the variables are not known for sure: checking templates would mislead
    if not axes and include:
        variables = list(include[0][0])
    _check_variable_names(draft, variables)
    filename, fn_path = _filename_template(draft, variables)
    param_vars = _param_vars(draft, variables, params, filename)
    if draft.schema is not None:
        axes = tuple(read_csv_numbers(a, dict(draft.props), param_vars) if a.text_cells else a for a in axes)
    used = {n for t in params.templates.values() for n in t.names} | set(filename.names if filename else ())
    _check_template_values(draft.diag, axes, include, used)
    if draft.schema is not None:
        _check_known_values(draft, params, param_vars, axes, include)
        _fill_unset(draft, params, param_vars)
    else:
        for name, value in params.values.items():
            _check_passthrough(draft.diag, params.paths[name], value)
    if len(ctx.diag.errors) > before:
        return None
    for name, value in list(params.values.items()):
        if name not in params.templates:
            params.values[name] = final_value(name, value)
    combos, excludes = count_and_excludes(draft.diag, draft.path, entry, axes, include)
    if len(ctx.diag.errors) > before:
        return None
    diag = draft.diag
    return JobDef(
        id=entry["id"],
        model=draft.model,
        known_model=draft.schema is not None,
        params=params.values,
        templates=params.templates,
        axes=axes,
        exclude=excludes,
        include=tuple(({v: c[v] for v in variables}, w) for c, w in include),
        variables=tuple(variables),
        param_vars=tuple(param_vars),
        repeat=entry.get("repeat", 1),
        filename=filename,
        filename_where=diag.where(fn_path) if fn_path is not None else diag.where(draft.path),
        varying=varying_variables(axes, include, variables),
        combinations=combos,
        where=diag.where(draft.path),
        param_wheres={n: diag.where(p) for n, p in params.paths.items()},
    )


def _open_entry(ctx: ManifestContext, i: int, entry: dict[str, Any]) -> _Draft:
    model: str = entry["model"]
    schema = ctx.catalogue.model(model)
    known = ctx.catalogue.models
    if schema is None:
        ctx.diag.warn(
            ("jobs", i, "model"),
            f"unknown model {model!r}{suggest(model, known)}: its parameters are sent "
            "unchecked (known models: " + ", ".join(known) + ")",
        )
    props = schema.get("properties", {}) if schema else {}
    return _Draft(ctx, ("jobs", i), entry, model, schema, props)


def _merge_params(draft: _Draft) -> _Params:
    """Defaults the model has, then the entry's own; then the templates among them."""
    params = _Params({}, {}, {})
    for name, value in draft.ctx.defaults.items():
        if draft.schema is None or name in draft.props:
            params.values[name], params.paths[name] = value, ("defaults", name)
    for name, value in (draft.entry.get("params") or {}).items():
        path = draft.path + ("params", name)
        if name == "model_id":
            draft.diag.error(path, "model_id is not a parameter: the job's model: sets it", key=True)
            continue
        if draft.schema is not None and name not in draft.props:
            known = ", ".join(draft.props)
            draft.diag.error(path, f"{draft.model} has no parameter {name!r}{suggest(name, draft.props)}; it has: {known}", key=True)
            continue
        params.values[name], params.paths[name] = value, path
    for name, value in params.values.items():
        if not isinstance(value, str):
            continue
        try:
            template = parse_template(value)
        except TemplateError as exc:
            for problem in exc.problems:
                draft.diag.error(params.paths[name], problem)
            if exc.partial is not None:
                params.broken[name] = exc.partial
            continue
        if not template.is_constant:
            params.templates[name] = template
        else:
            params.values[name] = template.literal  # "{{" and "}}" are literal braces everywhere
    return params


def _check_variable_names(draft: _Draft, variables: list[str]) -> None:
    for name in variables:
        if name in BUILTINS:
            draft.diag.error(
                _var_path(draft, name),
                f"a variable may not be called {name!r}: filename templates use {{{name}}} for the {name}",
                key=True,
            )
        if name == "model_id" or FORBIDDEN_KEYS.match(name):
            draft.diag.error(_var_path(draft, name), f"a variable may not be called {name!r}", key=True)
    seen: set[str] = set()
    for name in variables:
        if name in seen:
            zspec = draft.entry.get("zip")
            second = draft.path + ("zip", name) if isinstance(zspec, dict) and name in zspec else draft.path + ("zip",)
            draft.diag.error(second, f"variable {name!r} is defined twice (matrix and zip, or two zip columns)", key=True)
        seen.add(name)


def _filename_template(draft: _Draft, variables: list[str]) -> tuple[Template | None, PathKey | None]:
    """The entry's filename template (its own, else ``output.filename``) and where it is."""
    source = draft.entry.get("filename")
    path: PathKey = draft.path + ("filename",) if source is not None else ("output", "filename")
    if source is None:
        source = draft.ctx.output_filename
    if source is None:
        return None, None
    try:
        template = parse_template(source)
    except TemplateError as exc:
        for problem in exc.problems:
            draft.diag.error(path, problem)
        if exc.partial is not None:
            _check_filename_names(draft, path, exc.partial, variables)
        return None, path
    problem = template_problem(template)
    if problem is not None:
        draft.diag.error(path, problem)
    _check_filename_names(draft, path, template, variables)
    return template, path


def _check_filename_names(draft: _Draft, path: PathKey, template: Template, variables: list[str]) -> None:
    known = variables + list(BUILTINS)
    for name in template.names:
        if name not in variables and name not in BUILTINS:
            for_job = f" (for job {draft.entry['id']!r})" if path[0] == "output" else ""
            draft.diag.error(
                path,
                f"unknown name {{{name}}} in the filename template{for_job}{suggest(name, known)}; it knows {_names(known)}",
            )


def _param_vars(draft: _Draft, variables: list[str], params: _Params, filename: Template | None) -> list[str]:
    """The variables that set a parameter; and every variable and template name is used/known."""
    diag = draft.diag
    used_in_params = {n for t in params.templates.values() for n in t.names}
    used_in_filename = set(filename.names) if filename else set()
    if draft.schema is not None:
        param_vars = [n for n in variables if n in draft.props]
    else:
        param_vars = [n for n in variables if n not in used_in_params]
    for name in variables:
        if name not in param_vars and name not in used_in_params and name not in used_in_filename:
            diag.error(
                _var_path(draft, name),
                f"variable {name!r} is not a parameter of {draft.model} and no template uses it"
                f"{suggest(name, draft.props)} (a typo?)",
                key=True,
            )
    own = draft.entry.get("params") or {}
    for name in param_vars:
        if name in own:
            diag.error(draft.path + ("params", name), f"{name!r} is set both here and by the variable {name!r}: remove one", key=True)
    for name, template in [*params.templates.items(), *params.broken.items()]:
        if name in param_vars:
            continue
        for field_name in template.names:
            if field_name not in variables:
                for_job = f" (for job {draft.entry['id']!r})" if params.paths[name][0] == "defaults" else ""
                diag.error(
                    params.paths[name],
                    f"unknown variable {{{field_name}}} in the template{for_job}"
                    f"{suggest(field_name, variables)}; "
                    + (f"this job's variables: {_names(variables)}" if variables else "this job has no variables")
                    + " (write {{ and }} for literal braces)",
                )
    return param_vars


def _check_known_values(draft: _Draft, params: _Params, param_vars: list[str], axes: tuple[Axis, ...], include: _Include) -> None:
    """Static params, and every value of a variable that sets a parameter, against the model."""
    diag = draft.diag
    for name, value in params.values.items():
        if name in params.templates or name in param_vars:
            continue
        _check_value_at(draft, name, value, (diag.where(params.paths[name]),), 0)
    for axis in axes:
        for col, name in enumerate(axis.names):
            if name not in param_vars:
                continue
            places = axis.cells[col] if axis.cells else axis.wheres
            for j, value in enumerate(axis.columns[col]):
                _check_value_at(draft, name, value, places, j)
    for combo, where in include:
        for name in param_vars:
            if name in combo:
                _check_value_at(draft, name, combo[name], (diag.where(tuple(where.doc_path or ()) + (name,)),), 0)


def _fill_unset(draft: _Draft, params: _Params, param_vars: list[str]) -> None:
    """Required parameters get their schema default (else an error); an unset seed, random."""
    assert draft.schema is not None
    for name in draft.schema.get("required", []):
        if name in params.values or name in param_vars:
            continue
        if "default" in draft.props.get(name, {}):
            params.values[name] = draft.props[name]["default"]  # the API requires it; send its default
            params.paths[name] = draft.path
        else:
            draft.diag.error(draft.path, f"missing required parameter {name!r} of {draft.model}")
    if "seed" in draft.props and "seed" not in params.values and "seed" not in param_vars:
        # no seed asked: pick one (pinned in the ledger) so every output stays reproducible
        params.values["seed"] = RANDOM_SEED
        params.paths["seed"] = draft.path


def _names(names: Iterable[str]) -> str:
    return ", ".join(f"{{{n}}}" for n in names)


def _var_path(draft: _Draft, name: str) -> PathKey:
    entry = draft.entry
    for kind in ("matrix", "zip"):
        if isinstance(entry.get(kind), dict) and name in entry[kind]:
            return draft.path + (kind, name)
    if isinstance(entry.get("zip"), dict) and "file" in entry["zip"]:
        return draft.path + ("zip", "file")
    return draft.path + ("include",)


def _check_value_at(draft: _Draft, name: str, value: Any, places: Sequence[Where], j: int) -> None:
    """``value``, written at ``places[j]`` (a ``Where`` made only for a problem), against the model."""
    catalogue, doc = draft.ctx.catalogue, draft.diag.doc
    problem = value_problem(catalogue, draft.model, name, value)
    if problem is None:
        return
    where = places[j]
    hint = ""
    if where.doc_path is not None:
        text = doc.plain_text(where.doc_path)
        if text is not None and value_problem(catalogue, draft.model, name, text) is None:
            hint = doc.quote_hint(where.doc_path)  # the text as written was fine: YAML typed it
    prefix = "" if where.path.endswith(name) else f"{name}: "
    draft.diag.error_at(where, f"{prefix}{problem}{hint}")


def _check_template_values(diag: Diagnostics, axes: tuple[Axis, ...], include: _Include, used: set[str]) -> None:
    """A YAML 1.1 boolean word (no, on, yes...) filled into a template: say to quote it."""
    doc = diag.doc
    for axis in axes:
        for col, name in enumerate(axis.names):
            if name not in used:
                continue
            places = axis.cells[col] if axis.cells else axis.wheres
            for j, value in enumerate(axis.columns[col]):
                if isinstance(value, bool) and (where := places[j]).doc_path is not None:
                    text = doc.plain_text(where.doc_path) or ""
                    if text.lower() not in ("true", "false"):
                        diag.error_at(where, f"{name}: a string was expected{doc.quote_hint(where.doc_path)}")
    for combo, where in include:
        for name, value in combo.items():
            path = (where.doc_path or ()) + (name,)
            text = doc.plain_text(path) or ""
            if name in used and isinstance(value, bool) and text.lower() not in ("", "true", "false"):
                diag.errors.append(doc.diag(path, f"a string was expected{doc.quote_hint(path)}"))


def _check_passthrough(diag: Diagnostics, path: PathKey, value: Any) -> None:
    try:
        normalize(value)
    except ValueError as exc:
        diag.error(path, str(exc))
