"""Before a run, and for ``status``: do the outputs (a folder, or a bucket: any
:class:`~lumozbatch.shell.outputs.Outputs`) still show what the ledger says?

For every active done job the named file should be its kept output (see
:mod:`lumozbatch.shell.outputs`). A cheap check (two ``stat`` calls a job, no hashing) finds:

* a name that shows another generation (an edit that was reverted) or nothing (deleted by
  hand): the kept object is put back under it, for free;
* an output from before the store existed: its file is adopted as its object (linked, not
  copied; checked against the recorded sha256 once);
* an output gone from its name and from the store: a ``missing`` record, so the run fetches
  it again from the provider while the provider keeps it (``apply --regenerate-missing``
  pays for it again only once that has failed).

``survey_outputs`` only looks (``status``); ``reconcile_outputs`` repairs and records
(``apply``/``resume``, holding the batch's lock, before the run starts).
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lumozbatch.core.chunks import chunked
from lumozbatch.core.jobstate import JobState
from lumozbatch.core.ledger_codec import JobRecord
from lumozbatch.core.records import Missing, Record, Stored
from lumozbatch.shell.done_outputs import DoneOutput, done_outputs
from lumozbatch.shell.outputs import Health, KnownOutput, Outputs, as_outputs
from lumozbatch.shell.store import BatchStore

__all__ = [
    "OutputSurvey", "Reconciled", "kept_outputs", "looked_at", "output_name", "reconcile_outputs", "shown_name",
    "survey_outputs",
]


def shown_name(job: JobRecord | DoneOutput, ext: str) -> str:
    """The name a job's output goes under: its planned file name plus the output's extension."""
    return job.filename + ext


def _ext(job: JobRecord | DoneOutput) -> str:
    """The output's extension (``PurePosixPath.suffix``, by string: a tenth of its cost)."""
    name = (job.object or job.file or "").rpartition("/")[2]
    dot = name.rfind(".")
    return name[dot:] if 0 < dot < len(name) - 1 else ""


_LOST_LISTED = 100  # lost outputs listed one by one; the rest are counted


@dataclass(slots=True)
class OutputSurvey:
    """What ``status`` says of the outputs on disk (active done jobs, and MISSING ones)."""

    checked: int = 0
    of: int = 0  # active done jobs (``checked`` is fewer when the look was bounded)
    ok: int = 0
    #: the name is gone or shows another generation; the kept copy can put it back for free
    restorable: int = 0
    #: done before the store existed; the next apply adopts the file as its kept copy
    unkept: int = 0
    #: gone from its name and from the store: only the provider can give it back (the
    #: first hundred; ``lost_count`` counts them all)
    lost: list[JobRecord] = field(default_factory=list)
    lost_count: int = 0

    def _lose(self, job: JobRecord) -> None:
        self.lost_count += 1
        if len(self.lost) < _LOST_LISTED:
            self.lost.append(job)


def survey_outputs(store: BatchStore, outputs: Outputs | Path, *, limit: int | None = None) -> OutputSurvey:
    """Look, change nothing (no lock needed): at the first ``limit`` active done jobs when
    given (a quick look at a huge batch; ``apply`` checks them all), and every MISSING one.
    ``outputs``: the batch's :class:`Outputs` (or its local folder)."""
    tree = as_outputs(outputs)
    survey = OutputSurvey(of=store.counts()[JobState.DONE.value])
    for job in itertools.islice(store.iter_jobs([JobState.DONE], retired=False), limit):
        survey.checked += 1
        if job.object is None:
            if job.file is not None and tree.health(job.file, job.file, job.bytes) is not Health.LOST:
                survey.unkept += 1
            else:
                survey._lose(job)
            continue
        health = tree.health(job.object, output_name(job), job.bytes)
        if health is Health.OK:
            survey.ok += 1
        elif health is Health.LOST or health is Health.OBJECT_MISSING:
            survey._lose(job)
        else:
            survey.restorable += 1
    for job in store.iter_jobs([JobState.MISSING], retired=False):
        survey._lose(job)
    return survey


