"""One ``jobs:`` entry -> a ``JobDef``: parameters, variables, templates and their checks.

See ``lumozbatch.core.build`` for the rules; this module applies them to one job, reporting
through a ``Checker`` so that every problem of every job is found in one pass.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable
from typing import Any

from lumozbatch.core.checker import Checker
from lumozbatch.core.explain import model_schemas, show, suggest, value_problem
from lumozbatch.core.identity import canonical_json, final_value, normalize
from lumozbatch.core.jobspec import RANDOM_SEED
from lumozbatch.core.manifest import BUILTINS, Axis, JobDef
from lumozbatch.core.sources import SUFFIXES, Table, Where, parse_source
from lumozbatch.core.templates import Template, TemplateError, parse_template
from lumozbatch.core.yamlsafe import PathKey

__all__ = ["FORBIDDEN_KEYS", "build_job", "is_file_source"]


FORBIDDEN_KEYS = re.compile(r"^api[_-]?key$", re.IGNORECASE)


def is_file_source(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"file"} and isinstance(value["file"], str)


def build_job(
    ck: Checker, i: int, raw: dict[str, Any], defaults: dict[str, Any], output_filename: str | None
) -> JobDef | None:
    before = len(ck.problems)
    jp: PathKey = ("jobs", i)
    model: str = raw["model"]
    schema = model_schemas().get(model)
    props: dict[str, Any] = schema.get("properties", {}) if schema else {}
    if schema is None:
        ck.warn(
            jp + ("model",),
            f"unknown model {model!r}{suggest(model, model_schemas())}: its parameters are sent "
            "unchecked (known models: " + ", ".join(model_schemas()) + ")",
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
                f"{model} has no parameter {name!r}{suggest(name, props)}; it has: {', '.join(props)}",
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
        if name == "model_id" or FORBIDDEN_KEYS.match(name):
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
                        f"unknown name {{{name}}} in the filename template{for_job}{suggest(name, variables + list(BUILTINS))}; "
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
                f"{suggest(name, props)} (a typo?)",
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
                    f"{suggest(field_name, variables)}; "
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
            params[name] = final_value(name, value)
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


def _check_value(ck: Checker, model: str, name: str, value: Any, path: PathKey) -> None:
    _check_value_at(ck, model, name, value, ck.where(path))


def _check_value_at(ck: Checker, model: str, name: str, value: Any, where: Where) -> None:
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


def _check_template_values(ck: Checker, axes: tuple[Axis, ...], include: list[tuple[dict[str, Any], Where]], used: set[str]) -> None:
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


def _check_passthrough(ck: Checker, path: PathKey, value: Any) -> None:
    try:
        normalize(value)
    except ValueError as exc:
        ck.error(path, str(exc))


def _build_axes(ck: Checker, jp: PathKey, raw: dict[str, Any]) -> tuple[tuple[Axis, ...], bool]:
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
        if is_file_source(zspec):
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


def _no_duplicate_values(ck: Checker, table: Table, name: str) -> None:
    seen: dict[str, Where] = {}
    for row, where in zip(table.rows, table.wheres):
        key = canonical_json(normalize(row[0]))
        if key in seen:
            first = seen[key]
            advice = " (for several random seeds, use repeat: N)" if name == "seed" and row[0] in ("", RANDOM_SEED) else ""
            ck.problems.append(
                where.diag(f"{name}: the value {show(row[0])} appears twice (also at line {first.line}); every combination would run twice{advice}")
            )
        else:
            seen[key] = where


def _axis_values(ck: Checker, path: PathKey, name: str, spec: Any, *, matrix: bool) -> Table | None:
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
    ck: Checker, jp: PathKey, raw: dict[str, Any], variables: list[str]
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
    ck: Checker,
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
                f"{suggest(unknown[0], axis_vars)}",
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


def _static_filename_check(ck: Checker, path: PathKey, template: Template) -> None:
    literal = template.source
    if literal.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", literal):
        ck.error(path, "a filename must be relative to the output folder, not absolute")
    elif "\\" in template.literal:
        ck.error(path, "use / to separate folders in a filename, not \\")
    elif any(seg in ("..", ".") for seg in literal.split("/")):
        ck.error(path, "a filename may not contain . or .. segments (it must stay inside the output folder)")
