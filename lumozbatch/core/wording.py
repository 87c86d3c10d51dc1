"""The words of a diagnostic: a value as YAML shows it, a jsonschema error as one plain
sentence (jsonschema's own messages are written for programmers), a "did you mean"."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

import jsonschema

__all__ = ["count", "explain", "expects_string", "options", "show", "suggest", "type_name"]


def show(value: Any) -> str:
    """A value as YAML would show it (true, not True)."""
    return str(value).lower() if isinstance(value, bool) else repr(value)


def options(values: Iterable[Any]) -> str:
    return ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values)


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    return "a list" if isinstance(value, list) else "a mapping"


def explain(error: jsonschema.ValidationError, value: Any) -> str:
    """A jsonschema error as one sentence about ``value``."""
    kind, expected = error.validator, error.validator_value
    value = error.instance
    if kind == "type":
        wanted = " or ".join(expected) if isinstance(expected, list) else expected
        article = "an" if str(wanted)[0] in "aeiou" else "a"
        return f"expected {article} {wanted}, got {type_name(value)}"
    if kind == "enum":
        return f"{type_name(value)} is not one of {options(expected)}"
    if kind == "const":
        return f"expected {expected!r}, got {type_name(value)}"
    if kind in ("minimum", "exclusiveMinimum"):
        return f"{value!r} is below the minimum {expected}"
    if kind in ("maximum", "exclusiveMaximum"):
        return f"{value!r} is above the maximum {expected}"
    if kind == "minLength":
        return "must not be empty" if expected == 1 else f"must have at least {expected} characters"
    if kind == "maxLength":
        return f"must have at most {expected} characters"
    if kind == "pattern":
        return f"{value!r} does not match {expected}"
    if kind == "minItems":
        return "must not be empty" if expected == 1 else f"needs at least {expected} items"
    if kind == "minProperties":
        return "must not be empty"
    if kind == "required":
        missing = [k for k in expected if isinstance(value, dict) and k not in value]
        return f"missing required key {missing[0]!r}" if missing else "missing a required key"
    if kind in ("oneOf", "anyOf") and error.context:
        # the branch the value got furthest into explains it best (a list that is empty, not
        # "expected an object" from the branch for {file: ...})
        best = min(error.context, key=lambda e: (-len(e.relative_path), e.validator == "type"))
        return explain(best, value)
    return error.message


def expects_string(error: jsonschema.ValidationError) -> bool:
    for sub in [error, *error.context]:
        expected = sub.validator_value
        if sub.validator == "type" and (expected == "string" or (isinstance(expected, list) and "string" in expected)):
            return True
    return False


def suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 job``, ``2 jobs``, ``0 jobs``: the one place a number meets its noun."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"
