"""A parsed YAML document -> a validated ``Manifest`` (or every problem with it at once).

Pure: the caller (``lumozbatch.manifest_io``) reads the manifest and its ``file:`` sources and
passes their text in. Checks, in order, all collected before raising:

1. no ``api_key`` anywhere (the key comes only from ``LUMOZ_API_KEY``);
2. the manifest JSON Schema (``schemas/manifest.schema.json``);
3. per job: model known (else a warning), parameters known to the model, defaults merged,
   variables (matrix, zip, include) well formed and each either a model parameter or used by
   a template, templates naming only variables, zip lengths equal, exclude/include keys,
   values of variable-set parameters valid for the model, required parameters present;
4. unique job ids, ``limits`` and ``pricing`` sanity.

What needs the expanded grid (templated values, filenames, duplicate identities) is checked by
``lumozbatch.core.grid.check``.

Semantics decided here (SPEC section 3 is silent on them):
- ``zip`` is one more axis of the product, after the matrix axes (so it varies fastest);
- each ``include`` entry must give exactly the job's variables (a job with only ``include``
  takes its variables from the first entry); a variable may not also be set in ``params``;
- a required model parameter that has a schema default and no value gets that default (the
  API requires it; e.g. flux-sketch-smudge ``aspect_ratio: "1:1"``); optional ones are left to
  the provider;
- for a model without a schema, a variable is a parameter unless a string parameter's
  template uses it;
- CSV cells are text, except in a column that sets a numeric parameter of a known model,
  where ``30`` and ``7.5`` are read as numbers (``.jsonl`` sources keep their JSON types);
- ``seed: random`` and ``seed: ''`` become ``RANDOM_SEED``; so does a missing ``seed`` of a
  known model that has one (the runner pins a concrete seed, so every output is
  reproducible); integral floats become ints.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jsonschema

from lumozbatch.core.identity import canonical_json, normalize
from lumozbatch.core.jobspec import RANDOM_SEED
from lumozbatch.core.sources import SUFFIXES, Table, Where, parse_source
from lumozbatch.core.templates import Template, TemplateError, parse_template
from lumozbatch.core.yamlsafe import Document, PathKey, path_text
from lumozbatch.errors import Diagnostic, ManifestError

__all__ = [
    "BUILTINS",
    "Axis",
    "JobDef",
    "Manifest",
    "SourceText",
    "build_manifest",
    "build_partial",
    "ordered",
    "source_refs",
    "value_problem",
]

#: Names filename templates know besides the job's variables.
BUILTINS = ("job", "model", "index", "repeat", "key")
_FORBIDDEN_KEYS = re.compile(r"^api[_-]?key$", re.IGNORECASE)
_STRINGISH = frozenset({"type", "minLength", "maxLength", "enum", "description", "default", "title", "examples"})


@dataclass(frozen=True, slots=True)
class SourceText:
    """A ``file:`` source as read by the I/O layer: its text, or why it could not be read."""

    shown: str  # the path as diagnostics should show it
    text: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Axis:
    """One axis of a job's product: a matrix variable, or the zip group (several variables)."""

    names: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    wheres: tuple[Where, ...]  # where each row was written
    keys: tuple[tuple[str, ...], ...]  # canonical text of each value, for exclude matching
    cells: tuple[tuple[Where, ...], ...] = ()  # per column, where each value was written
    text_cells: bool = False  # values came from a CSV file: text, numbers not yet recognised


@dataclass(frozen=True)
class JobDef:
    """One ``jobs:`` entry, validated, ready for ``grid.expand``."""

    id: str
    model: str
    known_model: bool
    params: dict[str, Any]  # defaults merged, required defaults filled, templates not yet rendered
    templates: dict[str, Template]  # string params holding {fields}
    axes: tuple[Axis, ...]  # matrix axes in order, then the zip group
    exclude: tuple[dict[str, str], ...]  # variable -> canonical value text
    include: tuple[tuple[dict[str, Any], Where], ...]
    variables: tuple[str, ...]
    param_vars: tuple[str, ...]  # variables that set a parameter
    repeat: int
    filename: Template | None  # None: the readable default
    filename_where: Where
    varying: tuple[str, ...]  # variables with more than one value (for default names)
    combinations: int  # combinations after exclude and include (repeat not counted)
    where: Where  # the job entry itself
    param_wheres: dict[str, Where] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return self.combinations * self.repeat


