"""``lumozbatch plan MANIFEST [--json]``: what ``apply`` would do, without sending anything.

``summarize(manifest, specs, states)`` does the counting in one pass over the specs; ``states``
maps identity -> ledger state name (``done``, ``in_flight``, ``failed``, ``ambiguous``; absent
means ``new``), or is None when there is no ledger: every job is then new. ``plan_cmd`` reads
them from the batch's ledger (``outputs/<name>`` or ``--out``) when there is one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from lumozbatch.core.jobspec import JobSpec
from lumozbatch.core.manifest import Manifest

__all__ = ["STATES", "LedgerView", "PlanSummary", "ledger_states", "plan_cmd", "plan_data", "render_plan", "summarize"]

STATES = ("new", "done", "in_flight", "failed", "ambiguous")
_MAX_TRACKED = 10_000  # distinct values remembered per variable (a count beyond is ">=")
_SHOWN = 6  # values shown per variable in the text form
_FILES_SHOWN = 2  # output names shown per job


@dataclass
class _Group:
    model: str = ""
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    values: dict[str, dict[Any, Any]] = field(default_factory=dict)  # var -> key -> value
    files: list[str] = field(default_factory=list)  # the first few output names, to check them

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class PlanSummary:
    """Counts per state, per manifest job id and per model, the varying variables, and cost."""

    name: str
    manifest: str
    counts: dict[str, int]
    jobs: dict[str, _Group]
    models: dict[str, _Group]
    varying: dict[str, tuple[str, ...]]
    pricing: dict[str, float]
    max_generations: int | None
    removed: int = 0
    spent: int = 0  # what the ledger counts against the generation cap, as apply counts it

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def cost(self, state: str | None = None) -> tuple[float, list[str]]:
        """Estimated cost of the jobs in ``state`` (all when None), and models without a price."""
        total = 0.0
        unpriced = []
        for model, group in self.models.items():
            n = group.total if state is None else group.counts[state]
            if not n:
                continue
            if model in self.pricing:
                total += n * self.pricing[model]
            else:
                unpriced.append(model)
        return total, unpriced


def summarize(
    manifest: Manifest,
    specs: Iterable[JobSpec],
    states: Mapping[str, str] | None = None,
    *,
    removed: int = 0,
    active: Iterable[str] | None = None,
    spent: int = 0,
) -> PlanSummary:
    """Count ``specs`` by state (``states`` is identity -> state; None = no ledger, all new).

    ``active``: the ledger's identities still part of the batch; those the manifest no longer
    has are added to ``removed``.
    """
    counts = dict.fromkeys(STATES, 0)
    leftover = set(active) if active is not None else None
    jobs: dict[str, _Group] = {j.id: _Group(model=j.model) for j in manifest.jobs}
    models: dict[str, _Group] = {}
    varying = {j.id: j.varying for j in manifest.jobs}
    for spec in specs:
        state = "new" if states is None else states.get(spec.identity, "new")
        counts[state] += 1
        if leftover is not None:
            leftover.discard(spec.identity)
        group = jobs.setdefault(spec.job, _Group(model=spec.model))
        group.counts[state] += 1
        models.setdefault(spec.model, _Group(model=spec.model)).counts[state] += 1
        if len(group.files) < _FILES_SHOWN:
            group.files.append(spec.filename)
        if spec.repeat:
            continue  # repeats share their combination's variables
        for name in varying.get(spec.job, ()):
            seen = group.values.setdefault(name, {})
            if len(seen) < _MAX_TRACKED:
                value = spec.variables[name]
                seen.setdefault((type(value) is bool, value), value)  # scalars: 1 == 1.0, not true
    return PlanSummary(
        name=manifest.name,
        manifest=manifest.path,
        counts=counts,
        jobs=jobs,
        models=models,
        varying=varying,
        pricing=dict(manifest.pricing),
        max_generations=manifest.max_generations,
        removed=removed + (len(leftover) if leftover is not None else 0),
        spent=spent,
    )


def plan_data(summary: PlanSummary, warnings: Iterable[str] = ()) -> dict[str, Any]:
    """The ``--json`` document."""
    to_submit = summary.counts["new"]
    cost_new, unpriced_new = summary.cost("new")
    cost_all, unpriced_all = summary.cost()
    return {
        "name": summary.name,
        "manifest": summary.manifest,
        "total": summary.total,
        "counts": dict(summary.counts),
        "removed": summary.removed,
        "to_submit": to_submit,
        "spent": summary.spent,
        "max_generations": summary.max_generations,
        "jobs": [
            {
                "id": job_id,
                "model": group.model,
                "generations": group.total,
                "counts": dict(group.counts),
                "first_files": list(group.files),
                "varying": {
                    name: {
                        "count": len(group.values.get(name, {})),
                        "values": list(group.values.get(name, {}).values())[:_MAX_SHOWN_JSON],
                    }
                    for name in summary.varying.get(job_id, ())
                },
            }
            for job_id, group in summary.jobs.items()
        ],
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


_MAX_SHOWN_JSON = 100


def _money(amount: float) -> str:
    return f"${amount:,.2f}" if amount >= 1 or amount == 0 else f"${amount:.4f}".rstrip("0")


def _values(group: _Group, name: str) -> str:
    seen = list(group.values.get(name, {}).values())
    count = len(seen)
    shown = ", ".join(_short(v) for v in seen[:_SHOWN])
    more = f", ... ({'>=' if count >= _MAX_TRACKED else ''}{count} values)" if count > _SHOWN else ""
    return f"{name}: {shown}{more}"


def _short(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    text = value if isinstance(value, str) else repr(value)
    text = text if len(text) <= 30 else text[:27] + "..."
    return json.dumps(text, ensure_ascii=False) if isinstance(value, str) and "," in text else text


def render_plan(summary: PlanSummary) -> str:
    """The plain-text plan, ending with a newline."""
    lines = [f"Plan for {summary.name} ({summary.manifest})"]
    parts = [f"{summary.counts[s]} {s.replace('_', ' ')}" for s in STATES if summary.counts[s]]
    lines.append(f"  {summary.total} generation{'s' if summary.total != 1 else ''}: " + (", ".join(parts) or "none"))
    if summary.removed:
        lines.append(f"  {summary.removed} in the ledger but no longer in the manifest (kept, not run)")
    lines.append("")
    table = [("job", "model", "generations", "new")]
    for job_id, group in summary.jobs.items():
        table.append((job_id, group.model, str(group.total), str(group.counts["new"])))
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for row in table:
        lines.append("  " + "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
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
        lines.append("  per model:")
        for model, group in summary.models.items():
            price = summary.pricing.get(model)
            cost = f"  x {_money(price)} = {_money(group.counts['new'] * price)}" if price is not None else ""
            lines.append(f"    {model}: {group.total} generations, {group.counts['new']} new{cost}")
    lines.append("")
    to_submit = summary.counts["new"]
    cost, unpriced = summary.cost("new")
    if summary.pricing and to_submit:
        note = f" (no price for {', '.join(sorted(set(unpriced)))})" if unpriced else ""
        lines.append(f"  estimated cost of what apply would submit: {_money(cost)}{note}")
    lines.append(f"  apply would submit {to_submit} generation{'s' if to_submit != 1 else ''}.")
    if summary.max_generations is not None:
        if summary.spent + to_submit > summary.max_generations:
            lines.append(
                f"  apply would refuse: {summary.spent} already submitted + {to_submit} new > "
                f"limits.max_generations {summary.max_generations}"
            )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class LedgerView:
    """What ``plan`` needs of a batch's ledger."""

    states: dict[str, str]  # identity -> plan category
    active: set[str]  # identities not retired
    spent: int  # submissions that may have cost money, retired ones included


