"""Grid expansion: order, exclude/include/repeat/zip semantics, identities, and properties."""

from __future__ import annotations

import itertools
import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from lumozbatch.core.grid import expand
from tests.core.manifest_helpers import HEAD, build, job

def test_matrix_first_axis_slowest_and_exclude_include() -> None:
    m = build(
        job(
            "    params: {prompt: '{a} {b}'}\n"
            "    matrix: {a: [x, y], b: [1, 2, 3]}\n"
            "    exclude: [{a: y, b: 2}, {b: 3}]\n"
            "    include: [{a: z, b: 9}]\n"
        )
    )
    specs = list(expand(m))
    assert [s.variables for s in specs] == [
        {"a": "x", "b": 1},
        {"a": "x", "b": 2},
        {"a": "y", "b": 1},
        {"a": "z", "b": 9},
    ]
    assert [s.index for s in specs] == [0, 1, 2, 3]
    assert [s.params["prompt"] for s in specs] == ["x 1", "x 2", "y 1", "z 9"]
    assert m.count() == 4


def test_zip_advances_together_after_matrix_axes() -> None:
    m = build(
        job(
            "    params: {prompt: 'a tower at {time}'}\n"
            "    matrix: {num_inference_steps: [10, 20]}\n"
            "    zip: {time: [dawn, dusk], guidance_scale: [5, 7.5]}\n"
        )
    )
    got = [(s.params["num_inference_steps"], s.params["prompt"], s.params["guidance_scale"]) for s in expand(m)]
    assert got == [
        (10, "a tower at dawn", 5),
        (10, "a tower at dusk", 7.5),
        (20, "a tower at dawn", 5),
        (20, "a tower at dusk", 7.5),
    ]


def test_repeat_gives_distinct_identities_and_names() -> None:
    m = build(job("    params: {prompt: cat}\n    repeat: 3\n"))
    specs = list(expand(m))
    assert [s.repeat for s in specs] == [0, 1, 2]
    assert len({s.identity for s in specs}) == 3
    assert [s.filename for s in specs] == ["j/0000-r0", "j/0000-r1", "j/0000-r2"]


def test_repeat_one_identity_equals_no_repeat() -> None:
    a = next(expand(build(job("    params: {prompt: cat}\n"))))
    b = next(expand(build(job("    params: {prompt: cat}\n    repeat: 1\n"))))
    assert a.identity == b.identity
    assert a.filename == "j"


def test_random_seed_identity_is_the_same_for_random_and_empty() -> None:
    body = "    params: {{prompt: 'Sketch Smudge, cat', seed: {}}}\n"
    a = next(expand(build(job(body.format("random"), "flux-sketch-smudge"))))
    b = next(expand(build(job(body.format("''"), "flux-sketch-smudge"))))
    assert a.identity == b.identity


def test_integral_floats_are_ints() -> None:
    a = next(expand(build(job("    params: {prompt: cat, guidance_scale: 3}\n"))))
    b = next(expand(build(job("    params: {prompt: cat, guidance_scale: 3.0}\n"))))
    assert a.identity == b.identity
    assert b.params["guidance_scale"] == 3 and type(b.params["guidance_scale"]) is int


def test_value_from_defaults_params_or_variable_is_one_job() -> None:
    a = next(expand(build(HEAD + "defaults: {guidance_scale: 5}\njobs:\n  - {id: j, model: hidream-l1, params: {prompt: cat}}\n")))
    b = next(expand(build(job("    params: {prompt: cat, guidance_scale: 5}\n"))))
    c = next(expand(build(job("    params: {prompt: cat}\n    matrix: {guidance_scale: [5]}\n"))))
    assert a.identity == b.identity == c.identity


def test_templates_escape_braces_and_format_specs() -> None:
    m = build(
        job(
            "    params: {prompt: '{{literal}} {n:03d} {x}'}\n"
            "    matrix: {n: [7], x: [1.5]}\n"
            "    filename: '{job}/{model}-{index:02d}-{repeat}-{key}-{n:04d}'\n"
        )
    )
    spec = next(expand(m))
    assert spec.params["prompt"] == "{literal} 007 1.5"
    assert spec.filename == f"j/hidream-l1-00-0-{spec.identity[:12]}-0007"


def test_expand_is_lazy() -> None:
    m = build(job("    params: {prompt: '{a} {b} {c}'}\n    matrix: {a: [%s], b: [%s], c: [%s]}\n" % ((",".join(map(str, range(100))),) * 3)), check=False)
    assert m.count() == 1_000_000
    first = list(itertools.islice(expand(m), 3))  # would take long and much memory if eager
    assert [s.params["prompt"] for s in first] == ["0 0 0", "0 0 1", "0 0 2"]


# --- properties -------------------------------------------------------------------------

axis_values = st.lists(st.integers(0, 50), min_size=1, max_size=4, unique=True)


@st.composite
def grids(draw: st.DrawFn) -> tuple[dict[str, list[int]], list[dict[str, int]], list[dict[str, int]]]:
    names = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True))
    matrix = {n: draw(axis_values) for n in names}
    exclude = draw(
        st.lists(
            st.dictionaries(st.sampled_from(names), st.integers(0, 50), min_size=1),
            max_size=3,
        )
    )
    include = [{n: 100 + i for n in names} for i in range(draw(st.integers(0, 3)))]
    return matrix, exclude, include


def _text(matrix: dict, exclude: list, include: list, params_first: bool = True) -> str:
    prompt = " ".join("{%s}" % n for n in sorted(matrix))
    params = f"    params: {json.dumps({'prompt': prompt, 'negative_prompt': 'blurry'})}\n"
    body = f"    matrix: {json.dumps(matrix)}\n"
    if exclude:
        body += f"    exclude: {json.dumps(exclude)}\n"
    if include:
        body += f"    include: {json.dumps(include)}\n"
    return job(params + body if params_first else body + params)


@settings(max_examples=60, deadline=None)
@given(grids())
def test_count_is_product_minus_excluded_plus_included(g) -> None:
    matrix, exclude, include = g
    names = list(matrix)
    product = list(itertools.product(*matrix.values()))
    excluded = sum(1 for combo in product if any(all(dict(zip(names, combo))[k] == v for k, v in e.items()) for e in exclude))
    expected = len(product) - excluded + len(include)
    if expected == 0 or (excluded == len(product) and not include):
        return  # a job that generates nothing is an error, tested elsewhere
    m = build(_text(matrix, exclude, include))
    specs = list(expand(m))
    assert len(specs) == m.count() == expected
    assert len({s.identity for s in specs}) == expected
    assert len({s.filename for s in specs}) == expected


@settings(max_examples=40, deadline=None)
@given(grids(), st.randoms(use_true_random=False))
def test_identities_stable_under_reordering(g, rnd: random.Random) -> None:
    matrix, _, include = g
    m1 = build(_text(matrix, [], include))
    shuffled_axes = list(matrix.items())
    rnd.shuffle(shuffled_axes)
    shuffled = {k: rnd.sample(v, len(v)) for k, v in shuffled_axes}
    m2 = build(_text(shuffled, [], list(reversed(include)), params_first=False))
    a = {s.identity: s.variables for s in expand(m1)}
    b = {s.identity: s.variables for s in expand(m2)}
    assert a == b


