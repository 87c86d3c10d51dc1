"""Collecting diagnostics while a manifest is built, and their order."""

from __future__ import annotations

from lumozbatch.core.diagnostics import Diagnostics, ordered
from lumozbatch.core.yamlsafe import parse_yaml
from lumozbatch.errors import Diagnostic


def test_located_in_the_document() -> None:
    diag = Diagnostics(parse_yaml("a:\n  b: 1\n", "m.yaml"))
    diag.error(("a", "b"), "value")
    diag.error(("a", "b"), "key", key=True)
    diag.warn(("a",), "warned")
    diag.error_at(diag.where(("a", "b")), "at")
    assert [str(d) for d in diag.errors] == ["m.yaml:2:6: a.b: value", "m.yaml:2:3: a.b: key", "m.yaml:2:6: a.b: at"]
    assert [str(d) for d in diag.warnings] == ["m.yaml:2:3: warning: a: warned"]
    assert diag.where(("a", "b")).doc_path == ("a", "b")


def test_ordered_without_repeats_errors_first() -> None:
    w = Diagnostic("m.yaml", 2, 1, "x", "w", "warning")
    e = Diagnostic("m.yaml", 2, 1, "x", "e")
    first = Diagnostic("a.txt", 9, 1, "", "f")
    assert ordered([w, e, e, first]) == [first, e, w]
