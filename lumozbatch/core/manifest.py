"""What a validated manifest is: its jobs (``JobDef``) and settings (``Manifest``).

Words: a ``jobs:`` entry of the manifest is built into a ``JobDef``; each generation it
expands to is a ``JobSpec`` (whose ``job`` is the entry's id).

``lumozbatch.manifest_io.load_manifest`` builds one (via ``lumozbatch.core.build``) and
``lumozbatch.core.grid.expand`` turns it into JobSpecs. Building and validating live in
``core/build.py`` (the document), ``core/jobbuild.py`` (each entry), ``core/axisbuild.py``
(its variables) and ``core/gridcheck.py`` (what only the expanded grid shows).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lumozbatch.core.identity import canonical_json, normalize
from lumozbatch.core.where import Places, Where
from lumozbatch.core.templates import Template
from lumozbatch.errors import Diagnostic

__all__ = ["BUILTINS", "Axis", "JobDef", "Manifest", "SourceText", "value_key"]


#: Names filename templates know besides the job's variables.
BUILTINS = ("job", "model", "index", "repeat", "key")


@dataclass(frozen=True, slots=True)
class SourceText:
    """A ``file:`` source as read by the I/O layer: its text, or why it could not be read."""

    shown: str  # the path as diagnostics should show it
    text: str | None = None
    error: str | None = None


def value_key(value: Any) -> str:
    """A variable's value as ``exclude`` matches it (``1`` and ``1.0`` alike), and as "does
    it vary" compares it: made when needed, never kept per value."""
    return canonical_json(normalize(value))


@dataclass(frozen=True)
class Axis:
    """One axis of a job's product: a matrix variable, or the zip group (several variables)."""

    names: tuple[str, ...]
    #: each variable's values, in row order (a column, not a tuple per row: a 100,000-seed
    #: list keeps one tuple of its values)
    columns: tuple[tuple[Any, ...], ...]
    wheres: Places  # where each row was written
    cells: tuple[Places, ...] = ()  # per column, where each value was written
    text_cells: bool = False  # values came from a CSV file: text, numbers not yet recognised

    @classmethod
    def of_rows(
        cls, names: tuple[str, ...], rows: tuple[tuple[Any, ...], ...], wheres: Places, *, text_cells: bool = False
    ) -> Axis:
        columns = tuple(zip(*rows)) if rows else tuple(() for _ in names)
        return cls(names, columns, wheres, text_cells=text_cells)

    @property
    def size(self) -> int:
        """How many rows (values of each variable)."""
        return len(self.columns[0])

    def rows(self) -> Iterator[tuple[Any, ...]]:
        """Each row's values, made as they are read."""
        return zip(*self.columns)


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
