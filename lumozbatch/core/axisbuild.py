"""A ``jobs:`` entry's variables: its axes (matrix lists, zip groups, ``file:`` sources),
its ``include`` entries, and the count of its combinations after ``exclude``.

See ``lumozbatch.core.build`` for the rules. Reports through ``Diagnostics``; the ``file:``
sources come in as text (``lumozbatch.manifest_io`` reads them).
"""

from __future__ import annotations

import itertools
import math
import re
from array import array
from collections.abc import Iterable, Mapping
from typing import Any

from lumozbatch.core.diagnostics import Diagnostics
from lumozbatch.core.gridcheck import repeated
from lumozbatch.core.jobspec import RANDOM_SEED
from lumozbatch.core.manifest import Axis, SourceText, value_key
from lumozbatch.core.sources import SUFFIXES, Table, parse_source
from lumozbatch.core.where import Where
from lumozbatch.core.wording import count, show, suggest
from lumozbatch.core.yamlsafe import PathKey

__all__ = [
    "build_axes",
    "build_include",
    "count_and_excludes",
    "is_file_source",
    "read_csv_numbers",
    "varying_variables",
]


def is_file_source(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"file"} and isinstance(value["file"], str)


def build_axes(
    diag: Diagnostics, sources: Mapping[str, SourceText], entry_path: PathKey, entry: dict[str, Any]
) -> tuple[tuple[Axis, ...], bool]:
    """The job's axes, and whether every one of them could be built."""
    axes: list[Axis] = []
    complete = True
    for name, spec in (entry.get("matrix") or {}).items():
        path = entry_path + ("matrix", name)
        table = _axis_values(diag, sources, path, name, spec, matrix=True)
        if table is None:
            complete = False
        else:
            _no_duplicate_values(diag, table, name)
            axes.append(Axis.of_rows(table.names, table.rows, table.wheres))
    zspec = entry.get("zip")
    if zspec is not None:
        if is_file_source(zspec):
            table = _axis_values(diag, sources, entry_path + ("zip",), "", zspec, matrix=False)
            complete = complete and table is not None
            if table is not None:
                axes.append(Axis.of_rows(table.names, table.rows, table.wheres, text_cells=zspec["file"].lower().endswith(".csv")))
        else:
            columns: list[Table] = []
            for name, spec in zspec.items():
                table = _axis_values(diag, sources, entry_path + ("zip", name), name, spec, matrix=False)
                if table is not None:
                    columns.append(table)
            complete = complete and len(columns) == len(zspec)
            if columns and len(columns) == len(zspec):
                lengths = {t.names[0]: len(t.rows) for t in columns}
                if len(set(lengths.values())) > 1:
                    shown = ", ".join(f"{n}: {k}" for n, k in lengths.items())
                    diag.error(entry_path + ("zip",), f"zip lists must have equal lengths, got {shown}", key=True)
                    complete = False
                else:
                    axes.append(
                        Axis(
                            tuple(t.names[0] for t in columns),
                            tuple(tuple(row[0] for row in t.rows) for t in columns),
                            columns[0].wheres,
                            tuple(t.wheres for t in columns),
                        )
                    )
    return tuple(axes), complete


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


def read_csv_numbers(axis: Axis, props: dict[str, Any], param_vars: list[str]) -> Axis:
    """CSV cells are text; in a column that sets a numeric parameter, read numbers as numbers."""
    columns = [i for i, name in enumerate(axis.names) if name in param_vars and _numeric(props.get(name, {}))]
    if not columns:
        return axis
    cast = list(axis.columns)
    for i in columns:
        cast[i] = tuple(_number(cell) for cell in axis.columns[i])
    return Axis(axis.names, tuple(cast), axis.wheres, axis.cells, text_cells=True)


def _number(cell: str) -> int | float | str:
    text = cell.strip()
    if _INTEGER.fullmatch(text):
        return int(text)
    if _NUMBER.fullmatch(text):
        return float(text)
    return cell


def _no_duplicate_values(diag: Diagnostics, table: Table, name: str) -> None:
    """A value listed twice. The keys of a 100,000-value list are hashed, not kept: only
    values whose hash repeats are looked at again."""
    hashes = array("q", (hash(value_key(row[0])) for row in table.rows))
    suspects = repeated(hashes)
    if not suspects:
        return
    seen: dict[str, int] = {}
    for j, row in enumerate(table.rows):
        if hashes[j] not in suspects:
            continue
        key = value_key(row[0])
        if key in seen:
            first = table.wheres[seen[key]]
            advice = " (for several random seeds, use repeat: N)" if name == "seed" and row[0] in ("", RANDOM_SEED) else ""
            diag.errors.append(
                table.wheres[j].diag(f"{name}: the value {show(row[0])} appears twice (also at line {first.line}); every combination would run twice{advice}")
            )
        else:
            seen[key] = j


