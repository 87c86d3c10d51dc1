"""``lumozbatch status``: what the ledger knows, as a table like ``plan``'s (people) or a dict
(``--json``).

Pure: takes the replayed ``LedgerState``, returns text or data.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from lumozbatch.ui.summary import Tally, group_by_cause, state_name, tally

__all__ = ["STATUS_COLUMNS", "render_status", "status_data"]

#: Columns of the table, in the order a job moves through them.
STATUS_COLUMNS = ("pending", "in_flight", "done", "failed", "ambiguous")


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


def status_data(state: Any, *, out_dir: Path) -> dict[str, Any]:
    """Everything ``status --json`` prints: counts overall and per manifest job, and every
    failed, ambiguous and in-flight job with its reason."""
    t = tally(state)
    buckets = _bucket(t)
    counts = {name: len(recs) for name, recs in buckets.items()}
    counts["retired"] = t.retired
    counts["total"] = t.total
    per_job: dict[str, dict[str, int]] = {}
    for name, recs in buckets.items():
        for rec in recs:
            row = per_job.setdefault(rec.job, {c: 0 for c in STATUS_COLUMNS} | {"total": 0})
            row[name] += 1
            row["total"] += 1
    batch = state.batch or {}
    return {
        "name": batch.get("name") or Path(out_dir).name,
        "manifest": batch.get("manifest"),
        "out_dir": str(out_dir),
        "counts": counts,
        "jobs": per_job,
        "failed": [_job_row(r) for r in t.failed],
        "ambiguous": [_job_row(r) for r in t.ambiguous],
        "in_flight": [_job_row(r) for r in t.in_flight],
    }


def _table(data: dict[str, Any]) -> list[str]:
    """Aligned rows, like ``plan``'s: one per manifest job, plus ``all`` when there are several."""
    head = ["job", *(c.replace("_", " ") for c in STATUS_COLUMNS), "total"]
    rows = [[job, *(str(row[c]) for c in STATUS_COLUMNS), str(row["total"])] for job, row in data["jobs"].items()]
    if len(rows) != 1:
        counts = data["counts"]
        rows.append(["all", *(str(counts[c]) for c in STATUS_COLUMNS), str(counts["total"])])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  " + "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:]))]).rstrip()

    return [line(head), *(line(r) for r in rows)]


def _headline(counts: dict[str, int]) -> str:
    parts = [f"{counts[c]} {c.replace('_', ' ')}" for c in ("done", "failed", "ambiguous", "in_flight", "pending")
             if counts[c]]
    noun = "job" if counts["total"] == 1 else "jobs"
    return f"  {counts['total']} {noun}: " + (", ".join(parts) if parts else "none yet")


def render_status(state: Any, *, out_dir: Path) -> str:
    """The ``status`` page: counts per job and state, each failure and ambiguous submission
    with its reason, and the commands that continue or retry."""
    data = status_data(state, out_dir=out_dir)
    counts = data["counts"]
    manifest = f"; manifest {data['manifest']}" if data["manifest"] else ""
    out = [f"Status of {data['name']} ({out_dir}{manifest})", _headline(counts), "", *_table(data)]
    if counts["retired"]:
        out.append(f"  + {counts['retired']} no longer in the manifest (kept in the ledger)")
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
    retried = [r for r in tally(state).pending if r.attempts and r.reason]
    if retried:
        # Sent before, certainly created nothing (connection refused, 429, 5xx): say why.
        out += ["", f"  not sent yet after {len(retried)} attempt(s) that created nothing:"]
        out += ["  " + line for line in group_by_cause(retried)]
    steps = []
    if counts["pending"] or counts["in_flight"]:
        steps.append(f"    continue:                 {shlex.join(['lumozbatch', 'resume', str(out_dir)])}")
    if data["manifest"] and (counts["failed"] or counts["ambiguous"]):
        apply = shlex.join(["lumozbatch", "apply", str(data["manifest"]), "--out", str(out_dir)])
        if counts["failed"]:
            steps.append(f"    retry the failed jobs:    {apply} --retry-failed")
        if counts["ambiguous"]:
            steps.append(f"    resubmit the ambiguous (may pay twice): {apply} --resubmit-ambiguous")
    if steps:
        out += ["", "  next:", *steps]
    return "\n".join(out) + "\n"
