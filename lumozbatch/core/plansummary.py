"""What ``plan`` counts: a manifest's jobs by plan category, per manifest job and per model,
the variables that vary, and the cost. Pure: the ledger arrives as a ``LedgerState``.

``summarize(manifest, specs, states)`` does the counting in one pass over the specs;
``states`` maps identity -> plan category (``core.jobcategory.CATEGORIES``; absent means
``new``), or is None when there is no ledger: every job is then new. ``ledger_view(state)``
is what a ledger contributes (categories, the identities still active, the generations
already spent, the outputs each name shows), so ``lumozbatch plan`` and ``apply``'s
confirmation count alike. Against a view, ``summarize_against`` also says beforehand what
an edit does to paid outputs (SPEC 4, "Paid outputs are never destroyed"): named files that
will change to newer generations, retired outputs kept aside, jobs back for free, retired
jobs still followed to their output, and ``run_counts``: the counts of apply's ``plan`` event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lumozbatch.core.images import EXTENSIONS
from lumozbatch.core.jobcategory import CATEGORIES, category_of
from lumozbatch.core.jobspec import JobSpec
from lumozbatch.core.jobstate import JobState
from lumozbatch.core.ledger_codec import LedgerState
from lumozbatch.core.manifest import Manifest
from lumozbatch.core.spend import Spend, spend_of

__all__ = [
    "MAX_TRACKED",
    "LedgerView",
    "OutputsAhead",
    "PlanGroup",
    "PlanSummary",
    "ledger_view",
    "summarize",
    "summarize_against",
]

MAX_TRACKED = 10_000  # distinct values remembered per variable (a count beyond is ">=")
_FILES_KEPT = 2  # output names kept per job, to show what the template gives
_OUTPUT_EXTS = tuple(sorted(set(EXTENSIONS.values())))
# A retired job in one of these states was sent and is followed to its output anyway (as
# shell.planning counts ``Plan.followed``).
_FOLLOWED = frozenset({JobState.SUBMITTED, JobState.COMPLETED, JobState.MISSING})


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
    #: spent per model, retired jobs included (its total is ``spent``)
    spend: Spend = field(default_factory=lambda: Spend({}))
    out_dir: str | None = None  # the folder whose ledger was compared against
    ahead: OutputsAhead = field(default_factory=lambda: OutputsAhead())

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def run_counts(self) -> dict[str, int]:
        """The counts of apply's ``plan`` event (``shell.planning.Plan.counts``, with no reset
        option given), with the same keys: ``new`` is only what the ledger never had,
        ``pending`` everything apply would submit, ``retired`` what it would retire now."""
        return {
            "new": self.ahead.unknown,
            "pending": self.counts["new"],
            **{c: self.counts[c] for c in CATEGORIES if c != "new"},
            "retired": self.removed,
            "followed": self.ahead.followed,
            "total": self.total,
        }

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


@dataclass
class OutputsAhead:
    """What a plan does to the outputs already paid for (all zero without a ledger)."""

    #: specs not done whose output name now shows another identity's output
    names_changing: int = 0
    #: done jobs no longer in the manifest (retired before, or by this plan): kept in the store
    kept_aside: int = 0
    #: retired done jobs the manifest has again: their outputs return, no request
    back_for_free: int = 0
    #: jobs no longer in the manifest whose run was sent: still polled and downloaded
    followed: int = 0
    #: ledger jobs no longer in the manifest, once this plan has run (as ``status`` counts them)
    retired: int = 0
    #: specs the ledger has never had
    unknown: int = 0


@dataclass(frozen=True)
class LedgerView:
    """What ``plan`` needs of a batch's ledger."""

    states: dict[str, str]  # identity -> plan category
    active: set[str]  # identities not retired
    spent: int  # submissions that may have cost money, retired ones included
    spend: Spend = field(default_factory=lambda: Spend({}))
    followed: frozenset[str] = frozenset()  # identities sent and not settled (or missing)
    #: output name without extension -> the identities whose outputs its files show now
    shown: dict[str, frozenset[str]] = field(default_factory=dict)


