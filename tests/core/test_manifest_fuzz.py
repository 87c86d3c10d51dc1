"""Whatever a manifest holds, validation answers with diagnostics, never with a crash."""

from __future__ import annotations

import copy
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from lumozbatch.core.grid import expand
from lumozbatch.errors import ManifestError
from tests.core.manifest_helpers import build

VALID: dict[str, Any] = {
    "version": 1,
    "name": "fuzz",
    "defaults": {"aspect_ratio": "1:1", "negative_prompt": "blurry"},
    "jobs": [
        {
            "id": "a",
            "model": "flux-sketch-smudge",
            "params": {"prompt": "Sketch Smudge, {subject}", "guidance": 3},
            "matrix": {"subject": ["x", "y"], "seed": [1, 2]},
            "exclude": [{"subject": "y", "seed": 2}],
            "include": [{"subject": "z", "seed": 9}],
            "repeat": 2,
            "filename": "{job}/{subject}-{seed}-{repeat}",
        },
        {
            "id": "b",
            "model": "hidream-l1",
            "params": {"prompt": "a tower at {time}"},
            "zip": {"time": ["dawn", "dusk"], "guidance_scale": [5, 7.5]},
        },
    ],
    "output": {"filename": "{job}/{index:04d}-{key}"},
    "limits": {"concurrency": 2, "max_generations": 100},
    "pricing": {"hidream-l1": 0.03},
}

junk = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-3, 300),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(["", "{", "}", "{x}", "{job}", "../x", "/abs", "a/b", "{seed:04d}", "random", "id", "file", "prompt"]),
        st.text(max_size=8),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["file", "prompt", "seed", "x", "id", "model", "subject", "time", "api_key"]), inner, max_size=3),
    ),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, prefix + (i,))
    return out


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_manifests_never_crash(data: st.DataObject) -> None:
    doc = copy.deepcopy(VALID)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(junk)
    text = yaml.safe_dump(doc, sort_keys=False)
    try:
        manifest = build(text)
    except ManifestError as exc:
        assert exc.diagnostics and all(d.line >= 1 and d.col >= 1 for d in exc.diagnostics)
        return
    for spec in expand(manifest):
        assert spec.identity and spec.filename
