"""What a valid Manifest holds (the checks live beside their modules: test_build,
test_jobbuild, test_axisbuild, test_gridcheck, test_sources, test_paramschema)."""

from __future__ import annotations

from lumozbatch.core.grid import expand
from tests.core.manifest_helpers import HEAD, build


def test_manifest_fields() -> None:
    m = build(
        HEAD
        + "description: d\njobs:\n  - {id: a, model: hidream-l1, params: {prompt: x}, repeat: 2}\n"
        + "limits: {concurrency: 3, max_generations: 10}\npricing: {hidream-l1: 0.5}\noutput: {filename: 'o/{key}'}\n"
    )
    assert (m.name, m.concurrency, m.max_generations, m.pricing, m.count()) == ("t", 3, 10, {"hidream-l1": 0.5}, 2)
    assert m.output_filename == "o/{key}" and m.description == "d"
    assert [j.id for j in m.jobs] == ["a"]


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
