"""Where a ledger job stands, in the words ``plan``, ``status``, the summary and the
generation cap all use: the one map from job state to category. Pure.

=========  =====================================================================
new        not in the ledger, or planned and never (successfully) sent: PENDING
done       the output is on disk: DONE
in_flight  sent and not on disk yet: SUBMITTING, SUBMITTED, COMPLETED
failed     the API refused it or reported it failed (``--retry-failed`` re-sends)
ambiguous  sent, answer lost: maybe billed (``--resubmit-ambiguous`` re-sends)
missing    downloaded once, then deleted from disk: fetched again for free while the
           provider keeps it (``--regenerate-missing`` pays for it again): MISSING
=========  =====================================================================

SUBMITTING is in flight: a reader only ever sees it in the ledger of a live run (the ``run``
is on the wire, its answer about to be recorded), so it is neither re-sent nor called lost.
A ledger replayed after its run ended has no SUBMITTING job: replay settles each to AMBIGUOUS.
Every category that is sent counts as spent for the cap (see :func:`spent_generations`).
"""

from __future__ import annotations

from collections.abc import Iterable

from lumozbatch.core.jobstate import JobState
from lumozbatch.core.ledger_codec import JobRecord

__all__ = ["CATEGORIES", "category_of", "category_of_state", "spent_by_model", "spent_generations"]

CATEGORIES = ("new", "done", "in_flight", "failed", "ambiguous", "missing")

_CATEGORY = {
    JobState.PENDING: "new",
    JobState.SUBMITTING: "in_flight",
    JobState.SUBMITTED: "in_flight",
    JobState.COMPLETED: "in_flight",
    JobState.DONE: "done",
    JobState.FAILED: "failed",
    JobState.AMBIGUOUS: "ambiguous",
    JobState.MISSING: "missing",
}

# Submissions that may have cost money; a failure costs only when the API billed it.
_SPENT = frozenset(
    {JobState.SUBMITTING, JobState.SUBMITTED, JobState.COMPLETED, JobState.DONE, JobState.AMBIGUOUS, JobState.MISSING}
)


def category_of(record: JobRecord | None) -> str:
    """The category of a ledger job (None: not in the ledger -> new)."""
    return "new" if record is None else _CATEGORY[record.state]


def category_of_state(state: JobState) -> str:
    """The category of a job in ``state``."""
    return _CATEGORY[state]


def spent_generations(jobs: Iterable[JobRecord]) -> int:
    """Submissions the batch has made that may cost money, retired jobs included, and those
    made before a reset sent a job again: what a generation cap counts as already spent."""
    return sum(
        j.paid_before + (1 if j.state in _SPENT or (j.state is JobState.FAILED and j.billed) else 0)
        for j in jobs
    )


def spent_by_model(jobs: Iterable[JobRecord]) -> dict[str, int]:
    """:func:`spent_generations` per model (models with nothing spent are left out): what a
    cost is computed from, so that cost is always spent times price."""
    out: dict[str, int] = {}
    for j in jobs:
        n = spent_generations((j,))
        if n:
            out[j.model] = out.get(j.model, 0) + n
    return out
