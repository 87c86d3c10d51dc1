"""``lumozbatch status``: what the ledger knows, as a table like ``plan``'s (people) or a dict
(``--json``).

Pure: takes the replayed ``LedgerState`` and what the shell looked at (the cheap survey of
the outputs on disk, the manifest's prices, the pid of a run in progress), returns text or
data.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lumozbatch.core.layout import STATE_DIR
from lumozbatch.core.spend import spend_of
from lumozbatch.ui.summary import (
    Tally,
    continue_command,
    group_by_cause,
    missing_lines,
    retired_lines,
    state_name,
    tally,
)

__all__ = ["STATUS_COLUMNS", "OutputsSeen", "render_status", "status_data"]

#: Columns of the table, in the order a job moves through them.
STATUS_COLUMNS = ("pending", "in_flight", "done", "failed", "ambiguous")


@dataclass(frozen=True)
class OutputsSeen:
    """What a look at the output folder found (``shell.reconcile.survey_outputs``)."""

    #: names that do not show their outputs; the kept copy puts them back for free
    restorable: int = 0
    #: outputs from before the store; the next apply keeps them
    unkept: int = 0
    #: gone from their names and from the store (MISSING jobs included)
    lost: list[Any] = field(default_factory=list)


def _bucket(t: Tally) -> dict[str, list[Any]]:
    return {
        "pending": t.pending,
        "in_flight": t.in_flight,
        "done": t.done,
        "failed": t.failed,
        "ambiguous": t.ambiguous,
    }


def _job_row(rec: Any) -> dict[str, Any]:
    return {
        "identity": rec.identity,
        "key": rec.identity[:12],
        "job": rec.job,
        "model": rec.model,
        "variables": rec.variables,
        "state": state_name(rec),
        "request_id": rec.request_id,
        "reason": rec.reason,
        "code": rec.code,
        "attempts": rec.attempts,
        "billed": rec.billed,
        "file": rec.file,
    }


def status_data(
    state: Any,
    *,
    out_dir: Path,
    outputs: OutputsSeen | None = None,
    pricing: dict[str, float] | None = None,
    running: int | None = None,
) -> dict[str, Any]:
    """Everything ``status --json`` prints: counts overall and per manifest job, every failed,
    ambiguous, in-flight and missing job with its reason, the spent (and its cost when
    ``pricing`` is known), what became of retired jobs, and the pid of a run in progress."""
    t = tally(state)
    buckets = _bucket(t)
    if t.missing:
        buckets["missing"] = t.missing  # a column only while some are missing
    counts = {name: len(recs) for name, recs in buckets.items()}
    counts["retired"] = t.retired
    counts["total"] = t.total
    per_job: dict[str, dict[str, int]] = {}
    for name, recs in buckets.items():
        for rec in recs:
            row = per_job.setdefault(rec.job, dict.fromkeys(buckets, 0) | {"total": 0})
            row[name] += 1
            row["total"] += 1
    batch = state.batch or {}
    spend = spend_of(state.jobs.values())
    lost = outputs.lost if outputs is not None else t.missing
    return {
        "name": batch.get("name") or Path(out_dir).name,
        "manifest": batch.get("manifest"),
        "out_dir": str(out_dir),
        "sandbox": batch.get("api") == "sandbox",
        "run_in_progress": running,
        "counts": counts,
        "jobs": per_job,
        "failed": [_job_row(r) for r in t.failed],
        "ambiguous": [_job_row(r) for r in t.ambiguous],
        "in_flight": [_job_row(r) for r in t.in_flight],
        "missing": [_job_row(r) for r in lost],
        "restorable": outputs.restorable if outputs is not None else 0,
        "unkept": outputs.unkept if outputs is not None else 0,
        "retired_kept": t.retired_kept,
        "followed": t.retired_followed,
        "spent": spend.generations,
        "spent_by_model": dict(spend.by_model),
        "cost": spend.cost(pricing).total if pricing else None,
    }


def _table(data: dict[str, Any]) -> list[str]:
    """Aligned rows, like ``plan``'s: one per manifest job, plus ``all`` when there are several."""
    columns = [c for c in data["counts"] if c not in ("retired", "total")]
    head = ["job", *(c.replace("_", " ") for c in columns), "total"]
    rows = [[job, *(str(row[c]) for c in columns), str(row["total"])] for job, row in data["jobs"].items()]
    if len(rows) != 1:
        counts = data["counts"]
        rows.append(["all", *(str(counts[c]) for c in columns), str(counts["total"])])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  " + "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:]))]).rstrip()

    return [line(head), *(line(r) for r in rows)]


