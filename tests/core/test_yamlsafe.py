"""The safe YAML reader: positions, duplicate keys, tags, alias bounds, YAML 1.1 typing."""

from __future__ import annotations


import pytest

from lumozbatch.core.yamlsafe import ALIAS_BUDGET, MAX_DEPTH, parse_yaml, path_text
from lumozbatch.errors import ManifestError


def fail(text: str) -> str:
    with pytest.raises(ManifestError) as info:
        parse_yaml(text, "m.yaml")
    assert len(info.value.diagnostics) == 1
    return str(info.value.diagnostics[0])


def test_values_and_positions() -> None:
    doc = parse_yaml("a: 1\nb:\n  - x\n  - {c: 2.5, d: null}\n", "m.yaml")
    assert doc.data == {"a": 1, "b": ["x", {"c": 2.5, "d": None}]}
    assert doc.mark(("a",)) == (1, 4)
    assert doc.mark(("b", 1, "c")) == (4, 9)
    assert doc.mark(("b", 1, "c"), key=True) == (4, 6)
    assert doc.mark(("b", 1, "zzz")) == (4, 5)  # nearest known ancestor
    assert str(doc.diag(("b", 1, "c"), "bad")) == "m.yaml:4:9: b[1].c: bad"


def test_path_text() -> None:
    assert path_text(("jobs", 0, "params", "seed")) == "jobs[0].params.seed"
    assert path_text(()) == ""


def test_duplicate_key() -> None:
    assert fail("a: 1\nb: 2\na: 3\n") == "m.yaml:3:1: duplicate key 'a' (first at line 1, column 1)"


def test_duplicate_key_in_flow_mapping() -> None:
    assert "duplicate key 'x'" in fail("m: {x: 1, x: 2}\n")


@pytest.mark.parametrize("tag", ["!!python/object:os.system", "!custom", "!!binary", "!!set", "!!timestamp"])
def test_custom_tags_refused(tag: str) -> None:
    assert "is not allowed" in fail(f"a: {tag} x\n")


def test_core_tags_allowed() -> None:
    assert parse_yaml("a: !!str 12\nb: !!int '3'\n", "m.yaml").data == {"a": "12", "b": 3}


# Unbounded, the expansion is 10**9 nodes (minutes and gigabytes): the bound is proved by the
# refusal itself, within a generous timeout rather than a timed assertion (shared machines).
@pytest.mark.timeout(20)
def test_billion_laughs_refused_fast() -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    message = fail("\n".join(lines) + "\n")
    assert f"expands to more than {ALIAS_BUDGET} extra nodes" in message


def test_small_aliases_and_merge_keys_work() -> None:
    doc = parse_yaml("base: &b {x: 1, y: 2}\nuse: {<<: *b, y: 3}\nlist: &l [1]\nagain: *l\n", "m.yaml")
    assert doc.data["use"] == {"y": 3, "x": 1}
    assert doc.data["again"] == [1]
    assert doc.mark(("use", "x")) == (1, 14)  # where the merged value was written


def test_recursive_alias_refused() -> None:
    assert "refers to a node that contains it" in fail("a: &x [1, *x]\n")


def test_undefined_alias() -> None:
    assert "syntax" in fail("a: *nope\n").lower() or "names no anchor" in fail("a: *nope\n")


def test_depth_bounded_without_crash() -> None:
    assert f"nested more than {MAX_DEPTH} levels deep" in fail("[" * 200_000)


def test_one_document_only() -> None:
    assert fail("a: 1\n---\nb: 2\n") == "m.yaml:2:1: a manifest holds one YAML document; found a second one"


def test_empty_document() -> None:
    assert "is empty" in fail("\n# only a comment\n")


def test_syntax_error_has_position() -> None:
    assert fail("a: [1, 2\nb: 3\n").startswith("m.yaml:2:")


def test_control_character() -> None:
    assert fail("a: b\x07\n").startswith("m.yaml:1:5: YAML: ")


def test_complex_key_refused() -> None:
    assert "plain name" in fail("? [a, b]\n: 1\n")


def test_keys_are_text() -> None:
    assert parse_yaml("on: 1\n1: 2\nnull: 3\n", "m.yaml").data == {"on": 1, "1": 2, "null": 3}


def test_yaml11_typing_is_remembered_for_quote_hints() -> None:
    doc = parse_yaml("a: no\nb: 16:9\nc: 'no'\nd: 2024-01-02\ne: 1.5\n", "m.yaml")
    assert doc.data == {"a": False, "b": 969, "c": "no", "d": "2024-01-02", "e": 1.5}
    assert doc.quote_hint(("a",)) == '; YAML read the unquoted no as the boolean false: quote it ("no")'
    assert doc.quote_hint(("b",)) == '; YAML read the unquoted 16:9 as the number 969: quote it ("16:9")'
    assert doc.quote_hint(("c",)) == ""


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab:-[]{},&*!|>'\"#?\n \t<=~%@`\x00\x85\ufeff\u2028é1.")), max_size=60))
def test_any_text_parses_or_gives_a_located_diagnostic(text: str) -> None:
    try:
        parse_yaml(text, "m.yaml")
    except ManifestError as exc:
        assert len(exc.diagnostics) == 1 and exc.diagnostics[0].line >= 1


def test_sequence_items_keep_their_positions_and_plain_texts() -> None:
    doc = parse_yaml("s: [1, x, no, 0x1F, !!int '5', 7.5, &a 3, *a, [null]]\n", "m.yaml")
    assert doc.data == {"s": [1, "x", False, 31, 5, 7.5, 3, 3, [None]]}
    assert [doc.mark(("s", i)) for i in range(9)] == [(1, c) for c in (5, 8, 11, 15, 21, 32, 37, 43, 47)]
    texts = [doc.plain_text(("s", i)) for i in range(9)]
    assert texts == ["1", None, "no", "0x1F", None, "7.5", "3", "3", None]
    assert doc.plain_text(("s", 8, 0)) == "null" and doc.mark(("s", 8, 0)) == (1, 48)
    assert doc.quote_hint(("s", 0)) == '; YAML read the unquoted 1 as the number 1: quote it ("1")'
    assert doc.plain_text(("s", 9)) is None and doc.mark(("s", 9)) == (1, 4)  # no such item