def ledger_states(out_dir: Path, name: str | None = None) -> LedgerView | None:
    """The ledger in ``out_dir`` as ``plan`` sees it; None when there is no ledger there.

    With ``name``, a ledger of another batch is refused as ``apply`` refuses it.
    """
    from lumozbatch.core.jobcategory import category_of, spent_generations
    from lumozbatch.errors import UsageError
    from lumozbatch.shell.ledger import ledger_path, read_state

    if not ledger_path(out_dir).is_file():
        return None
    state = read_state(out_dir)
    held = (state.batch or {}).get("name")
    if name is not None and state.batch is not None and held != name:
        raise UsageError(
            f"{out_dir} holds the batch {held!r}, not {name!r}: apply would refuse it",
            details=[f"choose another folder with --out, or resume that batch: lumozbatch resume {out_dir}"],
        )
    return LedgerView(
        states={identity: category_of(record) for identity, record in state.jobs.items()},
        active={identity for identity, record in state.jobs.items() if not record.retired},
        spent=spent_generations(state.jobs.values()),
    )


@click.command("plan")
@click.argument("manifest_path", metavar="MANIFEST")
@click.option("--json", "json_out", is_flag=True, help="Print one JSON document instead of text.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Output folder (default outputs/<name>).")
def plan_cmd(manifest_path: str, json_out: bool, out_dir: str | None) -> None:
    """Expand the manifest's grid and show what apply would do against the batch's ledger
    (new, done, in flight, failed, ambiguous, no longer in the manifest): generations per job
    and per model, the variables that vary, and the estimated cost when the manifest gives
    prices. Sends nothing.

    Example: lumozbatch plan manifests/sketch-portraits.yaml --json
    """
    from lumozbatch.core.grid import expand
    from lumozbatch.manifest_io import load_manifest
    from lumozbatch.shell.ledger import default_out_dir

    from lumozbatch.ui.ratelimit_file import eta_for, load_snapshot, plan_eta_line
    from lumozbatch.ui.eta import calls_needed

    manifest = load_manifest(manifest_path)
    batch_dir = Path(out_dir) if out_dir else default_out_dir(manifest.name)
    ledger = ledger_states(batch_dir, manifest.name)
    if ledger is None:
        summary = summarize(manifest, expand(manifest))
    else:
        summary = summarize(manifest, expand(manifest), ledger.states, active=ledger.active, spent=ledger.spent)
    warnings = [str(w) for w in manifest.warnings]
    new, in_flight = summary.counts["new"], summary.counts["in_flight"]
    if json_out:
        data = plan_data(summary, warnings)
        # Only a previous run of this batch knows the rate limit; without one there is no ETA.
        data["eta_seconds"] = eta_for(load_snapshot(batch_dir), calls_needed(new, in_flight), now=time.time())
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    for warning in warnings:
        click.echo(warning, err=True)
    click.echo(render_plan(summary), nl=False)
    eta = plan_eta_line(batch_dir, new=new, in_flight=in_flight, now=time.time()) if new + in_flight else None
    if eta:
        click.echo(f"  {eta}")
