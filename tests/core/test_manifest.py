"""Semantic validation beyond the bad-manifest corpus, and what a valid Manifest holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from lumozbatch.core.grid import expand
from lumozbatch.errors import ManifestError
from lumozbatch.manifest_io import load_manifest
from tests.conftest import MANIFESTS
from tests.core.manifest_helpers import build, messages

HEAD = "version: 1\nname: t\n"


def test_manifest_fields() -> None:
    m = build(
        HEAD
        + "description: d\njobs:\n  - {id: a, model: hidream-l1, params: {prompt: x}, repeat: 2}\n"
        + "limits: {concurrency: 3, max_generations: 10}\npricing: {hidream-l1: 0.5}\noutput: {filename: 'o/{key}'}\n"
    )
    assert (m.name, m.concurrency, m.max_generations, m.pricing, m.count()) == ("t", 3, 10, {"hidream-l1": 0.5}, 2)
    assert m.output_filename == "o/{key}" and m.description == "d"
    assert [j.id for j in m.jobs] == ["a"]


def test_unknown_model_variable_is_a_parameter_unless_templated() -> None:
    m = build(HEAD + "jobs:\n  - id: a\n    model: new-model\n    params: {prompt: '{who}'}\n    matrix: {who: [x], steps: [4, 8]}\n")
    specs = list(expand(m))
    assert [s.params for s in specs] == [{"prompt": "x", "steps": 4}, {"prompt": "x", "steps": 8}]
    assert not specs[0].known_model
    assert "unknown model 'new-model'" in m.warnings[0].message


def test_unknown_model_suggests_close_name() -> None:
    m = build(HEAD + "jobs:\n  - {id: a, model: hidream-l2, params: {prompt: x}}\n")
    assert "did you mean 'hidream-l1'?" in m.warnings[0].message


def test_exclude_matching_nothing_is_a_warning() -> None:
    m = build(HEAD + "jobs:\n  - id: a\n    model: hidream-l1\n    params: {prompt: '{c}'}\n    matrix: {c: [red, blue]}\n    exclude: [{c: green}]\n")
    assert m.count() == 2
    assert str(m.warnings[0]) == "m.yaml:8:15: warning: jobs[0].exclude[0]: this exclude entry matches no combination"


def test_exclude_everything_is_an_error() -> None:
    out = messages(HEAD + "jobs:\n  - id: a\n    model: hidream-l1\n    params: {prompt: '{c}'}\n    matrix: {c: [red]}\n    exclude: [{c: red}]\n")
    assert "exclude drops all 1 combinations" in out


def test_exclude_matches_numbers_by_value() -> None:
    m = build(HEAD + "jobs:\n  - id: a\n    model: hidream-l1\n    params: {prompt: x}\n    matrix: {guidance_scale: [3.0, 5]}\n    exclude: [{guidance_scale: 3}]\n")
    assert [s.params["guidance_scale"] for s in expand(m)] == [5]


def test_include_only_job() -> None:
    m = build(HEAD + "jobs:\n  - id: a\n    model: hidream-l1\n    params: {prompt: '{s}'}\n    include: [{s: x}, {s: y}]\n")
    assert [s.params["prompt"] for s in expand(m)] == ["x", "y"]
    out = messages(HEAD + "jobs:\n  - id: a\n    model: hidream-l1\n    params: {prompt: '{s}'}\n    include: [{s: x}, {t: y}]\n")
    assert "an include entry must give every variable of the job (s): missing s; unknown t" in out


def test_variable_set_parameter_values_checked_at_the_value() -> None:
    out = messages(HEAD + "jobs:\n  - id: a\n    model: hidream-l1\n    params: {prompt: x}\n    matrix:\n      guidance_scale: [1, 25]\n")
    assert out == "m.yaml:8:27: jobs[0].matrix.guidance_scale[1]: guidance_scale: 25 is above the maximum 20"


def test_zip_list_values_located_per_column() -> None:
    out = messages(HEAD + "jobs:\n  - id: a\n    model: hidream-l1\n    params: {prompt: '{t}'}\n    zip:\n      t: [a, b]\n      num_inference_steps: [10, -1]\n")
    assert out.startswith("m.yaml:9:33: jobs[0].zip.num_inference_steps[1]:")


def test_defaults_unknown_to_every_model_is_an_error() -> None:
    out = messages(HEAD + "defaults: {guidanse: 3}\njobs:\n  - {id: a, model: hidream-l1, params: {prompt: x}}\n")
    assert "'guidanse' is not a parameter of any job's model" in out


def test_template_in_defaults_needs_the_variable() -> None:
    text = HEAD + "defaults: {prompt: 'a {thing}'}\njobs:\n  - {id: a, model: hidream-l1, matrix: {thing: [x]}}\n  - {id: b, model: hidream-l1}\n"
    assert "unknown variable {thing} in the template (for job 'b')" in messages(text)


def test_model_id_is_not_a_parameter() -> None:
    assert "model_id is not a parameter" in messages(HEAD + "jobs:\n  - {id: a, model: x-model, params: {model_id: y}}\n")


def test_apikey_spellings_refused_anywhere() -> None:
    for key in ("api_key", "API_KEY", "apikey", "api-key"):
        assert "must not hold an API key" in messages(HEAD + f"jobs:\n  - {{id: a, model: x, params: {{nested: {{{key}: s}}}}}}\n")


def test_required_parameter_with_default_is_filled() -> None:
    spec = next(expand(build(HEAD + "jobs:\n  - {id: a, model: flux-sketch-smudge, params: {prompt: 'Sketch Smudge, x'}}\n")))
    assert spec.params["aspect_ratio"] == "1:1"


def test_templated_value_checked_after_templating() -> None:
    text = HEAD + "jobs:\n  - id: a\n    model: flux-sketch-smudge\n    params: {prompt: 'Sketch Smudge', output_format: '{f}'}\n    matrix: {f: [png, gif]}\n"
    assert "'gif' is not one of 'webp', 'jpg', 'png' after filling the template (for f='gif')" in messages(text)


def test_sources_problems() -> None:
    base = HEAD + "jobs:\n  - id: a\n    model: hidream-l1\n    params: {prompt: '{p}'}\n"
    assert "keys ['q'] differ from the first line's ['p']" in messages(base + "    zip: {file: r.jsonl}\n", {"r.jsonl": '{"p": "x"}\n{"q": "y"}\n'})
    assert "r.jsonl:1:1" in messages(base + "    zip: {file: r.jsonl}\n", {"r.jsonl": "not json\n"})
    assert "has no non-empty line" in messages(base + "    matrix: {p: {file: e.txt}}\n", {"e.txt": "\n  \n"})
    assert "unsupported source type .xlsx" in messages(base + "    matrix: {p: {file: a.xlsx}}\n", {"a.xlsx": "x"})
    assert "a .txt source gives one list" in messages(base + "    zip: {file: a.txt}\n", {"a.txt": "x"})
    assert "column 'bad name' is not a plain variable name" in messages(base + "    zip: {file: a.csv}\n", {"a.csv": "p,bad name\nx,y\n"})


def test_load_manifest_reads_sources_relative_to_the_manifest(tmp_path: Path) -> None:
    sub = tmp_path / "deep"
    sub.mkdir()
    (sub / "who.txt").write_text("a cat\na dog\n", encoding="utf-8")
    (sub / "m.yaml").write_text(HEAD + "jobs:\n  - id: a\n    model: hidream-l1\n    params: {prompt: '{who}'}\n    matrix: {who: {file: who.txt}}\n")
    m = load_manifest("deep/m.yaml")  # run from tmp_path: the source is found beside the manifest
    assert [s.params["prompt"] for s in expand(m)] == ["a cat", "a dog"]
    assert m.path == "deep/m.yaml"


def test_load_manifest_reports_source_lines(tmp_path: Path) -> None:
    (tmp_path / "s.jsonl").write_text('{"p": "x", "num_inference_steps": 10}\n{"p": "y", "num_inference_steps": 1000}\n')
    (tmp_path / "m.yaml").write_text(HEAD + "jobs:\n  - id: a\n    model: hidream-l1\n    params: {prompt: '{p}'}\n    zip: {file: s.jsonl}\n")
    with pytest.raises(ManifestError) as info:
        load_manifest("m.yaml")
    assert [str(d) for d in info.value.diagnostics] == ["s.jsonl:2:1: num_inference_steps: 1000 is above the maximum 100"]


def test_max_generations_exceeded_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(HEAD + "jobs:\n  - {id: a, model: hidream-l1, params: {prompt: x}, repeat: 5}\nlimits: {max_generations: 3}\n")
    m = load_manifest("m.yaml")
    assert "expands to 5 generations, more than max_generations 3" in m.warnings[-1].message


def test_example_manifests_load() -> None:
    counts = {p.name: load_manifest(p).count() for p in sorted(MANIFESTS.glob("*.yaml"))}
    assert counts == {"seed-sweep.yaml": 8, "sketch-portraits.yaml": 10, "towers.yaml": 8}
    assert all(n <= 12 for n in counts.values())


def test_webhook_must_be_a_url() -> None:
    base = HEAD + "jobs:\n  - {id: a, model: hidream-l1, params: {prompt: x, webhook: '%s'}}\n"
    assert "'not a url' is not an http(s) URL" in messages(base % "not a url")
    assert messages(base % "https://example.com/hook?x=1") == ""


def test_two_random_seeds_suggest_repeat() -> None:
    out = messages(HEAD + "jobs:\n  - id: a\n    model: flux-sketch-smudge\n    params: {prompt: 'Sketch Smudge, x'}\n    matrix: {seed: [random, random]}\n")
    assert "the value 'random' appears twice" in out and "use repeat: N" in out


SPEC_EXAMPLE = """\

