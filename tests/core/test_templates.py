"""Templates: plain names, format specs, escapes, and what is refused."""

from __future__ import annotations

import pytest

from lumozbatch.core.templates import TemplateError, parse_template, render_value


def test_render_and_names() -> None:
    t = parse_template("a {x} b {n:03d} {{literal}} {x}")
    assert t.names == ("x", "n", "x")
    assert t.render({"x": "X", "n": 7}) == "a X b 007 {literal} X"
    assert t.literal == "a  b  {literal} "
    assert not t.is_constant
    assert parse_template("no fields {{}}").is_constant


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("{a.b}", "is not a plain variable name"),
        ("{a[0]}", "is not a plain variable name"),
        ("{0}", "is not a plain variable name"),
        ("{}", "empty {}"),
        ("{a!r}", "conversions are not supported"),
        ("{a:{w}}", "nested fields"),
        ("{a", "malformed template"),
        ("a}", "malformed template"),
        ("{a b}", "is not a plain variable name"),
    ],
)
def test_refused(source: str, fragment: str) -> None:
    with pytest.raises(TemplateError, match=fragment.replace("{", r"\{").replace("}", r"\}").replace("[", r"\[")):
        parse_template(source)


def test_render_value_yaml_like() -> None:
    assert render_value(True, "") == "true"
    assert render_value(None, "") == "null"
    assert render_value(3.0, "") == "3"
    assert render_value(2.5, "") == "2.5"
    assert render_value(3.0, ".2f") == "3.00"


def test_format_spec_mismatch() -> None:
    with pytest.raises(TemplateError, match=r"\{n:04d\} cannot format 'x'"):
        parse_template("{n:04d}").render({"n": "x"})


def test_every_bad_field_is_reported_and_the_good_ones_kept() -> None:
    with pytest.raises(TemplateError) as caught:
        parse_template("{a.b} and {} and {ok} and {c!r}")
    err = caught.value
    assert [p.split(" ")[0] for p in err.problems] == ["{a.b}", "empty", "{c!r}:"]
    assert err.partial is not None and err.partial.names == ("ok",)
    assert str(err) == "; ".join(err.problems)


def test_a_malformed_template_has_no_partial() -> None:
    with pytest.raises(TemplateError) as caught:
        parse_template("{a")
    assert caught.value.partial is None and len(caught.value.problems) == 1
