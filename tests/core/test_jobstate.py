"""The job lifecycle table: every legal move, and illegal ones raise and change nothing."""

from __future__ import annotations

import pytest

from lumozbatch.core.jobstate import EOF, TRANSITIONS, IllegalTransition, JobState, advance

S = JobState


@pytest.mark.parametrize(
    ("state", "record", "expected"),
    [
        (S.PENDING, "intent", S.SUBMITTING),
        (S.PENDING, "failed", S.FAILED),  # the rest of a model_not_found model, never sent
        (S.SUBMITTING, "unsent", S.PENDING),
        (S.SUBMITTING, "accepted", S.SUBMITTED),
        (S.SUBMITTING, "completed", S.COMPLETED),
        (S.SUBMITTING, "failed", S.FAILED),
        (S.SUBMITTING, "ambiguous", S.AMBIGUOUS),
        (S.SUBMITTING, EOF, S.AMBIGUOUS),
        (S.SUBMITTED, "completed", S.COMPLETED),
        (S.SUBMITTED, "failed", S.FAILED),
        (S.COMPLETED, "downloaded", S.DONE),
        (S.COMPLETED, "failed", S.COMPLETED),  # download failure: still paid, still to fetch
        (S.COMPLETED, "completed", S.COMPLETED),  # fresh URL
        (S.FAILED, "reset", S.PENDING),
        (S.AMBIGUOUS, "reset", S.PENDING),
        (S.AMBIGUOUS, "relinked", S.SUBMITTED),  # a webhook named the lost run's request
        (S.SUBMITTING, "relinked", S.SUBMITTED),  # the webhook came before the run's answer
    ],
)
def test_legal_moves(state: JobState, record: str, expected: JobState) -> None:
    assert advance(state, record) is expected


@pytest.mark.parametrize("state", list(JobState))
def test_plan_records_never_move_the_state(state: JobState) -> None:
    assert advance(state, "job") is state
    assert advance(state, "retire") is state


@pytest.mark.parametrize("state", [s for s in JobState if s is not S.SUBMITTING])
def test_eof_only_settles_submitting(state: JobState) -> None:
    assert advance(state, EOF) is state


@pytest.mark.parametrize(
    ("state", "record"),
    [
        (S.PENDING, "accepted"),  # no request_id without an intent first
        (S.PENDING, "reset"),
        (S.SUBMITTED, "intent"),  # never pay twice for an accepted job
        (S.SUBMITTED, "ambiguous"),  # it has a request_id: nothing is ambiguous any more
        (S.SUBMITTED, "unsent"),
        (S.DONE, "intent"),
        (S.DONE, "downloaded"),
        (S.DONE, "reset"),
        (S.COMPLETED, "reset"),  # a paid output is never thrown away
        (S.FAILED, "intent"),  # only an explicit reset re-sends a failed job
        (S.AMBIGUOUS, "intent"),
        (S.AMBIGUOUS, "accepted"),
        (S.PENDING, "relinked"),  # nothing was sent: no webhook can name it
        (S.SUBMITTED, "relinked"),  # its request is known already
        (S.DONE, "relinked"),
        (S.PENDING, "nonsense"),
    ],
)
def test_illegal_moves_raise(state: JobState, record: str) -> None:
    before = dict(TRANSITIONS)
    with pytest.raises(IllegalTransition) as info:
        advance(state, record)
    assert info.value.state is state and info.value.record_type == record
    assert record in str(info.value) and state.value in str(info.value)
    assert TRANSITIONS == before


def test_only_reset_leaves_failed_and_ambiguous() -> None:
    for (state, record), target in TRANSITIONS.items():
        if state in (S.FAILED, S.AMBIGUOUS) and target is not state:
            # a relink is no resubmission: the request the lost run created is followed
            assert record == "reset" or (state, record, target) == (S.AMBIGUOUS, "relinked", S.SUBMITTED)


def test_only_a_lost_output_leaves_done() -> None:
    leaving = {(kind, target) for (state, kind), target in TRANSITIONS.items() if state is S.DONE and target is not S.DONE}
    assert leaving == {("missing", S.MISSING)}