# yaml-language-server: $schema=../schemas/manifest.schema.json
version: 1
name: sketch-portraits            # [a-z0-9][a-z0-9._-]*, names the batch
defaults:                         # merged into every job's params that its model has;
  aspect_ratio: "1:1"             # a job's own params win
  output_format: webp
jobs:
  - id: portraits                 # unique in the manifest
    model: flux-sketch-smudge
    params:
      prompt: "Sketch Smudge, a portrait of {subject}, {mood} mood"
      num_inference_steps: 28
      guidance: 3
    matrix:                       # cartesian product, first axis slowest
      subject: ["an old fisherman", "a young dancer"]
      mood: [melancholic, joyful]
      seed: [1, 2, 3]             # a variable named like a parameter sets that parameter
    exclude:                      # drop every combination that matches all given keys
      - {subject: a young dancer, mood: melancholic}
    include:                      # add these combinations, after exclude
      - {subject: a lighthouse keeper, mood: stoic, seed: 7}
    repeat: 1                     # generations per combination (distinct jobs)
    filename: "{job}/{subject}-{mood}-s{seed}"   # this job's names; extension from the output
  - id: towers
    model: hidream-l1
    params: {prompt: "a tower at {time}", negative_prompt: "blurry"}
    zip:                          # lists that advance together (equal length)
      time: [dawn, dusk]
      guidance_scale: [5, 7.5]
output:
  filename: "{job}/{index:04d}-{key}"   # default for jobs without their own filename
limits:
  concurrency: 8
  max_generations: 200
pricing:                          # optional, per generation, for plan's cost estimate
  flux-sketch-smudge: 0.025
"""


def test_the_spec_example_is_valid() -> None:
    m = build(SPEC_EXAMPLE)
    assert [j.count for j in m.jobs] == [10, 2]
    towers = [s for s in expand(m) if s.job == "towers"]
    assert [s.params for s in towers] == [
        {"prompt": "a tower at dawn", "negative_prompt": "blurry", "guidance_scale": 5},
        {"prompt": "a tower at dusk", "negative_prompt": "blurry", "guidance_scale": 7.5},
    ]
    assert towers[0].filename == f"towers/0000-{towers[0].key}"