@dataclass(frozen=True)
class Manifest:
    """A validated manifest (``lumozbatch.manifest_io.load_manifest`` builds it)."""

    path: str
    name: str
    jobs: list[JobDef]
    concurrency: int | None
    max_generations: int | None
    pricing: dict[str, float]
    warnings: list[Diagnostic]
    output_filename: str | None = None
    description: str | None = None

    def count(self) -> int:
        """How many JobSpecs ``grid.expand`` yields (known without expanding)."""
        return sum(job.count for job in self.jobs)


@cache
def _manifest_validator() -> jsonschema.protocols.Validator:
    from lumozbatch.resources import manifest_schema

    return jsonschema.Draft202012Validator(manifest_schema())


@cache
def _model_schemas() -> dict[str, dict[str, Any]]:
    from lumozbatch.resources import model_schemas

    return model_schemas()


@cache
def property_validator(model: str, name: str) -> jsonschema.protocols.Validator | None:
    schema = _model_schemas().get(model, {}).get("properties", {}).get(name)
    return None if schema is None else jsonschema.Draft202012Validator(schema)


def value_problem(model: str, name: str, value: Any) -> str | None:
    """Why ``value`` is not valid for parameter ``name`` of a known model (None if it is)."""
    validator = property_validator(model, name)
    if validator is None:
        return None
    schema = validator.schema
    if isinstance(value, str) and set(schema) <= _STRINGISH and schema.get("type") == "string":
        # the common case (templated prompts), checked without jsonschema's per-call overhead
        if len(value) < schema.get("minLength", 0):
            return "is empty" if not value else f"is shorter than {schema['minLength']} characters"
        if len(value) > schema.get("maxLength", math.inf):
            return f"is longer than {schema['maxLength']} characters"
        if "enum" in schema and value not in schema["enum"]:
            return f"{value!r} is not one of {_options(schema['enum'])}"
        return None
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is not None:
        return _explain(error, value)
    if schema.get("format") == "uri" and isinstance(value, str):
        # jsonschema leaves formats unchecked without extra packages; a webhook must be a URL
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return f"{value!r} is not an http(s) URL"
    return None


def _show(value: Any) -> str:
    """A value as YAML would show it (true, not True)."""
    return str(value).lower() if isinstance(value, bool) else repr(value)


def _options(values: Iterable[Any]) -> str:
    return ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    return "a list" if isinstance(value, list) else "a mapping"


def _explain(error: jsonschema.ValidationError, value: Any) -> str:
    """A jsonschema error as one sentence about ``value``."""
    kind, expected = error.validator, error.validator_value
    value = error.instance
    if kind == "type":
        wanted = " or ".join(expected) if isinstance(expected, list) else expected
        article = "an" if str(wanted)[0] in "aeiou" else "a"
        return f"expected {article} {wanted}, got {_type_name(value)}"
    if kind == "enum":
        return f"{_type_name(value)} is not one of {_options(expected)}"
    if kind == "const":
        return f"expected {expected!r}, got {_type_name(value)}"
    if kind in ("minimum", "exclusiveMinimum"):
        return f"{value!r} is below the minimum {expected}"
    if kind in ("maximum", "exclusiveMaximum"):
        return f"{value!r} is above the maximum {expected}"
    if kind == "minLength":
        return "must not be empty" if expected == 1 else f"must have at least {expected} characters"
    if kind == "maxLength":
        return f"must have at most {expected} characters"
    if kind == "pattern":
        return f"{value!r} does not match {expected}"
    if kind == "minItems":
        return "must not be empty" if expected == 1 else f"needs at least {expected} items"
    if kind == "minProperties":
        return "must not be empty"
    if kind == "required":
        missing = [k for k in expected if isinstance(value, dict) and k not in value]
        return f"missing required key {missing[0]!r}" if missing else "missing a required key"
    if kind in ("oneOf", "anyOf") and error.context:
        # the branch the value got furthest into explains it best (a list that is empty, not
        # "expected an object" from the branch for {file: ...})
        best = min(error.context, key=lambda e: (-len(e.relative_path), e.validator == "type"))
        return _explain(best, value)
    return error.message


def source_refs(doc: Document) -> list[tuple[PathKey, str]]:
    """Every ``{file: ...}`` source the manifest names: (where in the document, relative path)."""
    out: list[tuple[PathKey, str]] = []
    jobs = doc.data.get("jobs") if isinstance(doc.data, dict) else None
    if not isinstance(jobs, list):
        return out
    for i, job in enumerate(jobs):
        if not isinstance(job, dict):
            continue
        for kind in ("matrix", "zip"):
            block = job.get(kind)
            if not isinstance(block, dict):
                continue
            if kind == "zip" and _is_file_source(block):
                out.append((("jobs", i, "zip", "file"), block["file"]))
                continue
            for name, axis in block.items():
                if _is_file_source(axis):
                    out.append((("jobs", i, kind, name, "file"), axis["file"]))
    return out


