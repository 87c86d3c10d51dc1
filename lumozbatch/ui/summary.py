"""The final account of a batch, from its store's aggregates.

What was done, what failed and why (grouped by cause), what is ambiguous (maybe billed, no
result), what is still to run, which outputs are missing from disk, what became of retired
jobs (outputs kept aside, runs still followed), where the outputs are, the batch's one
*spent* (``core.spend``: retired jobs included, cost = spent x price when prices are known),
and the exact commands that continue or retry. Takes the batch's store (counts, causes,
the first few jobs of each kind: never every job), returns text.
"""

from __future__ import annotations

import itertools
import shlex
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from lumozbatch.core.jobcategory import CATEGORIES, category_of, category_of_state
from lumozbatch.core.jobstate import JobState
from lumozbatch.core.layout import STATE_DIR
from lumozbatch.core.spend import Spend
from lumozbatch.shell.state_reads import reads_of

__all__ = [
    "CauseLine",
    "Tally",
    "cause_lines",
    "continue_command",
    "group_by_cause",
    "render_summary",
    "state_name",
    "tally",
]

_MAX_LABELS = 3
_MAX_MISSING = 10  # missing outputs named one by one
_LISTED = 100  # jobs of one kind listed one by one (status); the rest are counted
_RESET_FLAGS = ("--retry-failed", "--resubmit-ambiguous", "--regenerate-missing")
_IN_CATEGORY = {c: tuple(s for s in JobState if category_of_state(s) == c) for c in CATEGORIES}
#: the states whose relinked jobs the summary counts (not ambiguous, not pending)
_RELINKABLE = tuple(s for c in ("done", "failed", "in_flight", "missing") for s in _IN_CATEGORY[c])


def state_name(record: Any) -> str:
    """``done``, ``failed``...: a JobRecord's state as a lower-case word."""
    state = record.state
    return str(getattr(state, "name", state)).lower()


def _label(record: Any) -> str:
    return f"{record.job}#{record.identity[:12]}"


@dataclass(frozen=True)
class CauseLine:
    """Jobs that share a (code, reason), with the first few of them."""

    code: str | None
    reason: str | None
    count: int
    examples: list[Any]  # JobRecords, in planning order


@dataclass
class Tally:
    """A batch's active jobs by what the user can do about them: counts per category (the
    summary's words), the causes of failures, and the first few jobs of each kind, read
    from the store's aggregates (never every job of the batch)."""

    counts: dict[str, int]  # category -> active jobs (``new`` is "not yet sent")
    retired: int = 0
    retired_kept: int = 0  # retired jobs whose outputs are kept in the store
    retired_followed: int = 0  # retired jobs sent and not settled: still followed to the end
    generated: int = 0  # in flight and generated, not downloaded yet
    #: done, failed, in flight or missing jobs whose request a webhook named (None: not
    #: counted; the summary asks, ``status`` does not: it is a scan of those jobs' records)
    relinked: int | None = None
    failed: list[CauseLine] = field(default_factory=list)
    ambiguous: list[CauseLine] = field(default_factory=list)
    retried: list[CauseLine] = field(default_factory=list)  # pending after attempts that created nothing
    listed: dict[str, list[Any]] = field(default_factory=dict)  # category -> its first jobs
    per_job: dict[str, dict[str, int]] = field(default_factory=dict)  # manifest job -> category -> n
    spend: Spend = field(default_factory=lambda: Spend({}))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def n(self, category: str) -> int:
        return self.counts.get(category, 0)


def tally(source: Any, identities: set[str] | None = None, *, listed: int = _LISTED) -> Tally:
    """The account of ``source`` (a batch store or snapshot, or a ``LedgerState``): its
    active jobs, or only those in ``identities`` if given."""
    reads = reads_of(source)
    if identities is not None:
        return _tally_of(list(reads.jobs_by_identity(sorted(identities)).values()), identities, reads)
    counts = reads.counts()
    per_category = {c: sum(counts[s.value] for s in _IN_CATEGORY[c]) for c in CATEGORIES}
    # another scan of every job: only when some are retired (most batches have none)
    retired = reads.counts_retired() if counts["retired"] else dict.fromkeys(counts, 0)
    out = Tally(
        counts=per_category,
        retired=counts["retired"],
        retired_kept=sum(retired[s.value] for s in _IN_CATEGORY["done"]),
        retired_followed=sum(retired[s.value] for s in (*_IN_CATEGORY["in_flight"], *_IN_CATEGORY["missing"])),
        generated=counts[JobState.COMPLETED.value],
        spend=reads.spend(),
    )
    for column, by_state in reads.counts_by("job").items():
        row = out.per_job.setdefault(column, dict.fromkeys(CATEGORIES, 0))
        for state, n in by_state.items():
            row[category_of_state(JobState(state))] += n
    out.failed = _causes(reads, JobState.FAILED)
    out.ambiguous = _causes(reads, JobState.AMBIGUOUS)
    out.retried = [c for c in _causes(reads, JobState.PENDING) if c.reason]
    for category in ("failed", "ambiguous", "in_flight", "missing"):
        if per_category[category]:
            jobs = reads.iter_jobs(_IN_CATEGORY[category], retired=False)
            out.listed[category] = list(itertools.islice(jobs, listed))
    return out