@dataclass(slots=True)
class Reconciled:
    """What ``reconcile_outputs`` did."""

    restored: int = 0  # names put back from the store (reverted edits, deleted by hand)
    adopted: int = 0  # outputs from before the store, now kept
    missing: int = 0  # outputs to fetch again
    displaced: list[str] = field(default_factory=list)  # files moved aside (never ours)


def reconcile_outputs(store: BatchStore, outputs: Outputs | Path, *, suspects: Collection[str] | None = None) -> Reconciled:
    """Make every active done job's name show its kept output; record what changed.
    Blocking: call it before the run (or from a worker thread).

    ``suspects``: the only done jobs whose files may not be as recorded, found beforehand
    (:mod:`lumozbatch.shell.outputs_check`); None: every active done job is looked at."""
    tree = as_outputs(outputs)
    tree.sweep_partial_downloads()  # a killed run's half-downloaded files: never a paid output
    done = Reconciled()
    jobs = done_outputs(store) if suspects is None else _active_done(store, suspects)
    # names are unique among active jobs: repairing one job's name changes no other's health
    for job, name, health in looked_at(tree, jobs):
        if health is Health.OK and job.file == name:
            continue  # nearly every job: nothing more is done for it
        records = _reconcile_one(store, tree, job, health, done)
        if records:
            store.append_sync(*records)
    return done


def looked_at(tree: Outputs, jobs: Iterable[DoneOutput]) -> Iterator[tuple[DoneOutput, str, Health | None]]:
    """Each of ``jobs`` with the name its output is shown under and the health of its kept
    object and that name (None: it has no kept object), a page of them looked at together.
    As recorded: health OK and ``job.file`` that name."""
    for page in chunked(jobs, _PAGE):
        names = [output_name(job) for job in page]
        healths = iter(tree.health_many([(j.object, n, j.bytes) for j, n in zip(page, names) if j.object is not None]))
        for job, name in zip(page, names):
            yield job, name, next(healths) if job.object is not None else None


def output_name(job: JobRecord | DoneOutput) -> str:
    """The name a done job's output is shown under."""
    return shown_name(job, _ext(job))


def _active_done(store: BatchStore, identities: Collection[str]) -> Iterator[DoneOutput]:
    for chunk in chunked(sorted(identities), 500):
        for job in store.jobs_by_identity(chunk).values():
            if job.state is JobState.DONE and not job.retired:
                yield DoneOutput.of(job)


_PAGE = 2000  # done jobs whose outputs are looked at together


def _reconcile_one(store: BatchStore, tree: Outputs, job: DoneOutput, health: Health | None, done: Reconciled) -> list[Record]:
    """``health``: of the job's kept object and name (None: it has no kept object)."""
    obj = job.object
    if obj is None and job.file is not None:
        obj = tree.adopt(job.file, job.identity, KnownOutput("", job.sha256, job.bytes))
        done.adopted += obj is not None
    if obj is None:
        done.missing += 1
        return [Missing(id=job.identity, reason="the output is gone from disk: fetching it again")]
    name = output_name(job)
    if health is None:  # adopted just now
        health = tree.health(obj, name, job.bytes)
    if health is Health.OBJECT_MISSING:
        # the kept copy was deleted; the named file may still be the output
        obj = tree.adopt(name, job.identity, KnownOutput("", job.sha256, job.bytes))
        if obj is None:
            done.missing += 1
            return [Missing(id=job.identity, reason=f"{name} shows another file and the kept copy is gone: fetching it again")]
    elif health is Health.LOST:
        done.missing += 1
        return [Missing(id=job.identity, reason=f"{name} and its kept copy were deleted: fetching it again")]
    elif health is not Health.OK:
        displaced = tree.place(obj, name, others=kept_outputs(store.holders(name), job))
        if displaced is not None:
            done.displaced.append(displaced)
        done.restored += 1
    if (obj, name) != (job.object, job.file):
        return [Stored(id=job.identity, object=obj, file=name)]
    return []


def kept_outputs(holders: Iterable[JobRecord], me: JobRecord | DoneOutput) -> list[KnownOutput]:
    """The other outputs that have held a name and are kept: safe to re-point it from."""
    return [
        KnownOutput(h.object, h.sha256, h.bytes)
        for h in holders
        if h.identity != me.identity and h.object is not None
    ]