def _is_file_source(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"file"} and isinstance(value["file"], str)


class _Checker:
    """Collects diagnostics while building; ``doc`` locates them."""

    def __init__(self, doc: Document, sources: Mapping[str, SourceText]) -> None:
        self.doc = doc
        self.sources = sources
        self.problems: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []

    def where(self, path: PathKey, *, key: bool = False) -> Where:
        line, col = self.doc.mark(path, key=key)
        return Where(self.doc.file, line, col, path_text(path), tuple(path))

    def error(self, path: PathKey, message: str, *, key: bool = False) -> None:
        self.problems.append(self.doc.diag(path, message, key=key))

    def warn(self, path: PathKey, message: str, *, key: bool = False) -> None:
        self.warnings.append(self.doc.diag(path, message, key=key, severity="warning"))


def build_manifest(doc: Document, path: str, sources: Mapping[str, SourceText]) -> Manifest:
    """Validate ``doc`` and build the Manifest; raise ``ManifestError`` with every problem."""
    manifest, problems = build_partial(doc, path, sources)
    if manifest is None or any(d.severity == "error" for d in problems):
        raise ManifestError(problems)
    return manifest


def build_partial(
    doc: Document, path: str, sources: Mapping[str, SourceText]
) -> tuple[Manifest | None, list[Diagnostic]]:
    """Build what can be built: a Manifest of the jobs that passed (None when the document's
    structure is broken), plus every diagnostic (errors and warnings), so that the grid checks
    can still run on the good jobs and report their problems in the same pass."""
    try:
        return _build(doc, path, sources)
    except ManifestError as exc:
        return None, exc.diagnostics


def _build(doc: Document, path: str, sources: Mapping[str, SourceText]) -> tuple[Manifest, list[Diagnostic]]:
    ck = _Checker(doc, sources)
    if not isinstance(doc.data, dict):
        ck.error((), f"a manifest is a mapping (version, name, jobs...), not {_type_name(doc.data)}")
        raise ManifestError(ck.problems)
    _forbid_api_keys(ck, doc.data, ())
    bad_jobs = _schema_check(ck, doc)
    data = doc.data
    # a broken defaults/output/jobs block makes every job's checks noise: stop at the schema
    structural = any(
        not d.path or d.path == "jobs" or d.path.startswith(("defaults", "output")) for d in ck.problems
    )
    if structural or not isinstance(data.get("jobs"), list):
        raise ManifestError(ordered(ck.problems + ck.warnings))
    defaults: dict[str, Any] = data.get("defaults") or {}
    output_filename = (data.get("output") or {}).get("filename")
    jobs: list[JobDef] = []
    seen_ids: dict[str, int] = {}
    for i, raw in enumerate(data["jobs"]):
        if i in bad_jobs:
            continue
        if raw["id"] in seen_ids:
            ck.error(("jobs", i, "id"), f"duplicate job id {raw['id']!r} (also jobs[{seen_ids[raw['id']]}])")
            continue
        seen_ids[raw["id"]] = i
        job = _build_job(ck, i, raw, defaults, output_filename)
        if job is not None:
            jobs.append(job)
    limits = data.get("limits") or {}
    raw_pricing = data.get("pricing")
    models = [j["model"] for j in data["jobs"] if isinstance(j, dict) and isinstance(j.get("model"), str)]
    pricing = _check_pricing(ck, raw_pricing if isinstance(raw_pricing, dict) else {}, models)
    _check_defaults_used(ck, defaults, [j for j in data["jobs"] if isinstance(j, dict) and isinstance(j.get("model"), str)])
    manifest = Manifest(
        path=path,
        name=data["name"] if isinstance(data.get("name"), str) else "",
        jobs=jobs,
        concurrency=limits.get("concurrency") if isinstance(limits, dict) else None,
        max_generations=limits.get("max_generations") if isinstance(limits, dict) else None,
        pricing=pricing,
        warnings=ordered(ck.warnings),
        output_filename=output_filename,
        description=data.get("description"),
    )
    return manifest, ordered(ck.problems + ck.warnings)


def ordered(diags: list[Diagnostic]) -> list[Diagnostic]:
    """File order (the manifest first, then sources), errors before warnings on one spot."""
    seen: set[Diagnostic] = set()
    unique = [d for d in diags if not (d in seen or seen.add(d))]
    return sorted(unique, key=lambda d: (d.file, d.line, d.col, d.severity != "error"))