def _causes(reads: Any, state: JobState) -> list[CauseLine]:
    causes = reads.failures(state, examples=_MAX_LABELS)
    jobs = reads.jobs_by_identity([i for c in causes for i in c.identities])
    return [CauseLine(c.code, c.reason, c.count, [jobs[i] for i in c.identities if i in jobs]) for c in causes]


def _tally_of(records: list[Any], identities: set[str], reads: Any) -> Tally:
    """The account of a few named jobs (those the ledger lacks are not counted)."""
    counts = dict.fromkeys(CATEGORIES, 0)
    out = Tally(counts=counts, spend=reads.spend())
    relinked = 0
    groups: dict[str, dict[tuple[Any, Any], list[Any]]] = {"failed": {}, "ambiguous": {}, "new": {}}
    for record in records:
        category = category_of(record)
        counts[category] += 1
        out.generated += record.state is JobState.COMPLETED
        relinked += record.relinked and record.state in _RELINKABLE
        out.listed.setdefault(category, []).append(record)
        row = out.per_job.setdefault(record.job, dict.fromkeys(CATEGORIES, 0))
        row[category] += 1
        if category in groups and (category != "new" or record.attempts and record.reason):
            groups[category].setdefault((record.code, record.reason), []).append(record)
    for category, name in (("failed", "failed"), ("ambiguous", "ambiguous"), ("new", "retried")):
        lines = [CauseLine(code, reason, len(m), m[:_MAX_LABELS]) for (code, reason), m in groups[category].items()]
        lines.sort(key=lambda c: -c.count)
        setattr(out, name, lines)
    out.relinked = relinked
    return out


def cause_lines(causes: Iterable[CauseLine]) -> list[str]:
    """One line per (code, reason), biggest group first, naming up to three jobs."""
    lines = []
    for cause in causes:
        labels = ", ".join(_label(r) for r in cause.examples[:_MAX_LABELS])
        more = f" and {cause.count - _MAX_LABELS} more" if cause.count > _MAX_LABELS else ""
        tag = f"[{cause.code}] " if cause.code else ""
        noun = "job" if cause.count == 1 else "jobs"
        lines.append(f"    {tag}{cause.reason or 'no reason recorded'} ({cause.count} {noun}: {labels}{more})")
    return lines


def group_by_cause(records: Iterable[Any]) -> list[str]:
    """:func:`cause_lines` of ``records`` grouped by (code, reason), in order of appearance."""
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for record in records:
        groups[(record.code or "", record.reason or "no reason recorded")].append(record)
    causes = [CauseLine(code or None, reason, len(m), m) for (code, reason), m in groups.items()]
    return cause_lines(sorted(causes, key=lambda c: -c.count))


def _sandboxed(words: list[str], state: Any) -> list[str]:
    """A batch run against the sandbox continues there: its request ids are the sandbox's."""
    if (state.batch or {}).get("api") == "sandbox" and "--sandbox" not in words:
        return [*words, "--sandbox"]
    return words


def continue_command(command_hint: str, state: Any) -> str:
    """``command_hint``, with ``--sandbox`` when the batch was run against the sandbox."""
    return shlex.join(_sandboxed(shlex.split(command_hint), state))


def _apply_command(command_hint: str, state: Any, out_dir: Path | str) -> str | None:
    """The ``apply`` command that may take retry flags (``resume`` may not)."""
    words = shlex.split(command_hint)
    if "apply" in words:
        return shlex.join(_sandboxed([w for w in words if w not in _RESET_FLAGS], state))
    manifest = (state.batch or {}).get("manifest")
    if not manifest:
        return None
    return shlex.join(_sandboxed(["lumozbatch", "apply", str(manifest), "--out", str(out_dir)], state))


