"""The gallery: ``<out>/index.html``, a static contact sheet of a batch's outputs.

Each manifest job gets its own sheet. Rows and columns are two of the variables that vary
within it (the viewer switches them with two select boxes, or with
``index.html#rows=NAME&cols=NAME&size=PX``; a job without the chosen variable falls back to
its own); the other varying variables split the sheet into sections. Each cell shows the
image (a relative ``src``, so the folder can be moved or zipped) with a caption of its
variables and seed; failed and ambiguous jobs show their reason. One self-contained file: inline CSS and JS, the data as
embedded JSON, no server, no CDN.

``gallery_html`` is pure; ``build_cells`` streams the batch's jobs from its store;
``write_gallery`` reads the store (and ``results.jsonl`` where a record lacks its file) and
writes the file atomically. A huge batch shows the first ``CELLS_PER_JOB`` cells of each
job and counts the rest.
"""

from __future__ import annotations

import contextlib
import json
import re
from html import escape
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable
from urllib.parse import quote

from lumozbatch.shell.first_jobs import first_jobs
from lumozbatch.shell.outputs import GALLERY_FILE
from lumozbatch.shell.state_reads import reads_of
from lumozbatch.ui.summary import state_name

if TYPE_CHECKING:
    from lumozbatch.shell.outputs import Outputs

__all__ = ["CELLS_PER_JOB", "GALLERY_FILE", "axes", "build_cells", "gallery_html", "write_gallery"]

#: Cells of one manifest job on the page: a sheet a browser draws at once, whatever the
#: batch's size (the counts above it cover every job).
CELLS_PER_JOB = 2000
_MARKER = re.compile(r"\{\{(TITLE|DATA)\}\}")

# Pseudo-variables a cell gets when they tell cells apart: the seed when it is not a
# variable of its own (random seeds), the repeat index.
_SEED, _REPEAT = "seed", "repeat"


def _seed(params: dict[str, Any] | None) -> Any:
    return (params or {}).get("seed")


def build_cells(
    state: Any, results: Iterable[dict[str, Any]] = (), *, per_job: int | None = None
) -> list[dict[str, Any]]:
    """One dict per active job of the batch (its store, snapshot or ``LedgerState``), in
    plan order, streamed: the first ``per_job`` of each manifest job when given.

    ``results`` (rows of results.jsonl) supply the file when the ledger's record lacks it.
    """
    files = {row.get("identity"): row.get("file") for row in results if row.get("file")}
    cells = []
    for rec in first_jobs(reads_of(state), per_job):
        identity = rec.identity
        file = rec.file or files.get(identity)
        status = state_name(rec)  # a live run's "submitting" is in flight, as everywhere
        variables = dict(rec.variables or {})
        cells.append(
            {
                "identity": identity,
                "key": identity[:12],
                "job": rec.job,
                "model": rec.model,
                "repeat": rec.repeat,
                "variables": variables,
                "seed": _seed(rec.params),
                "prompt": (rec.params or {}).get("prompt"),
                "state": status,
                "src": quote(file, safe="/") if file and status == "done" else None,
                "file": file,
                "reason": rec.reason,
                "code": rec.code,
            }
        )
    return cells


def _value_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def axes(cells: list[dict[str, Any]]) -> list[str]:
    """The names that vary across ``cells`` (one manifest job's), in first-seen (grid)
    order: the job's variables, then ``seed`` when seeds differ and no variable sets them
    (random seeds), then ``repeat`` when the job repeats."""
    names: list[str] = []
    for cell in cells:
        for name in cell["variables"]:
            if name not in names:
                names.append(name)
    names += [n for n in (_SEED, _REPEAT) if n not in names]
    return [n for n in names if len({_value_key(c["vars"].get(n)) for c in cells}) > 1]


def _with_pseudo(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each cell with ``vars``: its variables plus the pseudo-variables it needs."""
    out = []
    for cell in cells:
        v = dict(cell["variables"])
        v.setdefault(_SEED, cell["seed"])
        v.setdefault(_REPEAT, cell["repeat"])
        out.append({**cell, "vars": v})
    return out


def _jobs(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each manifest job in plan order with the axes that vary within it: every job gets
    its own sheet, since jobs rarely share variables."""
    by_job: dict[str, list[dict[str, Any]]] = {}
    for cell in cells:
        by_job.setdefault(cell["job"], []).append(cell)
    return [{"id": job, "model": members[0]["model"], "axes": axes(members)} for job, members in by_job.items()]


def _embed_json(data: Any) -> str:
    # Inside <script>: no "</script>", no HTML comment openers, whatever the prompts hold.
    text = json.dumps(data, ensure_ascii=False, sort_keys=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def gallery_html(cells: list[dict[str, Any]], *, title: str, counts: dict[str, int] | None = None) -> str:
    """The whole page for ``cells`` (from ``build_cells``)."""
    cells = _with_pseudo(cells)
    jobs = _jobs(cells)
    union: list[str] = []
    for job in jobs:
        union += [a for a in job["axes"] if a not in union]
    first = jobs[0]["axes"] if jobs else []
    data = {
        "title": title,
        "axes": union,
        "jobs": jobs,
        "default_rows": first[0] if first else None,
        "default_cols": first[1] if len(first) > 1 else None,
        "counts": counts or {},
        "cells": cells,
    }
    template = resources.files("lumozbatch.ui").joinpath("gallery.html").read_text(encoding="utf-8")
    values = {"TITLE": escape(title), "DATA": _embed_json(data)}
    # One pass: a prompt or a title holding "{{DATA}}" is never substituted again.
    return _MARKER.sub(lambda m: values[m.group(1)], template)


def write_gallery(out_dir: Path, outputs: Outputs | None = None, *, reads: Any = None) -> str:
    """Write ``index.html`` from the batch's store (``reads``, else the one in ``out_dir``)
    (and results.jsonl for outputs whose record lacks its file) into ``outputs`` (default: the
    folder ``out_dir``); return where it went. Its links are relative, so it works wherever
    the outputs are served.

    A page a browser opens at any batch size: the first :data:`CELLS_PER_JOB` cells of each
    manifest job, and the counts of every state (with how many cells are not shown).
    Raises LedgerNotFound when ``out_dir`` holds no ledger.
    """
    from lumozbatch.shell.outputs import as_outputs
    from lumozbatch.shell.state import open_reads

    out_dir = Path(out_dir)
    where = as_outputs(out_dir if outputs is None else outputs)
    with contextlib.nullcontext(reads) if reads is not None else open_reads(out_dir) as reads:
        cells = build_cells(reads, per_job=CELLS_PER_JOB)
        if any(c["file"] is None and c["state"] == "done" for c in cells):  # older batches only
            cells = build_cells(reads, where.read_results(), per_job=CELLS_PER_JOB)
        counts = {state: n for state, n in reads.counts().items() if n and state not in ("retired", "total")}
        title = (reads.batch or {}).get("name") or out_dir.name
        hidden = reads.counts()["total"] - len(cells)
    if hidden:
        counts[f"not shown (the first {CELLS_PER_JOB} of each job are)"] = hidden
    return where.write_index(gallery_html(cells, title=title, counts=counts))