def ledger_view(state: LedgerState) -> LedgerView:
    """The ledger as ``plan`` sees it."""
    spend = spend_of(state.jobs.values())
    return LedgerView(
        states={identity: category_of(record) for identity, record in state.jobs.items()},
        active={identity for identity, record in state.jobs.items() if not record.retired},
        spent=spend.generations,
        spend=spend,
        followed=frozenset(i for i, record in state.jobs.items() if record.state in _FOLLOWED),
        shown=_shown(state.named),
    )


def _shown(named: Mapping[str, list[str]]) -> dict[str, frozenset[str]]:
    """The latest holder of each output name, by name without its extension (a format
    change gives the same name another extension: both files are that name's)."""
    shown: dict[str, set[str]] = {}
    for file, holders in named.items():
        if not holders:
            continue
        stem = next((file[: -len(ext)] for ext in _OUTPUT_EXTS if file.endswith(ext)), file)
        shown.setdefault(stem, set()).add(holders[-1])
    return {stem: frozenset(ids) for stem, ids in shown.items()}


def summarize(
    manifest: Manifest,
    specs: Iterable[JobSpec],
    states: Mapping[str, str] | None = None,
    *,
    removed: int = 0,
    active: Iterable[str] | None = None,
    spent: int = 0,
    view: LedgerView | None = None,
    out_dir: str | None = None,
) -> PlanSummary:
    """Count ``specs`` by category (``states`` is identity -> category; None = no ledger, all new).

    ``active``: the ledger's identities still part of the batch; those the manifest no longer
    has are added to ``removed``. ``view``: the ledger's view, for what the plan does to
    paid outputs (``PlanSummary.ahead``); ``out_dir``: the folder compared against.
    """
    counts = dict.fromkeys(CATEGORIES, 0)
    leftover = set(active) if active is not None else None
    jobs: dict[str, PlanGroup] = {j.id: PlanGroup(model=j.model) for j in manifest.jobs}
    models: dict[str, PlanGroup] = {}
    varying = {j.id: j.varying for j in manifest.jobs}
    ahead = _Ahead(view)
    for spec in specs:
        category = "new" if states is None else states.get(spec.identity, "new")
        counts[category] += 1
        ahead.see(spec, category)
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
        spend=view.spend if view is not None else Spend({}),
        out_dir=out_dir,
        ahead=ahead.result(),
    )


def summarize_against(
    manifest: Manifest, specs: Iterable[JobSpec], view: LedgerView | None, *, out_dir: str | None = None
) -> PlanSummary:
    """``summarize`` against a ledger's view (None: no ledger, every job new); ``out_dir``
    is the folder compared against, which ``plan`` names."""
    if view is None:
        return summarize(manifest, specs, out_dir=out_dir)
    return summarize(manifest, specs, view.states, active=view.active, spent=view.spent, view=view, out_dir=out_dir)


class _Ahead:
    """Counts ``OutputsAhead`` over the specs, one at a time (no set of the manifest's
    identities is built: what the ledger has beyond them is its total minus those seen)."""

    def __init__(self, view: LedgerView | None) -> None:
        self.view = view
        self.out = OutputsAhead()
        self.known = self.done = self.followed = 0  # specs the ledger has / has done / follows

    def see(self, spec: JobSpec, category: str) -> None:
        view = self.view
        if view is None:
            self.out.unknown += 1
            return
        if spec.identity not in view.states:
            self.out.unknown += 1
        else:
            self.known += 1
            self.followed += spec.identity in view.followed
            if category == "done":
                self.done += 1
                self.out.back_for_free += spec.identity not in view.active
        if category != "done" and any(h != spec.identity for h in view.shown.get(spec.filename, ())):
            self.out.names_changing += 1

    def result(self) -> OutputsAhead:
        view = self.view
        if view is not None:
            done = sum(1 for c in view.states.values() if c == "done")
            self.out.kept_aside = done - self.done
            self.out.followed = len(view.followed) - self.followed
            self.out.retired = len(view.states) - self.known
        return self.out


def _remember_values(group: PlanGroup, names: Iterable[str], variables: Mapping[str, Any]) -> None:
    for name in names:
        seen = group.values.setdefault(name, {})
        if len(seen) < MAX_TRACKED:
            value = variables[name]
            seen.setdefault((type(value) is bool, value), value)  # scalars: 1 == 1.0, not true