def _axis_values(
    diag: Diagnostics, sources: Mapping[str, SourceText], path: PathKey, name: str, spec: Any, *, matrix: bool
) -> Table | None:
    """One axis's values: a list written in the manifest, or a ``file:`` source's rows."""
    if isinstance(spec, list):
        wheres = diag.places(path)
        for j, value in enumerate(spec):
            if isinstance(value, float) and not math.isfinite(value):
                diag.error(path + (j,), f"{value!r} is not a finite number")
                return None
        return Table((name,), tuple((v,) for v in spec), wheres)
    ref: str = spec["file"]
    fpath = path + ("file",)
    source = sources.get(ref)
    suffix = "." + ref.rsplit(".", 1)[-1].lower() if "." in ref.rsplit("/", 1)[-1] else ""
    if source is None or source.error is not None:
        reason = source.error if source is not None else "it was not read"
        shown = f" ({source.shown})" if source is not None and source.shown != ref else ""
        diag.error(fpath, f"cannot read the source {ref!r}{shown}: {reason}")
        return None
    if suffix not in SUFFIXES:
        diag.error(fpath, f"unsupported source type {suffix or '(no extension)'}: use .txt, .csv or .jsonl")
        return None
    if name and suffix != ".txt":
        diag.error(
            fpath,
            f"a {suffix} source gives one variable per column: "
            + ("use it in zip as `zip: {file: ...}`" if not matrix else "use it in zip, not in matrix"),
        )
        return None
    if not name and suffix == ".txt":
        diag.error(fpath, "a .txt source gives one list: name it inside zip (`zip: {name: {file: x.txt}}`)")
        return None
    assert source.text is not None
    table, problems = parse_source(source.text, source.shown, suffix, name)
    for problem in problems:
        (diag.warnings if problem.severity == "warning" else diag.errors).append(problem)
    return table


def build_include(
    diag: Diagnostics, entry_path: PathKey, entry: dict[str, Any], variables: list[str]
) -> list[tuple[dict[str, Any], Where]]:
    out: list[tuple[dict[str, Any], Where]] = []
    expected = set(variables) if variables else None
    for j, combo in enumerate(entry.get("include") or []):
        path = entry_path + ("include", j)
        if expected is None:
            expected = set(combo)  # a job with only include takes its variables from the first
        missing, extra = expected - set(combo), set(combo) - expected
        if missing or extra:
            parts = []
            if missing:
                parts.append("missing " + ", ".join(sorted(missing)))
            if extra:
                parts.append("unknown " + ", ".join(sorted(extra)))
            diag.error(path, f"an include entry must give every variable of the job ({', '.join(sorted(expected))}): {'; '.join(parts)}")
            continue
        bad = [k for k, v in combo.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            diag.error(path + (bad[0],), f"{combo[bad[0]]!r} is not a finite number")
            continue
        out.append((combo, diag.where(path)))
    return out


def count_and_excludes(
    diag: Diagnostics,
    entry_path: PathKey,
    entry: dict[str, Any],
    axes: tuple[Axis, ...],
    include: list[tuple[dict[str, Any], Where]],
) -> tuple[int, tuple[dict[str, str], ...]]:
    """Validate exclude entries and count the combinations (product - excluded + included)."""
    axis_vars = [n for axis in axes for n in axis.names]
    excludes: list[dict[str, str]] = []
    for j, entry in enumerate(entry.get("exclude") or []):
        unknown = [k for k in entry if k not in axis_vars]
        if unknown:
            diag.error(
                entry_path + ("exclude", j, unknown[0]),
                f"exclude names {unknown[0]!r}, which is not a matrix or zip variable"
                f"{suggest(unknown[0], axis_vars)}",
                key=True,
            )
            continue
        excludes.append({k: value_key(v) for k, v in entry.items()})
    if not axes:
        return (len(include) if include else 1), tuple(excludes)
    # count, and warn about exclude entries that drop nothing (a typo in a value)
    total = math.prod(axis.size for axis in axes)
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
    for e, dropped in enumerate(matched):
        if dropped == 0:
            diag.warn(entry_path + ("exclude", e), "this exclude entry matches no combination")
    if kept == 0 and not include:
        diag.error(entry_path + ("exclude",), f"exclude drops all {count(total, 'combination')}: this job would generate nothing")
    return kept + len(include), tuple(excludes)


def _key_product(axes: tuple[Axis, ...]) -> Iterable[dict[str, str]]:
    per_axis = [[{n: value_key(v) for n, v in zip(axis.names, row)} for row in axis.rows()] for axis in axes]
    for parts in itertools.product(*per_axis):
        combo: dict[str, str] = {}
        for part in parts:
            combo.update(part)
        yield combo


def varying_variables(
    axes: tuple[Axis, ...], include: list[tuple[dict[str, Any], Where]], variables: list[str]
) -> tuple[str, ...]:
    """The variables with more than one value (each compared with its first value: a
    100,000-seed list stops at its second)."""
    first: dict[str, str] = {}
    varying: set[str] = set()

    def see(name: str, values: Iterable[Any]) -> None:
        for value in values:
            if name in varying:
                return
            if first.setdefault(name, key := value_key(value)) != key:
                varying.add(name)

    for axis in axes:
        for name, values in zip(axis.names, axis.columns):
            see(name, values)
    for name in variables:
        see(name, (combo[name] for combo, _ in include))
    return tuple(v for v in variables if v in varying)
