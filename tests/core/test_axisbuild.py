"""A job's variables: matrix and zip axes, include, exclude, CSV numbers, and the count."""

from __future__ import annotations

from lumozbatch.core.grid import expand
from tests.core.manifest_helpers import HEAD, build, job, messages

def test_zip_lists_of_unequal_length() -> None:
    out = messages(job("    params: {prompt: '{a} {b}'}\n    zip: {a: [x, y], b: [1]}\n"))
    assert "zip lists must have equal lengths, got a: 2, b: 1" in out


def test_a_variable_twice_in_matrix_and_zip() -> None:
    out = messages(job("    params: {prompt: '{a}'}\n    matrix: {a: [x]}\n    zip: {a: [y]}\n"))
    assert "variable 'a' is defined twice (matrix and zip, or two zip columns)" in out


def test_csv_numbers_for_numeric_parameters() -> None:
    m = build(
        job("    params: {prompt: '{time} {label}'}\n    zip: {file: r.csv}\n    exclude: [{guidance_scale: 7.5}]\n"),
        {"r.csv": "time,label,guidance_scale,num_inference_steps\ndawn,007,5,30\ndusk,008,7.5,40\nnoon,009,2.5e0,50\n"},
    )
    specs = list(expand(m))
    assert [(s.params["prompt"], s.params["guidance_scale"], s.params["num_inference_steps"]) for s in specs] == [
        ("dawn 007", 5, 30),
        ("noon 009", 2.5, 50),
    ]


def test_exclude_matching_nothing_is_a_warning() -> None:
    m = build(HEAD + "jobs:\n  - id: a\n    model: hidream-l1\n    params: {prompt: '{c}'}\n    matrix: {c: [red, blue]}\n    exclude: [{c: green}]\n")
    assert m.count() == 2
    assert str(m.warnings[0]) == "m.yaml:8:15: warning: jobs[0].exclude[0]: this exclude entry matches no combination"


def test_exclude_everything_is_an_error() -> None:
    out = messages(HEAD + "jobs:\n  - id: a\n    model: hidream-l1\n    params: {prompt: '{c}'}\n    matrix: {c: [red]}\n    exclude: [{c: red}]\n")
    assert "exclude drops all 1 combination:" in out  # #12: was "1 combinations"


def test_exclude_matches_numbers_by_value() -> None:
    m = build(HEAD + "jobs:\n  - id: a\n    model: hidream-l1\n    params: {prompt: x}\n    matrix: {guidance_scale: [3.0, 5]}\n    exclude: [{guidance_scale: 3}]\n")
    assert [s.params["guidance_scale"] for s in expand(m)] == [5]


def test_include_only_job() -> None:
    m = build(HEAD + "jobs:\n  - id: a\n    model: hidream-l1\n    params: {prompt: '{s}'}\n    include: [{s: x}, {s: y}]\n")
    assert [s.params["prompt"] for s in expand(m)] == ["x", "y"]
    out = messages(HEAD + "jobs:\n  - id: a\n    model: hidream-l1\n    params: {prompt: '{s}'}\n    include: [{s: x}, {t: y}]\n")
    assert "an include entry must give every variable of the job (s): missing s; unknown t" in out


def test_zip_list_values_located_per_column() -> None:
    out = messages(HEAD + "jobs:\n  - id: a\n    model: hidream-l1\n    params: {prompt: '{t}'}\n    zip:\n      t: [a, b]\n      num_inference_steps: [10, -1]\n")
    assert out.startswith("m.yaml:9:33: jobs[0].zip.num_inference_steps[1]:")


def test_two_random_seeds_suggest_repeat() -> None:
    out = messages(HEAD + "jobs:\n  - id: a\n    model: flux-sketch-smudge\n    params: {prompt: 'Sketch Smudge, x'}\n    matrix: {seed: [random, random]}\n")
    assert "the value 'random' appears twice" in out and "use repeat: N" in out


def test_a_value_listed_twice_is_located_with_its_first() -> None:
    out = messages(HEAD + "jobs:\n  - id: a\n    model: hidream-l1\n    params: {prompt: '{c}'}\n    matrix:\n      c: [red, blue]\n      guidance_scale:\n        - 3\n        - 4\n        - 3.0\n")
    assert out == "m.yaml:12:11: jobs[0].matrix.guidance_scale[2]: guidance_scale: the value 3.0 appears twice (also at line 10); every combination would run twice"


def test_a_number_in_a_list_of_prompts_says_to_quote_it() -> None:
    out = messages(HEAD + "jobs:\n  - id: a\n    model: hidream-l1\n    matrix: {prompt: [a cat, 12, 0x1F]}\n")
    assert "jobs[0].matrix.prompt[1]" in out and "YAML read the unquoted 12 as the number 12: quote it (\"12\")" in out
    assert "YAML read the unquoted 0x1F as the number 31: quote it (\"0x1F\")" in out
