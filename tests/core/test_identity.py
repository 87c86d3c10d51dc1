"""Identity: canonical JSON, fixed across machines, insensitive to key order, 1 == 1.0."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lumozbatch.core.identity import canonical_json, compute_identity, normalize


def test_known_value() -> None:
    # pinned: the same text, hence the same hash, on every machine and Python version
    params = {"prompt": "caf\u00e9", "guidance": 3.0, "steps": 28, "strength": 0.1}
    text = '{"model":"m","params":{"guidance":3,"prompt":"caf\\u00e9","steps":28,"strength":0.1}}'
    assert canonical_json({"model": "m", "params": normalize(params)}) == text
    assert compute_identity("m", normalize(params), 0, 1) == hashlib.sha256(text.encode()).hexdigest()


def test_repeat_enters_only_above_one() -> None:
    p = {"prompt": "x"}
    assert compute_identity("m", p, 0, 1) != compute_identity("m", p, 0, 2)
    assert compute_identity("m", p, 0, 2) != compute_identity("m", p, 1, 2)
    assert '"repeat":1' in canonical_json({"model": "m", "params": p, "repeat": 1})


def test_bool_is_not_int() -> None:
    assert compute_identity("m", {"a": True}, 0, 1) != compute_identity("m", {"a": 1}, 0, 1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="not a finite number"):
        normalize({"x": [bad]})


def test_huge_integral_float_stays_float() -> None:
    assert isinstance(normalize(1e300), float)
    assert normalize(2.0**53) == 2**53


scalars = st.one_of(st.text(max_size=5), st.integers(-1000, 1000), st.floats(allow_nan=False, allow_infinity=False), st.booleans())


@given(st.dictionaries(st.text(min_size=1, max_size=5), scalars, max_size=6), st.randoms(use_true_random=False))
def test_key_order_does_not_matter(params: dict, rnd) -> None:
    items = list(params.items())
    rnd.shuffle(items)
    assert compute_identity("m", normalize(params), 0, 1) == compute_identity("m", normalize(dict(items)), 0, 1)


@given(st.integers(-(2**53), 2**53))
def test_integral_float_equals_int(n: int) -> None:
    assert compute_identity("m", normalize({"g": float(n)}), 0, 1) == compute_identity("m", normalize({"g": n}), 0, 1)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text()),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12,
)


@given(json_values)
def test_canonical_json_is_sorted_compact_ascii_json(value) -> None:
    import json

    assert canonical_json(value) == json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
