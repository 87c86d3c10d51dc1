"""Checking a value against a known model's parameter schema, and saying what is wrong in
one plain sentence (jsonschema's own messages are written for programmers)."""

from __future__ import annotations

import difflib
import math
import urllib.parse
from collections.abc import Iterable
from functools import cache
from typing import Any

import jsonschema

from lumozbatch.resources import model_schemas  # cached: every known model's schema, by id

__all__ = [
    "always_valid_text",
    "explain",
    "expects_string",
    "model_schemas",
    "options",
    "property_validator",
    "show",
    "suggest",
    "type_name",
    "value_problem",
]

_STRINGISH = frozenset({"type", "minLength", "maxLength", "enum", "description", "default", "title", "examples"})


@cache
def property_validator(model: str, name: str) -> jsonschema.protocols.Validator | None:
    schema = model_schemas().get(model, {}).get("properties", {}).get(name)
    return None if schema is None else jsonschema.Draft202012Validator(schema)


def always_valid_text(model: str, name: str, min_chars: int) -> bool:
    """Is every string of at least ``min_chars`` characters valid for this parameter?
    (A template's literal text alone can settle it, sparing a check per generation.)"""
    validator = property_validator(model, name)
    if validator is None:
        return True
    schema = validator.schema
    return (
        schema.get("type") == "string"
        and set(schema) <= _STRINGISH
        and "enum" not in schema
        and "maxLength" not in schema
        and schema.get("minLength", 0) <= min_chars
    )


def value_problem(model: str, name: str, value: Any) -> str | None:
    """Why ``value`` is not valid for parameter ``name`` of a known model (None if it is)."""
    validator = property_validator(model, name)
    if validator is None:
        return None
    schema = validator.schema
    if isinstance(value, str) and set(schema) <= _STRINGISH and schema.get("type") == "string":
        # the common case (templated prompts), checked without jsonschema's per-call overhead
        if len(value) < schema.get("minLength", 0):
            return "is empty" if not value else f"is shorter than {schema['minLength']} characters"
        if len(value) > schema.get("maxLength", math.inf):
            return f"is longer than {schema['maxLength']} characters"
        if "enum" in schema and value not in schema["enum"]:
            return f"{value!r} is not one of {options(schema['enum'])}"
        return None
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is not None:
        return explain(error, value)
    if schema.get("format") == "uri" and isinstance(value, str):
        # jsonschema leaves formats unchecked without extra packages; a webhook must be a URL
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return f"{value!r} is not an http(s) URL"
    return None


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
