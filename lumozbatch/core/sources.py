"""``{file: ...}`` axis sources: the text of a ``.txt``, ``.csv`` or ``.jsonl`` file -> values.

Pure parsing; ``lumozbatch.manifest_io`` reads the files. Every value remembers the line it
came from, so a bad value is reported as ``source.csv:7:1``.

- ``.txt``: one string per non-empty line (surrounding whitespace stripped). There are no
  comments: a prompt may start with ``#``, so a ``#`` line is a value too, and a warning says so.
- ``.csv``: a header row of variable names, then one row per combination; cells are strings.
- ``.jsonl``: one JSON object per non-empty line, all with the same keys; values keep their
  JSON types (use it for numbers), and must be strings, numbers or booleans.
"""

from __future__ import annotations

import csv
import io
import json
import math
from array import array
from dataclasses import dataclass
from typing import Any

from lumozbatch.core.where import Places, Where
from lumozbatch.core.wording import count
from lumozbatch.errors import Diagnostic

__all__ = ["SUFFIXES", "Table", "parse_source"]

SUFFIXES = (".txt", ".csv", ".jsonl")


@dataclass(frozen=True, slots=True)
class Table:
    """Parsed source: column names and rows (each with where it came from)."""

    names: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    wheres: Places  # of each row: a source's lines, or a manifest list's items


def parse_source(text: str, shown: str, suffix: str, column: str) -> tuple[Table | None, list[Diagnostic]]:
    """Parse a source file's ``text``; ``shown`` names it in diagnostics.

    ``column`` names the single variable of a ``.txt`` source.
    """
    if suffix == ".txt":
        return _txt(text, shown, column)
    if suffix == ".csv":
        return _csv(text, shown)
    if suffix == ".jsonl":
        return _jsonl(text, shown)
    return None, [Where(shown, 1, 1).diag(f"unsupported source type {suffix or '(none)'}; use .txt, .csv or .jsonl")]


def _txt(text: str, shown: str, column: str) -> tuple[Table | None, list[Diagnostic]]:
    rows: list[tuple[Any, ...]] = []
    wheres = Places(shown, None, array("i"))
    for number, line in enumerate(text.splitlines(), start=1):
        value = line.strip()
        if value:
            rows.append((value,))
            wheres.positions.extend((number, 1))
    if not rows:
        return None, [Where(shown, 1, 1).diag("the file has no non-empty line: nothing to generate")]
    return Table((column,), tuple(rows), wheres), _hash_lines_warning(rows, wheres)


def _hash_lines_warning(rows: list[tuple[Any, ...]], wheres: Places) -> list[Diagnostic]:
    hashed = [wheres[j] for j, (value,) in enumerate(rows) if value.startswith("#")]
    if not hashed:
        return []
    first = hashed[0]
    starts = count(len(hashed), "line") + (" starts" if len(hashed) == 1 else " start")
    message = (
        f"{starts} with # (first: line {first.line}): a .txt source has no comments, "
        + ("it is a value; delete it if it is a note" if len(hashed) == 1 else "each is a value; delete them if they are notes")
    )
    return [first.diag(message, severity="warning")]


def _csv(text: str, shown: str) -> tuple[Table | None, list[Diagnostic]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    problems: list[Diagnostic] = []
    header: list[str] | None = None
    rows: list[tuple[Any, ...]] = []
    wheres = Places(shown, None, array("i"))
    try:
        for record in reader:
            number = reader.line_num
            if not record or all(not cell.strip() for cell in record):
                continue
            if header is None:
                header = [cell.strip() for cell in record]
                problems += _check_names(header, Where(shown, number, 1))
                continue
            if len(record) != len(header):
                problems.append(
                    Where(shown, number, 1).diag(
                        f"row has {len(record)} cells, the header has {len(header)}"
                    )
                )
                continue
            rows.append(tuple(record))
            wheres.positions.extend((number, 1))
    except csv.Error as exc:
        problems.append(Where(shown, reader.line_num or 1, 1).diag(f"CSV: {exc}"))
    if header is None:
        problems.append(Where(shown, 1, 1).diag("the CSV file is empty (it needs a header row)"))
    elif not rows and not problems:
        problems.append(Where(shown, 1, 1).diag("the CSV file has a header but no rows"))
    if problems or header is None:
        return None, problems
    return Table(tuple(header), tuple(rows), wheres), []


def _jsonl(text: str, shown: str) -> tuple[Table | None, list[Diagnostic]]:
    problems: list[Diagnostic] = []
    names: tuple[str, ...] | None = None
    rows: list[tuple[Any, ...]] = []
    wheres = Places(shown, None, array("i"))
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = Where(shown, number, 1)
        try:
            obj = json.loads(line, parse_constant=_refuse_constant)
        except ValueError as exc:
            problems.append(where.diag(f"not valid JSON: {exc}"))
            continue
        if not isinstance(obj, dict) or not obj:
            problems.append(where.diag("each line must be a JSON object with at least one key"))
            continue
        keys = tuple(obj)
        if names is None:
            names = keys
            problems += _check_names(list(keys), where)
        elif set(keys) != set(names):
            problems.append(
                where.diag(f"keys {sorted(keys)} differ from the first line's {sorted(names)}")
            )
            continue
        bad = [k for k, v in obj.items() if not _is_scalar(v)]
        if bad:
            problems.append(where.diag(f"{bad[0]}: values must be strings, numbers or booleans"))
            continue
        rows.append(tuple(obj[k] for k in names))
        wheres.positions.extend((number, 1))
    if names is None and not problems:
        problems.append(Where(shown, 1, 1).diag("the file has no JSON line: nothing to generate"))
    if problems or names is None:
        return None, problems
    return Table(names, tuple(rows), wheres), []


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number lumozbatch can send")


def _is_scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, int, bool))


def _check_names(names: list[str], where: Where) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    seen: set[str] = set()
    for name in names:
        if not name.isidentifier() or not name.isascii():
            out.append(where.diag(f"column {name!r} is not a plain variable name (letters, digits, _)"))
        elif name in seen:
            out.append(where.diag(f"column {name!r} appears twice"))
        seen.add(name)
    return out
