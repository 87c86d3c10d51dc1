"""``lumozbatch status``: what the ledger knows, as a table (people) or a dict (``--json``).

Pure: takes the replayed ``LedgerState``, returns text or data.
"""

from __future__ import annotations

import io
import shlex
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

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


def _table(data: dict[str, Any]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("job")
    for col in STATUS_COLUMNS:
        table.add_column(col.replace("_", " "), justify="right")
    table.add_column("total", justify="right")
    for job, row in data["jobs"].items():
        table.add_row(job, *(str(row[c]) for c in STATUS_COLUMNS), str(row["total"]))
    counts = data["counts"]
    if len(data["jobs"]) != 1:
        table.add_section()
        table.add_row("all", *(str(counts[c]) for c in STATUS_COLUMNS), str(counts["total"]), style="bold")
    return table


def render_status(state: Any, *, out_dir: Path, width: int = 100) -> str:
    """The ``status`` page: counts per job and state, each failure and ambiguous submission
    with its reason, and the commands that continue or retry."""
    data = status_data(state, out_dir=out_dir)
    console = Console(file=io.StringIO(), width=width, color_system=None, highlight=False)
    manifest = f", manifest {data['manifest']}" if data["manifest"] else ""
    console.print(f"batch {data['name']} in {out_dir}{manifest}", markup=False)
    console.print(_table(data))
    counts = data["counts"]
    if counts["retired"]:
        console.print(f"{counts['retired']} job(s) no longer in the manifest (kept in the ledger).")
    for title, rows, note in (
        ("failed", data["failed"], ""),
        ("ambiguous", data["ambiguous"], " (sent, answer lost: may have been billed, no result to fetch)"),
    ):
        if not rows:
            continue
        console.print(f"{title} ({len(rows)}){note}:", markup=False)
        for row in rows:
            code = f" [{row['code']}]" if row["code"] else ""
            billed = " (billed)" if title == "failed" and row["billed"] else ""
            console.print(
                f"  {row['job']}#{row['key']} {row['model']}{code}: {row['reason'] or 'no reason recorded'}{billed}",
                markup=False,
                soft_wrap=True,
            )
    retried = [r for r in tally(state).pending if r.attempts and r.reason]
    if retried:
        # Sent before, certainly created nothing (connection refused, 429, 5xx): say why.
        console.print(f"not sent yet after {len(retried)} attempt(s) that created nothing:", markup=False)
        for line in group_by_cause(retried):
            console.print(line, markup=False, soft_wrap=True)
    steps = []
    resume = shlex.join(["lumozbatch", "resume", str(out_dir)])
    if counts["pending"] or counts["in_flight"]:
        steps.append(f"  continue:                 {resume}")
    if data["manifest"] and (counts["failed"] or counts["ambiguous"]):
        apply = shlex.join(["lumozbatch", "apply", str(data["manifest"]), "--out", str(out_dir)])
        if counts["failed"]:
            steps.append(f"  retry the failed jobs:    {apply} --retry-failed")
        if counts["ambiguous"]:
            steps.append(f"  resubmit the ambiguous (may pay twice): {apply} --resubmit-ambiguous")
    if steps:
        console.print("next:")
        for step in steps:
            console.print(step, markup=False, soft_wrap=True)
    return console.file.getvalue().rstrip() + "\n"  # type: ignore[attr-defined]