def _headline(counts: dict[str, int]) -> str:
    order = ("done", "failed", "ambiguous", "in_flight", "missing", "pending")
    parts = [f"{counts[c]} {c.replace('_', ' ')}" for c in order if counts.get(c)]
    noun = "job" if counts["total"] == 1 else "jobs"
    return f"  {counts['total']} {noun}: " + (", ".join(parts) if parts else "none yet")


def render_status(
    state: Any,
    *,
    out_dir: Path,
    outputs: OutputsSeen | None = None,
    pricing: dict[str, float] | None = None,
    running: int | None = None,
) -> str:
    """The ``status`` page: counts per job and state, each failure and ambiguous submission
    with its reason, missing outputs by name, the spent, and the commands that continue or
    retry (none while a run is in progress: it holds the batch)."""
    data = status_data(state, out_dir=out_dir, outputs=outputs, pricing=pricing, running=running)
    counts = data["counts"]
    manifest = f"; manifest {data['manifest']}" if data["manifest"] else ""
    out = [f"Status of {data['name']} ({out_dir}{manifest})", _headline(counts), "", *_table(data)]
    if running is not None:
        out.insert(1, f"  a run is in progress (pid {running}): these counts are changing")
    t = tally(state)
    if counts["retired"]:
        out.append(f"  + {counts['retired']} no longer in the manifest (kept in the ledger)")
        out += retired_lines(t)
    out += _problems(data)
    out += _outputs(data)
    retried = [r for r in t.pending if r.attempts and r.reason]
    if retried:
        # Sent before, certainly created nothing (connection refused, 429, 5xx): say why.
        out += ["", f"  not sent yet after {len(retried)} attempt(s) that created nothing:"]
        out += ["  " + line for line in group_by_cause(retried)]
    spent = spend_of(state.jobs.values()).line(pricing)
    if spent:
        out += ["", f"  {spent}"]
    steps = _next_steps(data, state, out_dir) if running is None else []
    if steps:
        out += ["", "  next:", *steps]
    return "\n".join(out) + "\n"


def _problems(data: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for title, rows, note in (
        ("failed", data["failed"], ""),
        ("ambiguous", data["ambiguous"], ": sent, answer lost; may have been billed, no result to fetch"),
    ):
        if not rows:
            continue
        out += ["", f"  {title} ({len(rows)}){note}:"]
        for row in rows:
            code = f" [{row['code']}]" if row["code"] else ""
            billed = " (billed)" if title == "failed" and row["billed"] else ""
            reason = row["reason"] or "no reason recorded"
            out.append(f"    {row['job']}#{row['key']} {row['model']}{code}: {reason}{billed}")
    return out


def _outputs(data: dict[str, Any]) -> list[str]:
    """What the cheap look at the output folder found."""
    out: list[str] = []
    if data["restorable"]:
        out += ["", f"  {data['restorable']} named file(s) do not show their outputs (deleted or replaced by "
                    f"hand): apply puts them back from {STATE_DIR}/objects, for free"]
    if data["unkept"]:
        out += ["", f"  {data['unkept']} output(s) from before {STATE_DIR}/objects: apply keeps them there"]
    if data["missing"]:
        out += ["", f"  missing ({len(data['missing'])}): gone from disk and from {STATE_DIR}/objects:"]
        out += missing_lines([_Row(r) for r in data["missing"]])
        out.append("  apply restores what it can (a fresh URL from the provider, for free); "
                   "apply --regenerate-missing pays for the rest")
    return out


class _Row:
    """A JSON job row read like a JobRecord, for the summary's missing lines."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.identity, self.job, self.reason = row["identity"], row["job"], row["reason"]
        self.file = row["file"]
        self.filename = row["file"] or row["key"]


def _next_steps(data: dict[str, Any], state: Any, out_dir: Path) -> list[str]:
    counts = data["counts"]
    steps = []
    sandbox = ["--sandbox"] if data["sandbox"] else []
    if counts["pending"] or counts["in_flight"] or data["followed"] or counts.get("missing"):
        resume = continue_command(shlex.join(["lumozbatch", "resume", str(out_dir)]), state)
        steps.append(f"    continue:                 {resume}")
    if data["manifest"]:
        apply = shlex.join(["lumozbatch", "apply", str(data["manifest"]), "--out", str(out_dir), *sandbox])
        if counts["failed"]:
            steps.append(f"    retry the failed jobs:    {apply} --retry-failed")
        if counts["ambiguous"]:
            steps.append(f"    resubmit the ambiguous (may pay twice): {apply} --resubmit-ambiguous")
        if data["missing"] or data["restorable"]:
            steps.append(f"    restore what can be:      {apply}")
        if data["missing"]:
            steps.append(f"    pay again for the rest:   {apply} --regenerate-missing")
    return steps
