"""``lumozbatch status``: what the ledger knows, as a table like ``plan``'s (people) or a dict
(``--json``).

Takes the batch's store (its aggregates: counts, causes, the first jobs of each kind) and
what the shell looked at (the cheap survey of the outputs on disk, the manifest's prices,
the pid of a run in progress), returns text or data.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lumozbatch.core.layout import STATE_DIR
from lumozbatch.core.wording import count
from lumozbatch.ui.summary import (
    Tally,
    cause_lines,
    continue_command,
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
    #: gone from their names and from the store (MISSING jobs included): the first few
    lost: list[Any] = field(default_factory=list)
    lost_count: int | None = None  # all of them (None: ``len(lost)``)
    #: done jobs whose outputs were looked at, of how many (a huge batch is sampled)
    checked: int | None = None
    of: int | None = None


_BUCKETS = {"pending": "new", "in_flight": "in_flight", "done": "done", "failed": "failed", "ambiguous": "ambiguous"}


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
    running: int | str | None = None,
    tallied: Tally | None = None,
) -> dict[str, Any]:
    """Everything ``status --json`` prints: counts overall and per manifest job, the failed,
    ambiguous, in-flight and missing jobs with their reasons (the first hundred of each;
    ``counts`` has them all), the spent (and its cost when ``pricing`` is known), what
    became of retired jobs, and the pid of a run in progress. ``state``: the batch's store
    or snapshot (or a ``LedgerState``)."""
    t = tallied if tallied is not None else tally(state)
    buckets = dict(_BUCKETS)
    lost_count = t.n("missing") if outputs is None else (
        outputs.lost_count if outputs.lost_count is not None else len(outputs.lost))
    if t.n("missing"):
        buckets["missing"] = "missing"  # a column only while some are missing
    counts = {name: t.n(category) for name, category in buckets.items()}
    counts["retired"] = t.retired
    counts["total"] = t.total
    per_job: dict[str, dict[str, int]] = {}
    for job, row in t.per_job.items():
        if sum(row.values()):
            per_job[job] = {name: row[category] for name, category in buckets.items()}
            per_job[job]["total"] = sum(per_job[job].values())
    batch = state.batch or {}
    lost = outputs.lost if outputs is not None else t.listed.get("missing", [])
    return {
        "name": batch.get("name") or Path(out_dir).name,
        "manifest": batch.get("manifest"),
        "out_dir": str(out_dir),
        "sandbox": batch.get("api") == "sandbox",
        "run_in_progress": running,
        "counts": counts,
        "jobs": per_job,
        "failed": [_job_row(r) for r in t.listed.get("failed", [])],
        "ambiguous": [_job_row(r) for r in t.listed.get("ambiguous", [])],
        "in_flight": [_job_row(r) for r in t.listed.get("in_flight", [])],
        "missing": [_job_row(r) for r in lost],
        "missing_count": lost_count,
        "outputs_checked": None if outputs is None else outputs.checked,
        "outputs_of": None if outputs is None else outputs.of,
        "restorable": outputs.restorable if outputs is not None else 0,
        "unkept": outputs.unkept if outputs is not None else 0,
        "retired_kept": t.retired_kept,
        "followed": t.retired_followed,
        "spent": t.spend.generations,
        "spent_by_model": dict(t.spend.by_model),
        "cost": t.spend.cost(pricing).total if pricing else None,
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
    running: int | str | None = None,
) -> str:
    """The ``status`` page: counts per job and state, each failure and ambiguous submission
    with its reason (the first hundred), missing outputs by name, the spent, and the
    commands that continue or retry (none while a run is in progress: it holds the batch)."""
    t = tally(state)
    data = status_data(state, out_dir=out_dir, outputs=outputs, pricing=pricing, running=running, tallied=t)
    counts = data["counts"]
    manifest = f"; manifest {data['manifest']}" if data["manifest"] else ""
    out = [f"Status of {data['name']} ({out_dir}{manifest})", _headline(counts), "", *_table(data)]
    if running is not None:
        who = f"pid {running}" if isinstance(running, int) else running  # a shared store names the host
        out.insert(1, f"  a run is in progress ({who}): these counts are changing")
    if counts["retired"]:
        out.append(f"  + {counts['retired']} no longer in the manifest (kept in the ledger)")
        out += retired_lines(t)
    out += _problems(data)
    out += _outputs(data)
    if t.retried:
        # Sent before, certainly created nothing (connection refused, 429, 5xx): say why.
        out += ["", f"  not sent yet after {sum(c.count for c in t.retried)} attempt(s) that created nothing:"]
        out += ["  " + line for line in cause_lines(t.retried)]
    spent = t.spend.line(pricing)
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
        out += ["", f"  {title} ({data['counts'][title]}){note}:"]
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
        one = data["restorable"] == 1
        shows = "does not show its output" if one else "do not show their outputs"
        out += ["", f"  {count(data['restorable'], 'named file')} {shows} (deleted or replaced by "
                    f"hand): apply puts {'it' if one else 'them'} back from {STATE_DIR}/objects, for free"]
    if data["unkept"]:
        out += ["", f"  {count(data['unkept'], 'output')} from before {STATE_DIR}/objects: apply keeps them there"]
    if data["outputs_of"] and data["outputs_checked"] < data["outputs_of"]:
        out += ["", f"  outputs on disk: looked at the first {data['outputs_checked']} of {data['outputs_of']} "
                    "done jobs (apply checks them all)"]
    if data["missing"]:
        out += ["", f"  missing ({data['missing_count']}): gone from disk and from {STATE_DIR}/objects:"]
        out += missing_lines([_Row(r) for r in data["missing"]], data["missing_count"])
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
