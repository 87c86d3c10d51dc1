"""What ``plan`` counts: a manifest's jobs by plan category, per manifest job and per model,
the variables that vary, and the cost. Pure: the ledger arrives as a ``LedgerView``.

``summarize(manifest, specs, ...)`` does the counting in one pass over the specs, a chunk
at a time. A ``LedgerView`` is what a ledger contributes: a few totals (jobs, active, done,
followed, spent) and two lookups it is asked per chunk (the planned jobs among some
identities, the identity each output name shows now), so plan holds a chunk of the
manifest, never the whole ledger. ``ledger_view(state)`` builds one from a replayed state,
``store_view(reads)`` from a batch store's reads, so ``lumozbatch plan`` and ``apply``'s
confirmation count alike. Against a view, ``summarize_against`` also says beforehand what
an edit does to paid outputs (SPEC 4, "Paid outputs are never destroyed"): named files that
will change to newer generations, retired outputs kept aside, jobs back for free, retired
jobs still followed to their output, and ``run_counts``: the counts of apply's ``plan`` event.
Without a view, ``states`` (identity -> plan category) may say what is known; absent means
``new``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lumozbatch.core.chunks import chunked
from lumozbatch.core.images import EXTENSIONS
from lumozbatch.core.jobcategory import CATEGORIES, category_of, category_of_state
from lumozbatch.core.jobspec import JobSpec
from lumozbatch.core.jobstate import JobState
from lumozbatch.core.ledger_codec import JobRecord, LedgerState
from lumozbatch.core.manifest import Manifest
from lumozbatch.core.spend import Spend, spend_of

__all__ = [
    "MAX_TRACKED",
    "LedgerView",
    "OutputsAhead",
    "PlanGroup",
    "PlanSummary",
    "ledger_view",
    "store_view",
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


_CHUNK = 1000  # specs compared with the ledger per lookup


@dataclass(frozen=True)
class LedgerView:
    """What ``plan`` needs of a batch's ledger: a few totals, and lookups that it asks a
    chunk of specs at a time (so a plan of a million jobs holds a thousand of them)."""

    #: the planned jobs among a list of identities (absent: never planned): job records, or
    #: anything with their ``state`` and ``retired``
    jobs: Callable[[list[str]], Mapping[str, Any]]
    #: for output file names, the identity whose output each one shows now (absent: none)
    latest: Callable[[list[str]], Mapping[str, str]]
    total: int  # jobs ever planned, retired ones included
    active: int  # jobs not retired
    done: int  # jobs in the category ``done``, retired ones included
    followed: int  # jobs sent and not settled (or missing), retired ones included
    spent: int  # submissions that may have cost money, retired ones included
    spend: Spend = field(default_factory=lambda: Spend({}))


def ledger_view(state: LedgerState) -> LedgerView:
    """A replayed ledger as ``plan`` sees it."""
    jobs = state.jobs
    spend = spend_of(jobs.values())
    return LedgerView(
        jobs=lambda ids: {i: jobs[i] for i in ids if i in jobs},
        latest=lambda files: {f: state.named[f][-1] for f in files if state.named.get(f)},
        total=len(jobs),
        active=sum(1 for j in jobs.values() if not j.retired),
        done=sum(1 for j in jobs.values() if category_of(j) == "done"),
        followed=sum(1 for j in jobs.values() if j.state in _FOLLOWED),
        spent=spend.generations,
        spend=spend,
    )


def store_view(reads: Any, *, jobs: Callable[[list[str]], Mapping[str, Any]] | None = None) -> LedgerView:
    """A batch store (or its snapshot) as ``plan`` sees it: its aggregates now, its jobs and
    names looked up as the specs are counted. ``reads`` has the store's reads
    (``jobs_by_identity``, ``latest_holders``, ``counts``, ``iter_jobs``, ``spend``);
    ``jobs`` looks jobs up instead of ``reads.jobs_by_identity``: what it gives needs only
    ``state`` and ``retired`` (``shell.job_statuses.statuses_by_identity`` reads just those
    columns, no record decoded)."""
    counts = reads.counts()
    spend = reads.spend()
    done = [s for s in JobState if category_of_state(s) == "done"]
    return LedgerView(
        jobs=jobs or reads.jobs_by_identity,
        latest=reads.latest_holders,
        total=counts["total"] + counts["retired"],
        active=counts["total"],
        done=sum(counts[s.value] for s in done) + sum(1 for _ in reads.iter_jobs(done, retired=True)),
        followed=sum(1 for _ in reads.iter_jobs(_FOLLOWED)),
        spent=spend.generations,
        spend=spend,
    )


def summarize(
    manifest: Manifest,
    specs: Iterable[JobSpec],
    states: Mapping[str, str] | None = None,
    *,
    removed: int = 0,
    spent: int = 0,
    view: LedgerView | None = None,
    out_dir: str | None = None,
) -> PlanSummary:
    """Count ``specs`` by category: against ``view`` (the ledger, looked up a chunk of specs
    at a time), else ``states`` (identity -> category), else (no ledger) all new.

    The ledger's active jobs the manifest no longer has are added to ``removed``; the view
    also says what the plan does to paid outputs (``PlanSummary.ahead``); ``out_dir``: the
    folder compared against.
    """
    counts = dict.fromkeys(CATEGORIES, 0)
    jobs: dict[str, PlanGroup] = {j.id: PlanGroup(model=j.model) for j in manifest.jobs}
    models: dict[str, PlanGroup] = {}
    varying = {j.id: j.varying for j in manifest.jobs}
    ahead = _Ahead(view)
    for chunk in chunked(specs, _CHUNK):
        known = view.jobs([s.identity for s in chunk]) if view is not None else {}
        for spec in chunk:
            if view is not None:
                category = category_of(known.get(spec.identity))
            else:
                category = "new" if states is None else states.get(spec.identity, "new")
            counts[category] += 1
            ahead.see(spec, category, known.get(spec.identity))
            group = jobs.get(spec.job) or jobs.setdefault(spec.job, PlanGroup(model=spec.model))
            group.counts[category] += 1
            by_model = models.get(spec.model) or models.setdefault(spec.model, PlanGroup(model=spec.model))
            by_model.counts[category] += 1
            if len(group.files) < _FILES_KEPT:
                group.files.append(spec.filename)
            if not spec.repeat:  # repeats share their combination's variables
                _remember_values(group, varying.get(spec.job, ()), spec.variables)
        ahead.see_names([s for s in chunk if s.identity not in known or category_of(known[s.identity]) != "done"])
    return PlanSummary(
        name=manifest.name,
        manifest=manifest.path,
        counts=counts,
        jobs=jobs,
        models=models,
        varying=varying,
        pricing=dict(manifest.pricing),
        max_generations=manifest.max_generations,
        removed=removed + (view.active - ahead.known_active if view is not None else 0),
        spent=view.spent if view is not None else spent,
        spend=view.spend if view is not None else Spend({}),
        out_dir=out_dir,
        ahead=ahead.result(),
    )


def summarize_against(
    manifest: Manifest, specs: Iterable[JobSpec], view: LedgerView | None, *, out_dir: str | None = None
) -> PlanSummary:
    """``summarize`` against a ledger's view (None: no ledger, every job new); ``out_dir``
    is the folder compared against, which ``plan`` names."""
    return summarize(manifest, specs, view=view, out_dir=out_dir)


class _Ahead:
    """Counts ``OutputsAhead`` over the specs, one chunk at a time (no set of the manifest's
    identities is built: what the ledger has beyond them is its total minus those seen)."""

    def __init__(self, view: LedgerView | None) -> None:
        self.view = view
        self.out = OutputsAhead()
        self.known = self.done = self.followed = self.known_active = 0  # specs the ledger has / ...

    def see(self, spec: JobSpec, category: str, job: Any) -> None:  # a JobRecord or JobStatus
        if job is None:
            self.out.unknown += 1
            return
        self.known += 1
        self.known_active += not job.retired
        self.followed += job.state in _FOLLOWED
        if category == "done":
            self.done += 1
            self.out.back_for_free += job.retired

    def see_names(self, not_done: list[JobSpec]) -> None:
        """Specs not done whose output name shows another identity's output now (by name
        without its extension: a format change gives the same name another extension)."""
        if self.view is None or not not_done:
            return
        names = {s.identity: [s.filename, *(s.filename + ext for ext in _OUTPUT_EXTS)] for s in not_done}
        latest = self.view.latest([name for group in names.values() for name in group])
        for spec in not_done:
            if any(latest.get(name, spec.identity) != spec.identity for name in names[spec.identity]):
                self.out.names_changing += 1

    def result(self) -> OutputsAhead:
        view = self.view
        if view is not None:
            self.out.kept_aside = view.done - self.done
            self.out.followed = view.followed - self.followed
            self.out.retired = view.total - self.known
        return self.out


def _remember_values(group: PlanGroup, names: Iterable[str], variables: Mapping[str, Any]) -> None:
    for name in names:
        seen = group.values.setdefault(name, {})
        if len(seen) < MAX_TRACKED:
            value = variables[name]
            seen.setdefault((type(value) is bool, value), value)  # scalars: 1 == 1.0, not true
