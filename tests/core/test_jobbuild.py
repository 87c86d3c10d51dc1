"""One ``jobs:`` entry -> a JobDef: parameters, defaults, templates, variables, models."""

from __future__ import annotations

from lumozbatch.core.grid import expand
from lumozbatch.core.jobspec import RANDOM_SEED
from tests.core.manifest_helpers import HEAD, build, job, messages

def test_jobdef_fields() -> None:
    m = build(job("    params: {prompt: '{a}', negative_prompt: blurry}\n    matrix: {a: [x, y], num_inference_steps: [4]}\n    repeat: 2\n"))
    (jobdef,) = m.jobs
    assert (jobdef.id, jobdef.model, jobdef.known_model) == ("j", "hidream-l1", True)
    assert jobdef.params == {"prompt": "{a}", "negative_prompt": "blurry"}
    assert list(jobdef.templates) == ["prompt"]
    assert (jobdef.variables, jobdef.param_vars, jobdef.varying) == (("a", "num_inference_steps"), ("num_inference_steps",), ("a",))
    assert (jobdef.combinations, jobdef.repeat, jobdef.count) == (2, 2, 4)
    assert str(jobdef.where.diag("x")) == "m.yaml:4:5: jobs[0]: x"


def test_unknown_parameter_of_a_known_model() -> None:
    out = messages(job("    params: {prompt: x, guidance_scal: 3}\n"))
    assert "hidream-l1 has no parameter 'guidance_scal' (did you mean 'guidance_scale'?)" in out


def test_a_variable_no_template_uses() -> None:
    out = messages(job("    params: {prompt: x}\n    matrix: {mood: [a, b]}\n"))
    assert "variable 'mood' is not a parameter of hidream-l1 and no template uses it" in out


def test_defaults_only_for_parameters_the_model_has() -> None:
    m = build(
        HEAD
        + "defaults: {guidance: 4, negative_prompt: blurry, output_format: png}\n"
        + "jobs:\n"
        + "  - {id: f, model: flux-sketch-smudge, params: {prompt: 'Sketch Smudge, cat', guidance: 2}}\n"
        + "  - {id: h, model: hidream-l1, params: {prompt: cat}}\n"
        + "  - {id: u, model: unknown-model, params: {prompt: cat}}\n"
    )
    f, h, u = list(expand(m))
    assert f.params == {"guidance": 2, "output_format": "png", "prompt": "Sketch Smudge, cat", "aspect_ratio": "1:1", "seed": RANDOM_SEED}
    assert h.params == {"negative_prompt": "blurry", "prompt": "cat"}
    assert u.params == {"guidance": 4, "negative_prompt": "blurry", "output_format": "png", "prompt": "cat"}
    assert (f.known_model, h.known_model, u.known_model) == (True, True, False)
    assert [w.message.split(":")[0] for w in m.warnings] == ["unknown model 'unknown-model'"]


def test_seed_random_and_empty_normalise_to_sentinel() -> None:
    specs = list(
        expand(
            build(
                HEAD
                + "jobs:\n"
                + "  - {id: a, model: flux-sketch-smudge, params: {prompt: 'Sketch Smudge, a', seed: random}}\n"
                + "  - {id: b, model: flux-sketch-smudge, params: {prompt: 'Sketch Smudge, b', seed: ''}}\n"
                + "  - {id: c, model: flux-sketch-smudge, params: {prompt: 'Sketch Smudge, c'}}\n"
                + "  - {id: d, model: flux-sketch-smudge, params: {prompt: 'Sketch Smudge, d', seed: 42}}\n"
            )
        )
    )
    assert [s.params["seed"] for s in specs] == [RANDOM_SEED, RANDOM_SEED, RANDOM_SEED, 42]
    assert [s.wants_random_seed for s in specs] == [True, True, True, False]


def test_literal_braces_in_a_constant_parameter() -> None:
    spec = next(expand(build(job("    params: {prompt: 'a {{literal}} brace', negative_prompt: '}}'}\n"))))
    assert spec.params == {"prompt": "a {literal} brace", "negative_prompt": "}"}


def test_unknown_model_variable_is_a_parameter_unless_templated() -> None:
    m = build(HEAD + "jobs:\n  - id: a\n    model: new-model\n    params: {prompt: '{who}'}\n    matrix: {who: [x], steps: [4, 8]}\n")
    specs = list(expand(m))
    assert [s.params for s in specs] == [{"prompt": "x", "steps": 4}, {"prompt": "x", "steps": 8}]
    assert not specs[0].known_model
    assert "unknown model 'new-model'" in m.warnings[0].message


def test_unknown_model_suggests_close_name() -> None:
    m = build(HEAD + "jobs:\n  - {id: a, model: hidream-l2, params: {prompt: x}}\n")
    assert "did you mean 'hidream-l1'?" in m.warnings[0].message


def test_variable_set_parameter_values_checked_at_the_value() -> None:
    out = messages(HEAD + "jobs:\n  - id: a\n    model: hidream-l1\n    params: {prompt: x}\n    matrix:\n      guidance_scale: [1, 25]\n")
    assert out == "m.yaml:8:27: jobs[0].matrix.guidance_scale[1]: guidance_scale: 25 is above the maximum 20"


def test_template_in_defaults_needs_the_variable() -> None:
    text = HEAD + "defaults: {prompt: 'a {thing}'}\njobs:\n  - {id: a, model: hidream-l1, matrix: {thing: [x]}}\n  - {id: b, model: hidream-l1}\n"
    assert "unknown variable {thing} in the template (for job 'b')" in messages(text)


def test_model_id_is_not_a_parameter() -> None:
    assert "model_id is not a parameter" in messages(HEAD + "jobs:\n  - {id: a, model: x-model, params: {model_id: y}}\n")


def test_required_parameter_with_default_is_filled() -> None:
    spec = next(expand(build(HEAD + "jobs:\n  - {id: a, model: flux-sketch-smudge, params: {prompt: 'Sketch Smudge, x'}}\n")))
    assert spec.params["aspect_ratio"] == "1:1"
