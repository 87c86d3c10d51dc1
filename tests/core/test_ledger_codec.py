"""Ledger records <-> lines, torn tails, replay into job states, seed pinning."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumozbatch.core.jobspec import RANDOM_SEED, JobSpec
from lumozbatch.core.jobstate import TRANSITIONS, IllegalTransition, JobState
from lumozbatch.core.ledger_codec import (
    STEP_TYPES,
    BadRecord,
    JobRecord,
    LedgerCorrupt,
    LedgerState,
    RecordReader,
    apply_step,
    decode_lines,
    encode,
    pin_job_record,
    replay,
)
from lumozbatch.errors import UsageError

S = JobState


def job(identity: str, **extra: Any) -> dict[str, Any]:
    record = {
        "t": "job",
        "id": identity,
        "job": "portraits",
        "index": 0,
        "repeat": 0,
        "model": "flux-sketch-smudge",
        "params": {"prompt": "a cat", "seed": 7},
        "variables": {},
        "filename": f"portraits/{identity}",
        "known_model": True,
    }
    record.update(extra)
    return record


BATCH = {"t": "batch", "v": 1, "name": "b", "manifest": "m.yaml", "at": 1.0}


# -- encode / decode -----------------------------------------------------------------------


def test_encode_is_one_compact_line() -> None:
    line = encode({"t": "intent", "id": "x", "attempt": 1, "note": "é\nnewline"})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert line == '{"t":"intent","id":"x","attempt":1,"note":"é\\nnewline"}\n'.encode()


def test_encode_refuses_unknown_types_and_nan() -> None:
    with pytest.raises(BadRecord):
        encode({"t": "bogus", "id": "x"})
    with pytest.raises(ValueError):
        encode({"t": "failed", "id": "x", "reason": float("nan")})


def test_decode_round_trip_and_end_offset() -> None:
    records = [BATCH, job("a"), {"t": "intent", "id": "a", "attempt": 1}]
    data = b"".join(encode(r) for r in records)
    decoded, end = decode_lines(data)
    assert decoded == records
    assert end == len(data)


def test_big_integers_survive_the_fast_decoder() -> None:
    record = job("a", params={"seed": 2**70})
    decoded, _ = decode_lines(encode(record))
    assert decoded[0]["params"]["seed"] == 2**70


@pytest.mark.parametrize("cut", [1, 10, 25])
def test_torn_last_line_is_dropped_and_offset_points_before_it(cut: int) -> None:
    good = encode(BATCH) + encode(job("a"))
    torn = encode({"t": "intent", "id": "a", "attempt": 1})[:cut]
    decoded, end = decode_lines(good + torn)
    assert decoded == [BATCH, job("a")]
    assert end == len(good)


def test_garbage_last_line_with_newline_is_dropped() -> None:
    good = encode(BATCH)
    decoded, end = decode_lines(good + b"\x00\x00\x00\n")
    assert decoded == [BATCH] and end == len(good)


def test_a_complete_record_without_its_newline_counts_as_torn() -> None:
    good = encode(BATCH)
    decoded, end = decode_lines(good + encode(job("a"))[:-1])
    assert decoded == [BATCH] and end == len(good)


def test_corrupt_line_in_the_middle_raises_with_its_line_number() -> None:
    data = encode(BATCH) + b"{not json\n" + encode(job("a"))
    with pytest.raises(LedgerCorrupt) as info:
        decode_lines(data, file="x/ledger.jsonl")
    assert info.value.line_no == 2
    assert isinstance(info.value, UsageError) and info.value.exit_code == 2
    assert "x/ledger.jsonl is damaged at line 2" in info.value.message


def test_a_json_value_that_is_not_a_record_is_corrupt() -> None:
    with pytest.raises(LedgerCorrupt, match="line 1"):
        decode_lines(b"[1, 2]\n" + encode(BATCH))


def test_blank_lines_are_skipped_and_empty_input_is_empty() -> None:
    assert decode_lines(b"") == ([], 0)
    data = encode(BATCH) + b"\n" + encode(job("a"))
    assert decode_lines(data) == ([BATCH, job("a")], len(data))


# -- replay --------------------------------------------------------------------------------


def full_life(identity: str) -> list[dict[str, Any]]:
    return [
        job(identity),
        {"t": "intent", "id": identity, "attempt": 1},
        {"t": "accepted", "id": identity, "request_id": 42},
        {"t": "completed", "id": identity, "request_id": 42, "url": "http://x/o.png", "output_type": "image"},
        {"t": "downloaded", "id": identity, "file": "p/a.png", "sha256": "ab", "bytes": 10},
    ]


def test_replay_follows_a_job_to_done() -> None:
    state = replay([BATCH, *full_life("a")])
    assert state.batch == BATCH
    record = state.jobs["a"]
    assert record.state is S.DONE
    assert (record.request_id, record.url, record.file, record.bytes, record.attempts) == (
        42,
        "http://x/o.png",
        "p/a.png",
        10,
        1,
    )
    assert state.counts()["done"] == 1 and state.counts()["total"] == 1


def test_intent_without_answer_is_ambiguous_after_replay() -> None:
    state = replay([BATCH, job("a"), {"t": "intent", "id": "a", "attempt": 1}])
    assert state.jobs["a"].state is S.AMBIGUOUS
    assert "never recorded" in (state.jobs["a"].reason or "")


def test_unsent_makes_the_job_pending_again_and_attempts_count() -> None:
    records = [
        job("a"),
        {"t": "intent", "id": "a", "attempt": 1},
        {"t": "unsent", "id": "a", "reason": "429"},
        {"t": "intent", "id": "a", "attempt": 2},
        {"t": "unsent", "id": "a", "reason": "connect"},
    ]
    record = replay(records).jobs["a"]
    assert record.state is S.PENDING and record.attempts == 2


def test_failures_billed_or_not() -> None:
    refused = replay(
        [job("a"), {"t": "intent", "id": "a", "attempt": 1}, {"t": "failed", "id": "a", "reason": "bad", "code": "validation_error", "billed": False}]
    ).jobs["a"]
    assert (refused.state, refused.billed, refused.code) == (S.FAILED, False, "validation_error")
    after = replay(
        [job("a"), {"t": "intent", "id": "a", "attempt": 1}, {"t": "accepted", "id": "a", "request_id": 5}, {"t": "failed", "id": "a", "reason": "model crashed"}]
    ).jobs["a"]
    assert (after.state, after.billed, after.reason) == (S.FAILED, True, "model crashed")


def test_a_job_failed_without_being_sent_is_not_billed() -> None:
    record = replay([job("a"), {"t": "failed", "id": "a", "reason": "not sent: model_not_found", "code": "model_not_found"}]).jobs["a"]
    assert (record.state, record.billed, record.attempts) == (S.FAILED, False, 0)
    again = replay([job("a"), {"t": "failed", "id": "a", "reason": "x"}, {"t": "reset", "id": "a", "why": "retry-failed"}]).jobs["a"]
    assert again.state is S.PENDING


def test_download_failure_keeps_the_job_completed_with_its_reason() -> None:
    records = full_life("a")[:4] + [{"t": "failed", "id": "a", "reason": "404 on download", "billed": True}]
    record = replay(records).jobs["a"]
    assert record.state is S.COMPLETED and record.reason == "404 on download"
    assert record.url == "http://x/o.png"


def test_reset_clears_the_previous_outcome() -> None:
    records = [
        job("a"),
        {"t": "intent", "id": "a", "attempt": 1},
        {"t": "ambiguous", "id": "a", "reason": "read timeout"},
        {"t": "reset", "id": "a", "why": "resubmit-ambiguous"},
    ]
    record = replay(records).jobs["a"]
    assert record.state is S.PENDING and record.reason is None and record.attempts == 1


def test_a_relinked_job_is_submitted_with_the_webhook_request_id() -> None:
    lost = [job("a"), {"t": "intent", "id": "a", "attempt": 1}, {"t": "ambiguous", "id": "a", "reason": "reset"}]
    record = replay([*lost, {"t": "relinked", "id": "a", "request_id": 41}]).jobs["a"]
    assert (record.state, record.request_id, record.reason, record.attempts) == (S.SUBMITTED, 41, None, 1)
    assert record.relinked and not replay(lost).jobs["a"].relinked
    # before the run's answer (still on the wire), and then completed by the same delivery
    early = replay([job("a"), {"t": "intent", "id": "a", "attempt": 1}, {"t": "relinked", "id": "a", "request_id": 41},
                    {"t": "completed", "id": "a", "request_id": 41, "url": "http://x/o.png"}]).jobs["a"]
    assert (early.state, early.request_id, early.url) == (S.COMPLETED, 41, "http://x/o.png")
    with pytest.raises(LedgerCorrupt):
        replay([*lost, {"t": "relinked", "id": "a", "request_id": "41"}])  # not an int


def test_retire_and_replan() -> None:
    records = [job("a"), job("b"), {"t": "retire", "id": "a"}]
    state = replay(records)
    assert state.jobs["a"].retired and not state.jobs["b"].retired
    assert state.counts() == {**{s.value: 0 for s in S}, "pending": 1, "retired": 1, "total": 1}
    state = replay([*records, job("a", job="renamed", params={"seed": 999})])
    again = state.jobs["a"]
    assert not again.retired and again.job == "renamed"
    assert again.params == {"prompt": "a cat", "seed": 7}  # the pinned seed never changes
    assert list(state.jobs) == ["a", "b"]  # planning order kept


@pytest.mark.parametrize(
    ("records", "line"),
    [
        ([job("a"), {"t": "accepted", "id": "a", "request_id": 1}], 2),  # no intent first
        ([{"t": "intent", "id": "ghost", "attempt": 1}], 1),  # never planned
        ([job("a"), {"t": "wat", "id": "a"}], 2),
        ([BATCH, BATCH], 2),
        ([{"t": "batch", "v": 2, "name": "b"}], 1),
        ([job("a", index="zero")], 1),
        ([job("a"), {"t": "intent", "id": "a"}, {"t": "accepted", "id": "a"}], 3),  # no request_id
        ([job("a"), {"t": "intent"}], 2),
    ],
)
def test_replay_of_an_impossible_ledger_raises_with_the_record_number(records: list[dict[str, Any]], line: int) -> None:
    with pytest.raises(LedgerCorrupt) as info:
        replay(records)
    assert info.value.line_no == line


def test_replay_through_a_reader_names_the_file_line() -> None:
    data = encode(BATCH) + b"\n\n" + encode(job("a")) + encode({"t": "accepted", "id": "a", "request_id": 1})
    with pytest.raises(LedgerCorrupt) as info:
        replay(RecordReader(data), file="l.jsonl")
    assert info.value.line_no == 5 and "l.jsonl is damaged at line 5" in info.value.message


def test_apply_is_atomic_and_check_simulates_a_batch() -> None:
    state = replay([job("a")])
    with pytest.raises(IllegalTransition):
        state.apply({"t": "accepted", "id": "a", "request_id": 1})
    assert state.jobs["a"].state is S.PENDING
    with pytest.raises(BadRecord):
        state.apply({"t": "intent", "id": "nope", "attempt": 1})
    # a group of records is checked in order, against the states it would itself produce
    state.check([{"t": "intent", "id": "a", "attempt": 1}, {"t": "accepted", "id": "a", "request_id": 1}])
    with pytest.raises(IllegalTransition):
        state.check([{"t": "intent", "id": "a", "attempt": 1}, {"t": "intent", "id": "a", "attempt": 2}])
    with pytest.raises(BadRecord):
        state.check([job("b"), {"t": "completed", "id": "b", "url": None}])
    state.check([job("b"), {"t": "intent", "id": "b", "attempt": 1}])
    with pytest.raises(BadRecord, match="newer lumozbatch"):
        state.check([{"t": "batch", "v": 2, "name": "b"}])
    assert state.jobs["a"].state is S.PENDING and "b" not in state.jobs


def test_check_refuses_what_apply_would_refuse_after_folding_the_records_before_it() -> None:
    """A store checks a whole append before folding any of it: a later record that only
    ``apply`` refused left the earlier ones folded into the jobs it keeps."""
    state = replay([job("a"), {"t": "intent", "id": "a", "attempt": 1}, {"t": "accepted", "id": "a", "request_id": 1}])
    appended = [
        {"t": "completed", "id": "a", "request_id": 1, "url": "http://x/a.png"},
        {"t": "downloaded", "id": "a", "file": "a.png", "sha256": "0" * 64, "bytes": 1, "object": 5},
    ]
    with pytest.raises(BadRecord, match="'object' is not a string"):
        state.check(appended)
    state.apply(appended[0])
    with pytest.raises(BadRecord, match="'object' is not a string"):
        state.apply(appended[1])
    assert state.jobs["a"].state is S.COMPLETED and state.jobs["a"].object is None


def test_in_state_and_active_jobs() -> None:
    state = replay([job("a"), job("b"), {"t": "intent", "id": "b", "attempt": 1}, {"t": "accepted", "id": "b", "request_id": 3}, job("c"), {"t": "retire", "id": "c"}])
    assert [r.identity for r in state.jobs_in(S.PENDING)] == ["a"]
    assert [r.identity for r in state.jobs_in(S.SUBMITTED, S.PENDING)] == ["a", "b"]
    assert [r.identity for r in state.active_jobs()] == ["a", "b"]


# -- seed pinning --------------------------------------------------------------------------


def spec(seed: Any) -> JobSpec:
    return JobSpec(
        job="portraits",
        index=3,
        repeat=1,
        model="flux-sketch-smudge",
        params={"prompt": "a cat", "seed": seed},
        variables={"subject": "cat"},
        identity="f" * 64,
        filename="portraits/cat",
        known_model=False,
    )


@pytest.mark.parametrize("seed", [RANDOM_SEED, ""])
def test_pin_job_record_replaces_a_random_seed(seed: str) -> None:
    s = spec(seed)
    record = pin_job_record(s, 123456)
    assert record["params"] == {"prompt": "a cat", "seed": 123456}
    assert record["id"] == s.identity and s.params["seed"] == seed  # spec untouched
    assert (record["t"], record["job"], record["index"], record["repeat"], record["known_model"]) == ("job", "portraits", 3, 1, False)
    assert replay([record]).jobs[s.identity].params["seed"] == 123456


def test_pin_job_record_keeps_a_concrete_seed() -> None:
    assert pin_job_record(spec(42), 123456)["params"]["seed"] == 42
    json.loads(encode(pin_job_record(spec(42), 1)))


# -- property: any prefix of a valid history replays into consistent states ----------------

IDS = ["a", "b", "c"]
FIELDS = {
    "intent": {"attempt": 1},
    "unsent": {"reason": "connect"},
    "accepted": {"request_id": 77},
    "completed": {"request_id": 77, "url": "http://x/o.png", "output_type": "image"},
    "downloaded": {"file": "o.png", "sha256": "00", "bytes": 3},
    "failed": {"reason": "r", "code": "c", "billed": True},
    "ambiguous": {"reason": "timeout"},
    "relinked": {"request_id": 77},
    "reset": {"why": "retry-failed"},
    "retire": {},
}


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, JobState]]]:
    """A valid record sequence and, after each record, the expected state of each job."""
    records: list[dict[str, Any]] = [BATCH]
    states: dict[str, JobState] = {}
    expected = [dict(states)]
    for _ in range(draw(st.integers(0, 40))):
        identity = draw(st.sampled_from(IDS))
        if identity not in states:
            records.append(job(identity))
            states[identity] = S.PENDING
        else:
            moves = sorted(r for (s, r) in TRANSITIONS if s is states[identity] and r in FIELDS)
            kind = draw(st.sampled_from(moves + ["job"]))
            records.append(job(identity) if kind == "job" else {"t": kind, "id": identity, **FIELDS[kind]})
            states[identity] = TRANSITIONS[(states[identity], kind)]
        expected.append(dict(states))
    return records, expected


@settings(max_examples=150, deadline=None)
@given(histories())
def test_every_prefix_replays_consistently(history: tuple[list[dict[str, Any]], list[dict[str, JobState]]]) -> None:
    records, expected = history
    data = b"".join(encode(r) for r in records)
    for n in range(len(records) + 1):
        state = replay(records[:n])
        want = {k: (S.AMBIGUOUS if v is S.SUBMITTING else v) for k, v in (expected[n - 1] if n else {}).items()}
        assert {k: r.state for k, r in state.jobs.items()} == want
        counts = state.counts()
        assert sum(counts[s.value] for s in S) == counts["total"] == len(state.jobs) - counts["retired"]
        for r in state.jobs.values():
            assert r.state is not S.SUBMITTING
            if r.state in (S.SUBMITTED,):
                assert r.request_id is not None
            if r.state in (S.COMPLETED, S.DONE):
                assert r.url is not None
            if r.state is S.DONE:
                assert r.file is not None
    # and any byte prefix of the encoded ledger decodes to a record prefix
    for cut in range(0, len(data), max(1, len(data) // 25)):
        decoded, end = decode_lines(data[:cut])
        assert decoded == records[: len(decoded)]
        assert data[:end] == b"".join(encode(r) for r in decoded)
        replay(decoded)


def test_empty_state_counts() -> None:
    assert LedgerState().counts()["total"] == 0


# -- the output store: kept objects, names, lost outputs, a moved manifest ---------------------

def _done(identity: str, file: str, obj: str | None = None) -> list[dict[str, Any]]:
    return [
        job(identity),
        {"t": "intent", "id": identity, "attempt": 1},
        {"t": "accepted", "id": identity, "request_id": 1},
        {"t": "completed", "id": identity, "request_id": 1, "url": "http://s/o.png"},
        {"t": "downloaded", "id": identity, "file": file, "sha256": "0" * 64, "bytes": 3}
        | ({"object": obj} if obj else {}),
    ]


def test_a_downloaded_output_records_where_it_is_kept_and_who_held_each_name() -> None:
    state = replay(_done("a", "p/x.png", ".lumozbatch/objects/aa/a.png") + _done("b", "p/x.png", ".lumozbatch/objects/bb/b.png"))
    assert state.jobs["a"].object == ".lumozbatch/objects/aa/a.png"
    assert [j.identity for j in state.holders("p/x.png")] == ["a", "b"]
    # a name shown again (a revert) moves to the end: the newest holder is last
    state.apply({"t": "stored", "id": "a", "object": ".lumozbatch/objects/aa/a.png", "file": "p/x.png"})
    assert [j.identity for j in state.holders("p/x.png")] == ["b", "a"]
    assert state.jobs["a"].state is S.DONE


def test_an_output_lost_from_disk_is_fetched_again_and_only_regenerated_knowingly() -> None:
    state = replay(_done("a", "p/x.png"))
    state.apply({"t": "missing", "id": "a", "reason": "deleted from disk"})
    lost = state.jobs["a"]
    assert (lost.state, lost.object, lost.code, lost.request_id) == (S.MISSING, None, "missing", 1)
    state.apply({"t": "completed", "id": "a", "request_id": 1, "url": "http://s/fresh.png"})
    state.apply({"t": "failed", "id": "a", "reason": "download failed: gone", "code": "download", "billed": True})
    assert state.jobs["a"].state is S.MISSING  # still paid for, still wanted
    with pytest.raises(IllegalTransition):
        state.apply({"t": "intent", "id": "a", "attempt": 2})  # never re-sent without a reset
    state.apply({"t": "reset", "id": "a", "why": "regenerate-missing"})
    assert (state.jobs["a"].state, state.jobs["a"].paid_before) == (S.PENDING, 1)


def test_a_lost_output_downloaded_again_is_done() -> None:
    state = replay(_done("a", "p/x.png") + [{"t": "missing", "id": "a", "reason": "gone"}])
    state.apply({"t": "downloaded", "id": "a", "file": "p/x.png", "sha256": "1" * 64, "bytes": 4, "object": "o"})
    assert (state.jobs["a"].state, state.jobs["a"].object) == (S.DONE, "o")


def test_a_completed_job_is_never_reset_only_a_lost_one() -> None:
    state = replay(_done("a", "p/x.png")[:4])
    with pytest.raises(IllegalTransition):
        state.apply({"t": "reset", "id": "a", "why": "regenerate-missing"})


def test_moved_points_the_batch_at_its_new_manifest() -> None:
    batch = {"t": "batch", "v": 1, "name": "b", "manifest": "a.yaml", "api": "sandbox", "manifest_key": "a.yaml"}
    state = replay([batch, {"t": "moved", "manifest": "m/b.yaml", "manifest_key": "m/b.yaml"}])
    assert (state.batch["manifest"], state.batch["manifest_key"]) == ("m/b.yaml", "m/b.yaml")
    with pytest.raises(LedgerCorrupt):
        replay([{"t": "moved", "manifest": "x", "manifest_key": "x"}])
    with pytest.raises(BadRecord):
        LedgerState().check([{"t": "moved", "manifest": "x", "manifest_key": "x"}])


_STEPS: dict[str, list[dict[str, Any]]] = {  # a well-formed record of each step type, then malformed ones
    "intent": [{"attempt": 1}],
    "unsent": [{"reason": "connection refused"}],
    "accepted": [{"request_id": 5}, {"request_id": "five"}, {}],
    "completed": [{"request_id": 5, "url": "http://x/a.png", "output_type": "image"}, {"request_id": 5}],
    "downloaded": [{"file": "p/a.png", "sha256": "0" * 64, "bytes": 9}, {"sha256": "0"}, {"file": "p/a.png", "object": 3}],
    "stored": [{"object": "o/a.png", "file": "p/a.png"}, {"file": "p/a.png"}],
    "missing": [{"reason": "gone"}],
    "failed": [{"reason": "refused", "code": "validation_error", "billed": True}, {"reason": "x"}],
    "ambiguous": [{"reason": "read timeout"}],
    "relinked": [{"request_id": 6}, {"request_id": True}],
    "reset": [{"why": "resubmit-failed"}],
    "retire": [{}],
}


def test_every_step_type_has_cases() -> None:
    assert set(_STEPS) == STEP_TYPES


@pytest.mark.parametrize("kind", sorted(_STEPS))
def test_apply_step_alone_agrees_with_check_then_apply_and_a_refusal_changes_nothing(kind: str) -> None:
    """What the SQL stores fold a lone step with: from every state, every record of a type
    ends as LedgerState's check-then-apply ends it, or is refused with the job unchanged."""
    for fields in _STEPS[kind]:
        record = {"t": kind, "id": "x", **fields}
        for state in JobState:
            job = JobRecord(identity="x", job="portraits", index=0, repeat=0, model="m", params={"seed": 1},
                            variables={}, filename="p/a", state=state, request_id=4, file="p/a.png")
            state_of = LedgerState(jobs={"x": copy.copy(job)})
            try:
                state_of.check([record])
                state_of.apply(record)
                expected: JobRecord | None = state_of.jobs["x"]
            except (BadRecord, IllegalTransition):
                expected = None
            mine = copy.copy(job)
            if expected is None:
                with pytest.raises((BadRecord, IllegalTransition)):
                    apply_step(mine, record)
                assert dataclasses.astuple(mine) == dataclasses.astuple(job)
            else:
                shown = apply_step(mine, record)
                assert dataclasses.astuple(mine) == dataclasses.astuple(expected)
                assert shown == (kind in ("downloaded", "stored"))
