"""The job lifecycle as one transition table (after h11's ``_state.py``).

A job's state only changes through :func:`advance`, keyed by (state, ledger record type).
Anything the table does not list raises :class:`IllegalTransition` and changes nothing.

The happy path is ``PENDING -intent-> SUBMITTING -accepted-> SUBMITTED -completed->
COMPLETED -downloaded-> DONE`` (a ``run`` that answers with its output at once may go
``SUBMITTING -completed-> COMPLETED``). Around it:

``SUBMITTING --unsent--> PENDING``: the ``run`` certainly created nothing (connect error, 429).
``SUBMITTING --failed--> FAILED``: the API refused the ``run`` (422, 403, 404; not billed).
``SUBMITTING --ambiguous--> AMBIGUOUS``: sent, answer lost (maybe billed).
``SUBMITTING --relinked--> SUBMITTED`` and ``AMBIGUOUS --relinked--> SUBMITTED``: a webhook
named the request that the run created though its answer was lost (or is still on its way).
``SUBMITTED --failed--> FAILED`` is a ``failed`` status after acceptance (billed).
``PENDING --failed--> FAILED``: not sent because its model does not exist (not billed).
``COMPLETED --failed--> COMPLETED``: a download failure; the output was paid for and the next
run downloads it again. ``COMPLETED --completed--> COMPLETED``: a fresh URL from ``/check``.
``DONE --stored--> DONE``: the output is kept in the store or shown under a new name.
``DONE --missing--> MISSING``: the output was deleted from its name and from the store; it is
fetched again like a COMPLETED one (a fresh URL from ``/check`` if need be) and is DONE once
downloaded. ``MISSING --reset--> PENDING`` is ``apply --regenerate-missing`` paying again for
an output the provider no longer has, knowingly.
``job`` and ``retire`` records describe the plan and never move the state.
Only ``reset`` leaves FAILED (to PENDING); AMBIGUOUS only by ``reset`` or ``relinked``; only a lost output leaves DONE. ``SUBMITTING
--reset--> PENDING`` is that same reset as replay meets it: a crash left the intent last.
``eof`` is not a record: :func:`lumozbatch.core.ledger_codec.replay` applies it at the end of
the ledger, so a job left SUBMITTING (crash or kill -9 between send and record) is AMBIGUOUS.
"""

from __future__ import annotations

import enum

__all__ = [
    "EOF",
    "IllegalTransition",
    "JobState",
    "TRANSITIONS",
    "advance",
]


class JobState(enum.StrEnum):
    """Where one job (one identity) stands; the values are what ``status --json`` shows."""

    PENDING = "pending"  # planned, nothing sent (or certainly nothing created)
    SUBMITTING = "submitting"  # intent written, `run` on the wire
    SUBMITTED = "submitted"  # the API gave a request_id
    COMPLETED = "completed"  # the output URL is known, not on disk yet
    DONE = "done"  # the output is on disk
    FAILED = "failed"  # the API refused the job or reported it failed
    AMBIGUOUS = "ambiguous"  # a `run` was sent and its answer lost: maybe billed
    MISSING = "missing"  # paid and downloaded once; the output is gone from disk: fetch again


#: Pseudo record type applied once per job at the end of a replay.
EOF = "eof"

_S = JobState

TRANSITIONS: dict[tuple[JobState, str], JobState] = {
    (_S.PENDING, "intent"): _S.SUBMITTING,
    # never sent, failed anyway: the rest of a model the API does not know (model_not_found)
    (_S.PENDING, "failed"): _S.FAILED,
    (_S.SUBMITTING, "unsent"): _S.PENDING,
    (_S.SUBMITTING, "accepted"): _S.SUBMITTED,
    # a `run` that answers with its output at once may be recorded without `accepted`
    (_S.SUBMITTING, "completed"): _S.COMPLETED,
    (_S.SUBMITTING, "failed"): _S.FAILED,
    (_S.SUBMITTING, "ambiguous"): _S.AMBIGUOUS,
    (_S.SUBMITTING, EOF): _S.AMBIGUOUS,
    # a webhook names the request a run created: its answer was lost, or is still coming
    (_S.SUBMITTING, "relinked"): _S.SUBMITTED,
    (_S.AMBIGUOUS, "relinked"): _S.SUBMITTED,
    (_S.SUBMITTED, "completed"): _S.COMPLETED,
    (_S.SUBMITTED, "failed"): _S.FAILED,
    (_S.COMPLETED, "completed"): _S.COMPLETED,
    (_S.COMPLETED, "failed"): _S.COMPLETED,
    (_S.COMPLETED, "downloaded"): _S.DONE,
    # the output is kept in the store (adopted from an older layout) or shown under a new name
    (_S.DONE, "stored"): _S.DONE,
    # deleted by hand from its name and from the store: fetch it again (it was paid for)
    (_S.DONE, "missing"): _S.MISSING,
    (_S.MISSING, "completed"): _S.MISSING,  # a fresh URL from /check
    (_S.MISSING, "failed"): _S.MISSING,  # the download failed again; still paid for
    (_S.MISSING, "downloaded"): _S.DONE,
    (_S.MISSING, "stored"): _S.DONE,  # a copy turned up again (put back by hand)
    # apply --regenerate-missing: a lost output the provider no longer has is paid for again
    (_S.MISSING, "reset"): _S.PENDING,
    (_S.FAILED, "reset"): _S.PENDING,
    (_S.AMBIGUOUS, "reset"): _S.PENDING,
    # on disk, a job whose run's answer a crash lost is still SUBMITTING (replay settles it
    # to AMBIGUOUS only at the end), so --resubmit-ambiguous's reset follows the intent
    (_S.SUBMITTING, "reset"): _S.PENDING,
}
# plan records never move the state; eof leaves every settled state alone
for _state in JobState:
    TRANSITIONS[(_state, "job")] = _state
    TRANSITIONS[(_state, "retire")] = _state
    TRANSITIONS.setdefault((_state, EOF), _state)
del _state


class IllegalTransition(ValueError):
    """A record that the job's current state does not allow (a bug or a damaged ledger)."""

    def __init__(self, state: JobState, record_type: str) -> None:
        super().__init__(f"a {record_type!r} record is not allowed for a job in state {state.value!r}")
        self.state = state
        self.record_type = record_type


def advance(state: JobState, record_type: str) -> JobState:
    """The state after ``record_type``; raises :class:`IllegalTransition` if not allowed."""
    try:
        return TRANSITIONS[(state, record_type)]
    except KeyError:
        raise IllegalTransition(state, record_type) from None