def _forbid_api_keys(ck: _Checker, value: Any, path: PathKey) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if _FORBIDDEN_KEYS.match(k):
                ck.error(
                    path + (k,),
                    "a manifest must not hold an API key (it would end up in git): "
                    "remove it and set LUMOZ_API_KEY in the environment",
                    key=True,
                )
            else:
                _forbid_api_keys(ck, v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _forbid_api_keys(ck, v, path + (i,))


def _schema_check(ck: _Checker, doc: Document) -> set[int]:
    """Schema errors -> diagnostics; returns the indexes of jobs that had any."""
    bad_jobs: set[int] = set()
    for error in _manifest_validator().iter_errors(doc.data):
        path = tuple(error.absolute_path)
        if len(path) >= 2 and path[0] == "jobs" and isinstance(path[1], int):
            bad_jobs.add(path[1])
        if error.validator == "additionalProperties":
            extra = [k for k in error.instance if k not in error.schema.get("properties", {})]
            for k in extra:
                if _FORBIDDEN_KEYS.match(k):
                    continue  # already reported, with a better message
                known = sorted(error.schema.get("properties", {}))
                ck.error(path + (k,), f"unknown key {k!r}{_suggest(k, known)}; expected one of {', '.join(known)}", key=True)
            continue
        if error.validator == "propertyNames":
            key = error.instance
            ck.error(path + (key,), f"{key!r} is not a valid name here ({_name_rule(error)})", key=True)
            continue
        if error.validator == "required":
            missing = [k for k in error.validator_value if k not in error.instance]
            for k in missing:
                ck.error(path, f"missing required key {k!r}")
            continue
        if path == ("version",) and error.validator == "const":
            ck.error(path, f"unsupported manifest version {error.instance!r}; this lumozbatch reads version 1")
            continue
        message = _explain(error, error.instance)
        if _expects_string(error):
            message += doc.quote_hint(path)
        ck.error(path, message)
    return bad_jobs


def _expects_string(error: jsonschema.ValidationError) -> bool:
    for sub in [error, *error.context]:
        expected = sub.validator_value
        if sub.validator == "type" and (expected == "string" or (isinstance(expected, list) and "string" in expected)):
            return True
    return False


def _name_rule(error: jsonschema.ValidationError) -> str:
    for sub in [error, *error.context]:
        if sub.validator == "pattern":
            return f"it must match {sub.validator_value}"
    return "letters, digits and _, not starting with a digit"


def _suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_pricing(ck: _Checker, pricing: dict[str, Any], models: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for model, price in pricing.items():
        if isinstance(price, bool) or not isinstance(price, (int, float)):
            continue  # the schema said so already
        if not math.isfinite(price):
            ck.error(("pricing", model), f"price must be a finite number, got {price!r}")
            continue
        if model not in models:
            ck.warn(("pricing", model), f"no job uses model {model!r}{_suggest(model, models)}", key=True)
        out[model] = float(price)
    return out


def _check_defaults_used(ck: _Checker, defaults: dict[str, Any], jobs: list[dict[str, Any]]) -> None:
    schemas = _model_schemas()
    if any(j.get("model") not in schemas for j in jobs):
        return  # a model without a schema takes every default
    known = set().union(*(schemas[j["model"]].get("properties", {}) for j in jobs)) if jobs else set()
    for name in defaults:
        if name not in known:
            ck.error(
                ("defaults", name),
                f"{name!r} is not a parameter of any job's model{_suggest(name, known)}",
                key=True,
            )


def _build_job(
    ck: _Checker, i: int, raw: dict[str, Any], defaults: dict[str, Any], output_filename: str | None
) -> JobDef | None:
    before = len(ck.problems)
    jp: PathKey = ("jobs", i)
    model: str = raw["model"]
    schema = _model_schemas().get(model)
    props: dict[str, Any] = schema.get("properties", {}) if schema else {}
    if schema is None:
        ck.warn(
            jp + ("model",),
            f"unknown model {model!r}{_suggest(model, _model_schemas())}: its parameters are sent "
            "unchecked (known models: " + ", ".join(_model_schemas()) + ")",
        )
    own: dict[str, Any] = raw.get("params") or {}

    # params: defaults the model has, then the job's own; remember where each came from
    params: dict[str, Any] = {}
    param_paths: dict[str, PathKey] = {}
    for name, value in defaults.items():
        if schema is None or name in props:
            params[name], param_paths[name] = value, ("defaults", name)
    for name, value in own.items():
        if name == "model_id":
            ck.error(jp + ("params", name), "model_id is not a parameter: the job's model: sets it", key=True)
            continue
        if schema is not None and name not in props:
            ck.error(
                jp + ("params", name),
                f"{model} has no parameter {name!r}{_suggest(name, props)}; it has: {', '.join(props)}",
                key=True,
            )
            continue
        params[name], param_paths[name] = value, jp + ("params", name)

    # templates in string params
    templates: dict[str, Template] = {}
    for name, value in params.items():
        if isinstance(value, str):
            try:
                template = parse_template(value)
            except TemplateError as exc:
                ck.error(param_paths[name], str(exc))
                continue
            if not template.is_constant:
                templates[name] = template
            else:
                params[name] = template.literal  # "{{" and "}}" are literal braces everywhere

    axes, complete = _build_axes(ck, jp, raw)
    variables: list[str] = [n for axis in axes for n in axis.names]
    include = _build_include(ck, jp, raw, variables)
    if not complete:
        return None  # the variables are not known for sure: checking templates would mislead
    if not axes and include:
        variables = list(include[0][0])
    for name in variables:
        if name in BUILTINS:
            ck.error(
                _var_path(jp, raw, name),
                f"a variable may not be called {name!r}: filename templates use {{{name}}} for the {name}",
                key=True,
            )
        if name == "model_id" or _FORBIDDEN_KEYS.match(name):
            ck.error(_var_path(jp, raw, name), f"a variable may not be called {name!r}", key=True)
    seen_var: set[str] = set()
    for name in variables:
        if name in seen_var:
            zspec = raw.get("zip")
            second = jp + ("zip", name) if isinstance(zspec, dict) and name in zspec else jp + ("zip",)
            ck.error(second, f"variable {name!r} is defined twice (matrix and zip, or two zip columns)", key=True)
        seen_var.add(name)

    # filename template
    fn_source = raw.get("filename")
    fn_path: PathKey = jp + ("filename",) if fn_source is not None else ("output", "filename")
    if fn_source is None:
        fn_source = output_filename
    filename: Template | None = None
    if fn_source is not None:
        try:
            filename = parse_template(fn_source)
        except TemplateError as exc:
            ck.error(fn_path, str(exc))
        if filename is not None:
            _static_filename_check(ck, fn_path, filename)
            for name in filename.names:
                if name not in variables and name not in BUILTINS:
                    for_job = f" (for job {raw['id']!r})" if fn_path[0] == "output" else ""
                    ck.error(
                        fn_path,
                        f"unknown name {{{name}}} in the filename template{for_job}{_suggest(name, variables + list(BUILTINS))}; "
                        f"it knows {_names(variables + list(BUILTINS))}",
                    )

    # which variables are parameters, and is every variable used?
    used_in_params = {n for t in templates.values() for n in t.names}
    used_in_filename = set(filename.names) if filename else set()
    if schema is not None:
        param_vars = [n for n in variables if n in props]
    else:
        param_vars = [n for n in variables if n not in used_in_params]
    for name in variables:
        if name not in param_vars and name not in used_in_params and name not in used_in_filename:
            ck.error(
                _var_path(jp, raw, name),
                f"variable {name!r} is not a parameter of {model} and no template uses it"
                f"{_suggest(name, props)} (a typo?)",
                key=True,
            )
    for name in param_vars:
        if name in own:
            ck.error(
                jp + ("params", name),
                f"{name!r} is set both here and by the variable {name!r}: remove one",
                key=True,
            )
    for name, template in templates.items():
        if name in param_vars:
            continue
        for field_name in template.names:
            if field_name not in variables:
                for_job = f" (for job {raw['id']!r})" if param_paths[name][0] == "defaults" else ""
                ck.error(
                    param_paths[name],
                    f"unknown variable {{{field_name}}} in the template{for_job}"
                    f"{_suggest(field_name, variables)}; "
                    + (f"this job's variables: {_names(variables)}" if variables else "this job has no variables")
                    + " (write {{ and }} for literal braces)",
                )

    if schema is not None:
        axes = tuple(_read_csv_numbers(a, props, param_vars) if a.text_cells else a for a in axes)
    _check_template_values(ck, axes, include, used_in_params | used_in_filename)
    # values: static params, and every value of a variable that sets a parameter
    if schema is not None:
        for name, value in params.items():
            if name in templates or name in param_vars:
                continue
            _check_value(ck, model, name, value, param_paths[name])
        for axis in axes:
            for col, name in enumerate(axis.names):
                if name not in param_vars:
                    continue
                for row, where in zip(axis.rows, axis.cells[col] if axis.cells else axis.wheres):
                    _check_value_at(ck, model, name, row[col], where)
        for combo, where in include:
            for name in param_vars:
                if name in combo:
                    _check_value_at(ck, model, name, combo[name], ck.where(tuple(where.doc_path or ()) + (name,)))
        for name in schema.get("required", []):
            if name in params or name in param_vars:
                continue
            if "default" in props.get(name, {}):
                params[name] = props[name]["default"]  # the API requires it; send its default
                param_paths[name] = jp
            else:
                ck.error(jp, f"missing required parameter {name!r} of {model}")
        if "seed" in props and "seed" not in params and "seed" not in param_vars:
            # no seed asked: pick one (pinned in the ledger) so every output stays reproducible
            params["seed"] = RANDOM_SEED
            param_paths["seed"] = jp
    else:
        for name, value in params.items():
            _check_passthrough(ck, param_paths[name], value)

    if len(ck.problems) > before:
        return None
    for name, value in list(params.items()):
        if name not in templates:
            params[name] = _final_value(name, value)
    repeat = raw.get("repeat", 1)
    combos, excludes = _count_and_excludes(ck, jp, raw, axes, include, variables)
    if len(ck.problems) > before:
        return None
    varying = _varying(axes, include, variables)
    return JobDef(
        id=raw["id"],
        model=model,
        known_model=schema is not None,
        params=params,
        templates=templates,
        axes=axes,
        exclude=excludes,
        include=tuple(({v: c[v] for v in variables}, w) for c, w in include),
        variables=tuple(variables),
        param_vars=tuple(param_vars),
        repeat=repeat,
        filename=filename,
        filename_where=ck.where(fn_path) if fn_source is not None else ck.where(jp),
        varying=varying,
        combinations=combos,
        where=ck.where(jp),
        param_wheres={n: ck.where(p) for n, p in param_paths.items()},
    )


def _names(names: Iterable[str]) -> str:
    return ", ".join(f"{{{n}}}" for n in names)


def _var_path(jp: PathKey, raw: dict[str, Any], name: str) -> PathKey:
    for kind in ("matrix", "zip"):
        if isinstance(raw.get(kind), dict) and name in raw[kind]:
            return jp + (kind, name)
    if isinstance(raw.get("zip"), dict) and "file" in raw["zip"]:
        return jp + ("zip", "file")
    return jp + ("include",)


def _final_value(name: str, value: Any) -> Any:
    """What is hashed and sent: seed '' / 'random' -> RANDOM_SEED, integral floats -> int."""
    if name == "seed" and value in ("", RANDOM_SEED):
        return RANDOM_SEED
    return normalize(value)


def _check_value(ck: _Checker, model: str, name: str, value: Any, path: PathKey) -> None:
    _check_value_at(ck, model, name, value, ck.where(path))


def _check_value_at(ck: _Checker, model: str, name: str, value: Any, where: Where) -> None:
    problem = value_problem(model, name, value)
    if problem is None:
        return
    hint = ""
    if where.doc_path is not None:
        text = ck.doc.plain_non_str.get(where.doc_path)
        if text is not None and value_problem(model, name, text) is None:
            hint = ck.doc.quote_hint(where.doc_path)  # the text as written was fine: YAML typed it
    prefix = "" if where.path.endswith(name) else f"{name}: "
    ck.problems.append(where.diag(f"{prefix}{problem}{hint}"))


def _check_template_values(ck: _Checker, axes: tuple[Axis, ...], include: list[tuple[dict[str, Any], Where]], used: set[str]) -> None:
    """A YAML 1.1 boolean word (no, on, yes...) filled into a template: say to quote it."""
    for axis in axes:
        for col, name in enumerate(axis.names):
            if name not in used:
                continue
            for row, where in zip(axis.rows, axis.cells[col] if axis.cells else axis.wheres):
                if isinstance(row[col], bool) and where.doc_path is not None:
                    text = ck.doc.plain_non_str.get(where.doc_path, "")
                    if text.lower() not in ("true", "false"):
                        ck.problems.append(where.diag(f"{name}: a string was expected{ck.doc.quote_hint(where.doc_path)}"))
    for combo, where in include:
        for name, value in combo.items():
            path = (where.doc_path or ()) + (name,)
            text = ck.doc.plain_non_str.get(path, "")
            if name in used and isinstance(value, bool) and text.lower() not in ("", "true", "false"):
                ck.problems.append(ck.doc.diag(path, f"a string was expected{ck.doc.quote_hint(path)}"))


def _check_passthrough(ck: _Checker, path: PathKey, value: Any) -> None:
    try:
        normalize(value)
    except ValueError as exc:
        ck.error(path, str(exc))


def _build_axes(ck: _Checker, jp: PathKey, raw: dict[str, Any]) -> tuple[tuple[Axis, ...], bool]:
    """The job's axes, and whether every one of them could be built."""
    axes: list[Axis] = []
    complete = True
    for name, spec in (raw.get("matrix") or {}).items():
        path = jp + ("matrix", name)
        table = _axis_values(ck, path, name, spec, matrix=True)
        if table is None:
            complete = False
        else:
            _no_duplicate_values(ck, table, name)
            axes.append(_axis(table))
    zspec = raw.get("zip")
    if zspec is not None:
        if _is_file_source(zspec):
            table = _axis_values(ck, jp + ("zip",), "", zspec, matrix=False)
            complete = complete and table is not None
            if table is not None:
                axes.append(_axis(table, text_cells=zspec["file"].lower().endswith(".csv")))
        else:
            columns: list[Table] = []
            for name, spec in zspec.items():
                table = _axis_values(ck, jp + ("zip", name), name, spec, matrix=False)
                if table is not None:
                    columns.append(table)
            complete = complete and len(columns) == len(zspec)
            if columns and len(columns) == len(zspec):
                lengths = {t.names[0]: len(t.rows) for t in columns}
                if len(set(lengths.values())) > 1:
                    shown = ", ".join(f"{n}: {k}" for n, k in lengths.items())
                    ck.error(jp + ("zip",), f"zip lists must have equal lengths, got {shown}", key=True)
                    complete = False
                else:
                    table = Table(
                        tuple(t.names[0] for t in columns),
                        tuple(tuple(row[0] for row in rows) for rows in zip(*(t.rows for t in columns))),
                        columns[0].wheres,
                    )
                    axes.append(_axis(table, tuple(t.wheres for t in columns)))
    return tuple(axes), complete


def _axis(table: Table, cells: tuple[tuple[Where, ...], ...] = (), text_cells: bool = False) -> Axis:
    keys = tuple(tuple(canonical_json(normalize(v)) for v in row) for row in table.rows)
    return Axis(table.names, table.rows, table.wheres, keys, cells, text_cells)


_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")


def _numeric(prop: dict[str, Any]) -> bool:
    """Does the parameter's schema take a number (directly or in one of its branches)?"""
    for branch in [prop, *prop.get("oneOf", []), *prop.get("anyOf", [])]:
        kinds = branch.get("type", [])
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if "integer" in kinds or "number" in kinds:
            return True
    return False


def _read_csv_numbers(axis: Axis, props: dict[str, Any], param_vars: list[str]) -> Axis:
    """CSV cells are text; in a column that sets a numeric parameter, read numbers as numbers."""
    columns = [i for i, name in enumerate(axis.names) if name in param_vars and _numeric(props.get(name, {}))]
    if not columns:
        return axis
    rows = []
    for row in axis.rows:
        cells = list(row)
        for i in columns:
            text = cells[i].strip()
            if _INTEGER.fullmatch(text):
                cells[i] = int(text)
            elif _NUMBER.fullmatch(text):
                cells[i] = float(text)
        rows.append(tuple(cells))
    return _axis(Table(axis.names, tuple(rows), axis.wheres), axis.cells, text_cells=True)


def _no_duplicate_values(ck: _Checker, table: Table, name: str) -> None:
    seen: dict[str, Where] = {}
    for row, where in zip(table.rows, table.wheres):
        key = canonical_json(normalize(row[0]))
        if key in seen:
            first = seen[key]
            ck.problems.append(
                where.diag(f"{name}: the value {_show(row[0])} appears twice (also at line {first.line}); every combination would run twice")
            )
        else:
            seen[key] = where


def _axis_values(ck: _Checker, path: PathKey, name: str, spec: Any, *, matrix: bool) -> Table | None:
    if isinstance(spec, list):
        wheres = tuple(ck.where(path + (j,)) for j in range(len(spec)))
        for j, value in enumerate(spec):
            if isinstance(value, float) and not math.isfinite(value):
                ck.error(path + (j,), f"{value!r} is not a finite number")
                return None
        return Table((name,), tuple((v,) for v in spec), wheres)
    ref: str = spec["file"]
    fpath = path + ("file",) if name else path + ("file",)
    source = ck.sources.get(ref)
    suffix = "." + ref.rsplit(".", 1)[-1].lower() if "." in ref.rsplit("/", 1)[-1] else ""
    if source is None or source.error is not None:
        reason = source.error if source is not None else "it was not read"
        shown = f" ({source.shown})" if source is not None and source.shown != ref else ""
        ck.error(fpath, f"cannot read the source {ref!r}{shown}: {reason}")
        return None
    if suffix not in SUFFIXES:
        ck.error(fpath, f"unsupported source type {suffix or '(no extension)'}: use .txt, .csv or .jsonl")
        return None
    if name and suffix != ".txt":
        ck.error(
            fpath,
            f"a {suffix} source gives one variable per column: "
            + ("use it in zip as `zip: {file: ...}`" if not matrix else "use it in zip, not in matrix"),
        )
        return None
    if not name and suffix == ".txt":
        ck.error(fpath, "a .txt source gives one list: name it inside zip (`zip: {name: {file: x.txt}}`)")
        return None
    assert source.text is not None
    table, problems = parse_source(source.text, source.shown, suffix, name)
    ck.problems.extend(problems)
    return table


def _build_include(
    ck: _Checker, jp: PathKey, raw: dict[str, Any], variables: list[str]
) -> list[tuple[dict[str, Any], Where]]:
    out: list[tuple[dict[str, Any], Where]] = []
    expected = set(variables) if variables else None
    for j, combo in enumerate(raw.get("include") or []):
        path = jp + ("include", j)
        if expected is None:
            expected = set(combo)
            if not variables:
                variables = list(combo)
        missing, extra = expected - set(combo), set(combo) - expected
        if missing or extra:
            parts = []
            if missing:
                parts.append("missing " + ", ".join(sorted(missing)))
            if extra:
                parts.append("unknown " + ", ".join(sorted(extra)))
            ck.error(path, f"an include entry must give every variable of the job ({', '.join(sorted(expected))}): {'; '.join(parts)}")
            continue
        bad = [k for k, v in combo.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            ck.error(path + (bad[0],), f"{combo[bad[0]]!r} is not a finite number")
            continue
        out.append((combo, ck.where(path)))
    return out


def _count_and_excludes(
    ck: _Checker,
    jp: PathKey,
    raw: dict[str, Any],
    axes: tuple[Axis, ...],
    include: list[tuple[dict[str, Any], Where]],
    variables: list[str],
) -> tuple[int, tuple[dict[str, str], ...]]:
    """Validate exclude entries and count the combinations (product - excluded + included)."""
    axis_vars = [n for axis in axes for n in axis.names]
    excludes: list[dict[str, str]] = []
    for j, entry in enumerate(raw.get("exclude") or []):
        unknown = [k for k in entry if k not in axis_vars]
        if unknown:
            ck.error(
                jp + ("exclude", j, unknown[0]),
                f"exclude names {unknown[0]!r}, which is not a matrix or zip variable"
                f"{_suggest(unknown[0], axis_vars)}",
                key=True,
            )
            continue
        excludes.append({k: canonical_json(normalize(v)) for k, v in entry.items()})
    if not axes:
        return (len(include) if include else 1), tuple(excludes)
    # count, and warn about exclude entries that drop nothing (a typo in a value)
    total = math.prod(len(axis.rows) for axis in axes)
    if not excludes:
        return total + len(include), ()
    matched = [0] * len(excludes)
    kept = 0
    for combo in _key_product(axes):
        hit = False
        for e, entry in enumerate(excludes):
            if all(combo[k] == v for k, v in entry.items()):
                matched[e] += 1
                hit = True
        if not hit:
            kept += 1
    for e, count in enumerate(matched):
        if count == 0:
            ck.warn(jp + ("exclude", e), "this exclude entry matches no combination")
    if kept == 0 and not include:
        ck.error(jp + ("exclude",), f"exclude drops all {total} combinations: this job would generate nothing")
    return kept + len(include), tuple(excludes)


def _key_product(axes: tuple[Axis, ...]) -> Iterable[dict[str, str]]:
    per_axis = [[dict(zip(axis.names, keys)) for keys in axis.keys] for axis in axes]
    for parts in itertools.product(*per_axis):
        combo: dict[str, str] = {}
        for part in parts:
            combo.update(part)
        yield combo


def _varying(
    axes: tuple[Axis, ...], include: list[tuple[dict[str, Any], Where]], variables: list[str]
) -> tuple[str, ...]:
    values: dict[str, set[str]] = {v: set() for v in variables}
    for axis in axes:
        for keys in axis.keys:
            for name, key in zip(axis.names, keys):
                values[name].add(key)
    for combo, _ in include:
        for name in variables:
            values[name].add(canonical_json(normalize(combo[name])))
    return tuple(v for v in variables if len(values[v]) > 1)


def _static_filename_check(ck: _Checker, path: PathKey, template: Template) -> None:
    literal = template.source
    if literal.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", literal):
        ck.error(path, "a filename must be relative to the output folder, not absolute")
    elif "\\" in template.literal:
        ck.error(path, "use / to separate folders in a filename, not \\")
    elif any(seg in ("..", ".") for seg in literal.split("/")):
        ck.error(path, "a filename may not contain . or .. segments (it must stay inside the output folder)")
