"""The checks only the expanded grid shows: templated values, filenames, identities."""

from __future__ import annotations

import pytest

from lumozbatch.core import gridcheck
from tests.core.manifest_helpers import HEAD, build, job, messages


def test_two_jobs_with_one_identity_are_an_error() -> None:
    text = HEAD + "jobs:\n  - {id: a, model: hidream-l1, params: {prompt: x}}\n  - {id: b, model: hidream-l1, params: {prompt: x}}\n"
    assert "job 'b' #0 is the same generation as job 'a' #0 (same model and parameters); it would be paid twice" in messages(text)


def test_a_format_spec_that_does_not_fit_a_value() -> None:
    out = messages(job("    params: {prompt: '{n:03d}'}\n    matrix: {n: [1, x]}\n"))
    assert "{n:03d} cannot format 'x'" in out and "(for n='x')" in out


def test_an_unsafe_templated_filename() -> None:
    out = messages(job("    params: {prompt: '{d}'}\n    matrix: {d: [a, .lumozbatch]}\n    filename: '{d}/x'\n"))
    assert "'.lumozbatch/x' would write into the ledger folder .lumozbatch/ (for job 'j' #1 (d='.lumozbatch'))" in out
    assert build(job("    params: {prompt: '{d}'}\n    matrix: {d: [a, b]}\n    filename: '{d}/x'\n")).count() == 2


def test_case_insensitive_collision_is_an_error() -> None:
    text = HEAD + "jobs:\n  - {id: A, model: hidream-l1, params: {prompt: a}}\n  - {id: a, model: hidream-l1, params: {prompt: b}}\n"
    assert "would both be written to 'a'" in messages(text)


def test_many_duplicates_are_capped() -> None:
    out = messages(job("    params: {prompt: cat, negative_prompt: '{n}'}\n    matrix: {n: [%s]}\n    filename: '{job}/same'\n" % ",".join(map(str, range(30)))))
    assert out.count("would both be written") == 10
    assert "... and 19 more like the above in job 'j'" in out


def test_templated_value_checked_after_templating() -> None:
    text = HEAD + "jobs:\n  - id: a\n    model: flux-sketch-smudge\n    params: {prompt: 'Sketch Smudge', output_format: '{f}'}\n    matrix: {f: [png, gif]}\n"
    assert "'gif' is not one of 'webp', 'jpg', 'png' after filling the template (for f='gif')" in messages(text)


def test_hashes_that_meet_are_checked_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """The grid keeps only a hash of each identity and name: when hashes meet (here every
    one), the second reading reports the real duplicates and nothing else."""
    monkeypatch.setattr(gridcheck, "hash", lambda value: 7, raising=False)
    fine = job("    params: {prompt: '{n}'}\n    matrix: {n: [1, 2, 3]}\n    filename: '{n}'\n")
    assert build(fine).count() == 3
    out = messages(HEAD + "jobs:\n  - {id: a, model: hidream-l1, params: {prompt: x}}\n  - {id: b, model: hidream-l1, params: {prompt: x}}\n")
    assert "job 'b' #0 is the same generation as job 'a' #0" in out and "would both be written" not in out
    assert "would both be written to 'a'" in messages(
        HEAD + "jobs:\n  - {id: A, model: hidream-l1, params: {prompt: a}}\n  - {id: a, model: hidream-l1, params: {prompt: b}}\n"
    )
