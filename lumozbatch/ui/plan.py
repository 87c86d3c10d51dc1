"""What ``lumozbatch plan`` prints: the text plan (``render_plan``) and the ``--json``
document (``plan_data``), both from a ``core.plansummary.PlanSummary``.

Beside the counts per category, both say beforehand what ``apply`` would do to outputs
already paid for (named files changing to newer generations, retired outputs kept aside,
jobs back for free, retired jobs still followed, missing outputs), what the batch has spent,
and which folder's ledger was compared against."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from lumozbatch.core.jobcategory import CATEGORIES
from lumozbatch.core.money import format_money
from lumozbatch.core.plansummary import MAX_TRACKED, PlanGroup, PlanSummary
from lumozbatch.core.wording import count

__all__ = ["plan_data", "render_plan"]

_SHOWN = 6  # values shown per variable in the text form
_SHOWN_JSON = 100  # values listed per variable in the JSON form


def plan_data(summary: PlanSummary, warnings: Iterable[str] = ()) -> dict[str, Any]:
    """The ``--json`` document."""
    cost_new, unpriced_new = summary.cost("new")
    cost_all, unpriced_all = summary.cost()
    return {
        "name": summary.name,
        "manifest": summary.manifest,
        "total": summary.total,
        "counts": dict(summary.counts),
        "removed": summary.removed,
        "to_submit": summary.counts["new"],
        "out_dir": summary.out_dir,
        "run_counts": summary.run_counts(),
        "pending": summary.counts["new"],
        "retired": summary.ahead.retired,
        "names_changing": summary.ahead.names_changing,
        "kept_aside": summary.ahead.kept_aside,
        "back_for_free": summary.ahead.back_for_free,
        "followed": summary.ahead.followed,
        "missing": summary.counts["missing"],
        "spent": summary.spent,
        "spent_by_model": dict(summary.spend.by_model),
        "spent_cost": summary.spend.cost(summary.pricing).total if summary.spent else 0.0,
        "max_generations": summary.max_generations,
        "jobs": [_job_data(summary, job_id, group) for job_id, group in summary.jobs.items()],
        "models": {
            model: {
                "generations": group.total,
                "counts": dict(group.counts),
                "price": summary.pricing.get(model),
            }
            for model, group in summary.models.items()
        },
        "cost": {
            "to_submit": round(cost_new, 6) if not unpriced_new else None,
            "total": round(cost_all, 6) if not unpriced_all else None,
            "priced_part_to_submit": round(cost_new, 6),
            "unpriced_models": sorted(set(unpriced_all)),
        },
        "warnings": list(warnings),
    }


def _job_data(summary: PlanSummary, job_id: str, group: PlanGroup) -> dict[str, Any]:
    return {
        "id": job_id,
        "model": group.model,
        "generations": group.total,
        "counts": dict(group.counts),
        "first_files": list(group.files),
        "varying": {
            name: {
                "count": len(group.values.get(name, {})),
                "values": list(group.values.get(name, {}).values())[:_SHOWN_JSON],
            }
            for name in summary.varying.get(job_id, ())
        },
    }


def render_plan(summary: PlanSummary) -> str:
    """The plain-text plan, ending with a newline."""
    lines = [f"Plan for {summary.name} ({summary.manifest})"]
    parts = [f"{summary.counts[c]} {c.replace('_', ' ')}" for c in CATEGORIES if summary.counts[c]]
    lines.append(f"  {count(summary.total, 'generation')}: " + (", ".join(parts) or "none"))
    if summary.removed:
        lines.append(f"  {summary.removed} in the ledger but no longer in the manifest (retired: not sent again)")
    lines += _outputs_ahead(summary)
    lines.append("")
    lines += _job_table(summary)
    lines.append("")
    lines.append("  files (without extension), for example:")
    for job_id, group in summary.jobs.items():
        more = ", ..." if group.total > len(group.files) else ""
        lines.append(f"    {job_id}: " + ", ".join(group.files) + more)
    varying = [(job_id, name) for job_id, names in summary.varying.items() for name in names]
    if varying:
        lines.append("")
        lines.append("  variables that vary:")
        for job_id, name in varying:
            lines.append(f"    {job_id}.{_values(summary.jobs[job_id], name)}")
    if len(summary.models) > 1 or summary.pricing:
        lines.append("")
        lines += _per_model(summary)
    lines.append("")
    lines += _what_apply_would_do(summary)
    return "\n".join(lines) + "\n"


def _outputs_ahead(summary: PlanSummary) -> list[str]:
    """What apply would do to outputs already paid for, and where it looked: a short line
    for each thing that happens."""
    ahead = summary.ahead
    lines = []
    if summary.out_dir is not None:
        lines.append(f"  compared against the batch in {summary.out_dir}")
    if ahead.names_changing:
        lines.append(
            f"  {count(ahead.names_changing, 'named file')} will change to newer generations "
            "(the older outputs are kept in .lumozbatch/objects)"
        )
    if ahead.kept_aside:
        lines.append(f"  kept aside: the outputs of {count(ahead.kept_aside, 'retired job')}, in .lumozbatch/objects")
    if ahead.back_for_free:
        lines.append(f"  back for free: {ahead.back_for_free} done before, their outputs return under their names")
    if ahead.followed:
        lines.append(f"  followed: {count(ahead.followed, 'retired job')} still in flight, downloaded at no new cost")
    missing = summary.counts["missing"]
    if missing:
        lines.append(
            f"  missing: {count(missing, 'output')} gone from disk, fetched again for free while the provider "
            "keeps them (apply --regenerate-missing pays for the rest)"
        )
    return lines


def _job_table(summary: PlanSummary) -> list[str]:
    table = [("job", "model", "generations", "new")]
    for job_id, group in summary.jobs.items():
        table.append((job_id, group.model, str(group.total), str(group.counts["new"])))
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    return [
        "  " + "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        for row in table
    ]


def _per_model(summary: PlanSummary) -> list[str]:
    lines = ["  per model:"]
    for model, group in summary.models.items():
        price = summary.pricing.get(model)
        new = group.counts["new"]
        cost = f"  x {format_money(price)} = {format_money(new * price)}" if price is not None else ""
        lines.append(f"    {model}: {count(group.total, 'generation')}, {new} new{cost}")
    return lines


def _what_apply_would_do(summary: PlanSummary) -> list[str]:
    lines = []
    to_submit = summary.counts["new"]
    cost, unpriced = summary.cost("new")
    if summary.pricing and to_submit:
        note = f" (no price for {', '.join(sorted(set(unpriced)))})" if unpriced else ""
        lines.append(f"  estimated cost of what apply would submit: {format_money(cost)}{note}")
    spent_line = summary.spend.line(summary.pricing, label="spent so far")
    if spent_line:
        lines.append(f"  {spent_line}")
    lines.append(f"  apply would submit {count(to_submit, 'generation')}.")
    if summary.max_generations is not None and summary.spent + to_submit > summary.max_generations:
        lines.append(
            f"  apply would refuse: {summary.spent} already submitted + {to_submit} new > "
            f"limits.max_generations {summary.max_generations}"
        )
    return lines


def _values(group: PlanGroup, name: str) -> str:
    seen = list(group.values.get(name, {}).values())
    count = len(seen)
    shown = ", ".join(_short(v) for v in seen[:_SHOWN])
    more = f", ... ({'>=' if count >= MAX_TRACKED else ''}{count} values)" if count > _SHOWN else ""
    return f"{name}: {shown}{more}"


def _short(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    text = value if isinstance(value, str) else repr(value)
    text = text if len(text) <= 30 else text[:27] + "..."
    return json.dumps(text, ensure_ascii=False) if isinstance(value, str) and "," in text else text
