"""What ``plan`` counts: a manifest's jobs by plan category, per manifest job and per model,
the variables that vary, and the cost. Pure: the ledger arrives as a ``LedgerState``.

``summarize(manifest, specs, states)`` does the counting in one pass over the specs;
``states`` maps identity -> plan category (``core.jobcategory.CATEGORIES``; absent means
``new``), or is None when there is no ledger: every job is then new. ``ledger_view(state)``
is what a ledger contributes (categories, the identities still active, the generations
already spent), so ``lumozbatch plan`` and ``apply``'s confirmation count alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lumozbatch.core.jobcategory import CATEGORIES, category_of, spent_generations
from lumozbatch.core.jobspec import JobSpec
from lumozbatch.core.ledger_codec import LedgerState
from lumozbatch.core.manifest import Manifest

__all__ = ["MAX_TRACKED", "LedgerView", "PlanGroup", "PlanSummary", "ledger_view", "summarize", "summarize_against"]

MAX_TRACKED = 10_000  # distinct values remembered per variable (a count beyond is ">=")
_FILES_KEPT = 2  # output names kept per job, to show what the template gives


@dataclass
class PlanGroup:
    """The generations of one manifest job id (or of one model)."""

    model: str = ""
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    values: dict[str, dict[Any, Any]] = field(default_factory=dict)  # var -> key -> value
    files: list[str] = field(default_factory=list)  # the first few output names

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class PlanSummary:
    """Counts per category, per manifest job id and per model, the varying variables, and cost."""

    name: str
    manifest: str
    counts: dict[str, int]
    jobs: dict[str, PlanGroup]
    models: dict[str, PlanGroup]
    varying: dict[str, tuple[str, ...]]
    pricing: dict[str, float]
    max_generations: int | None
    removed: int = 0
    spent: int = 0  # what the ledger counts against the generation cap, as apply counts it

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def cost(self, category: str | None = None) -> tuple[float, list[str]]:
        """Estimated cost of the jobs in ``category`` (all when None), and models without a price."""
        total = 0.0
        unpriced = []
        for model, group in self.models.items():
            n = group.total if category is None else group.counts[category]
            if not n:
                continue
            if model in self.pricing:
                total += n * self.pricing[model]
            else:
                unpriced.append(model)
        return total, unpriced


@dataclass(frozen=True)
class LedgerView:
    """What ``plan`` needs of a batch's ledger."""

    states: dict[str, str]  # identity -> plan category
    active: set[str]  # identities not retired
    spent: int  # submissions that may have cost money, retired ones included


def ledger_view(state: LedgerState) -> LedgerView:
    """The ledger as ``plan`` sees it."""
    return LedgerView(
        states={identity: category_of(record) for identity, record in state.jobs.items()},
        active={identity for identity, record in state.jobs.items() if not record.retired},
        spent=spent_generations(state.jobs.values()),
    )


def summarize(
    manifest: Manifest,
    specs: Iterable[JobSpec],
    states: Mapping[str, str] | None = None,
    *,
    removed: int = 0,
    active: Iterable[str] | None = None,
    spent: int = 0,
) -> PlanSummary:
    """Count ``specs`` by category (``states`` is identity -> category; None = no ledger, all new).

    ``active``: the ledger's identities still part of the batch; those the manifest no longer
    has are added to ``removed``.
    """
    counts = dict.fromkeys(CATEGORIES, 0)
    leftover = set(active) if active is not None else None
    jobs: dict[str, PlanGroup] = {j.id: PlanGroup(model=j.model) for j in manifest.jobs}
    models: dict[str, PlanGroup] = {}
    varying = {j.id: j.varying for j in manifest.jobs}
    for spec in specs:
        category = "new" if states is None else states.get(spec.identity, "new")
        counts[category] += 1
        if leftover is not None:
            leftover.discard(spec.identity)
        group = jobs.setdefault(spec.job, PlanGroup(model=spec.model))
        group.counts[category] += 1
        models.setdefault(spec.model, PlanGroup(model=spec.model)).counts[category] += 1
        if len(group.files) < _FILES_KEPT:
            group.files.append(spec.filename)
        if not spec.repeat:  # repeats share their combination's variables
            _remember_values(group, varying.get(spec.job, ()), spec.variables)
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


def summarize_against(manifest: Manifest, specs: Iterable[JobSpec], view: LedgerView | None) -> PlanSummary:
    """``summarize`` against a ledger's view (None: no ledger, every job new)."""
    if view is None:
        return summarize(manifest, specs)
    return summarize(manifest, specs, view.states, active=view.active, spent=view.spent)


def _remember_values(group: PlanGroup, names: Iterable[str], variables: Mapping[str, Any]) -> None:
    for name in names:
        seen = group.values.setdefault(name, {})
        if len(seen) < MAX_TRACKED:
            value = variables[name]
            seen.setdefault((type(value) is bool, value), value)  # scalars: 1 == 1.0, not true