def missing_lines(missing: list[Any], total: int | None = None) -> list[str]:
    """Each missing output by its name (the first few of ``total``, default all), and why."""
    total = len(missing) if total is None else total
    lines = []
    for record in missing[:_MAX_MISSING]:
        name = record.file or record.filename
        reason = f": {record.reason}" if record.reason else ""
        lines.append(f"    {name} ({_label(record)}){reason}")
    if total > _MAX_MISSING:
        lines.append(f"    and {total - _MAX_MISSING} more")
    return lines


def retired_lines(t: Tally) -> list[str]:
    """What became of the jobs an edited manifest retired: their paid outputs are kept."""
    lines = []
    if t.retired_kept:
        what = "job kept its output" if t.retired_kept == 1 else "jobs kept their outputs"
        lines.append(f"  {t.retired_kept} retired {what} in {STATE_DIR}/objects")
    if t.retired_followed:
        what = "job" if t.retired_followed == 1 else "jobs"
        whose = "its output" if t.retired_followed == 1 else "their outputs"
        lines.append(f"  {t.retired_followed} retired {what} still in flight: followed to {whose}")
    return lines


def render_summary(
    state: Any,
    *,
    out_dir: Path | str,
    command_hint: str,
    pricing: dict[str, float] | None,
    identities: set[str] | None = None,
) -> str:
    """The summary printed at the end of ``apply``/``resume`` (and by ``status``).

    ``state`` is the batch's store (or snapshot, or a ``LedgerState``); ``command_hint`` the
    command that continues this batch (``lumozbatch apply m.yaml`` or ``lumozbatch resume
    outputs/x``); ``identities`` restricts the account to those jobs.
    """
    t = tally(state, identities, listed=_MAX_MISSING)
    n = t.n
    name = (state.batch or {}).get("name") or Path(out_dir).name
    head = f"{name}: {n('done')} of {t.total} done"
    extra = [
        f"{n('failed')} failed" if n("failed") else "",
        f"{n('ambiguous')} ambiguous" if n("ambiguous") else "",
        f"{n('in_flight')} in flight" if n("in_flight") else "",
        f"{n('missing')} missing" if n("missing") else "",
        f"{n('new')} not yet sent" if n("new") else "",
    ]
    extra = [e for e in extra if e]
    lines = [head + (", " + ", ".join(extra) if extra else "")]
    if n("failed"):
        lines.append(f"  failed ({n('failed')}), by cause:")
        lines.extend(cause_lines(t.failed))
    if n("ambiguous"):
        lines.append(
            f"  ambiguous ({n('ambiguous')}): sent, but the answer was lost; "
            "the provider may have billed them and their results cannot be fetched:"
        )
        lines.extend(cause_lines(t.ambiguous))
    if n("in_flight"):
        note = f" ({t.generated} generated, not downloaded yet)" if t.generated else ""
        lines.append(f"  in flight ({n('in_flight')}): accepted by the API{note}")
    if n("missing"):
        lines.append(
            f"  missing ({n('missing')}): gone from disk; apply fetches them again for free while the "
            "provider keeps them:"
        )
        lines.extend(missing_lines(t.listed.get("missing", []), n("missing")))
    relinked = t.relinked if t.relinked is not None else reads_of(state).count_relinked(_RELINKABLE)
    if relinked:
        lines.append(f"  {relinked} relinked by their webhooks: the run's answer was lost, "
                     "the webhook named the request (not sent again)")
    if t.retired:
        lines.append(f"  {t.retired} no longer in the manifest (kept in the ledger)")
        lines.extend(retired_lines(t))
    where = str(out_dir).rstrip("/")  # a folder, or an s3:// URL (which Path would mangle)
    lines.append(f"outputs: {where}/ (gallery: {where}/index.html)")
    spent = t.spend.line(pricing)
    if spent:
        lines.append(spent)
    lines.extend(_next_lines(t, state, command_hint, out_dir))
    return "\n".join(lines)


def _next_lines(t: Tally, state: Any, command_hint: str, out_dir: Path | str) -> list[str]:
    n = t.n
    steps: list[str] = []
    if n("new") or n("in_flight") or n("missing") or t.retired_followed:
        steps.append(f"  continue:                 {continue_command(command_hint, state)}")
    apply_cmd = _apply_command(command_hint, state, out_dir)
    if n("failed") and apply_cmd:
        steps.append(f"  retry the failed jobs:    {apply_cmd} --retry-failed")
    if n("ambiguous") and apply_cmd:
        steps.append(f"  resubmit the ambiguous (may pay twice): {apply_cmd} --resubmit-ambiguous")
    if n("missing") and apply_cmd:
        steps.append(f"  pay again for the missing the provider no longer has: {apply_cmd} --regenerate-missing")
    if steps:
        return ["next:", *steps]
    if t.total and n("done") == t.total:
        return ["all done."]
    return []
