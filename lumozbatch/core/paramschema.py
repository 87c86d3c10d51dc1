"""The model-schema oracle: is a value valid for a known model's parameter, and if not, why,
in one plain sentence. The schemas come from the ``SchemaCatalogue`` the caller passes."""

from __future__ import annotations

import math
import urllib.parse
from typing import Any

import jsonschema

from lumozbatch.core.catalogue import SchemaCatalogue
from lumozbatch.core.wording import explain, options

__all__ = ["always_valid_text", "value_problem"]

_STRINGISH = frozenset({"type", "minLength", "maxLength", "enum", "description", "default", "title", "examples"})


def always_valid_text(catalogue: SchemaCatalogue, model: str, name: str, min_chars: int) -> bool:
    """Is every string of at least ``min_chars`` characters valid for this parameter?
    (A template's literal text alone can settle it, sparing a check per generation.)"""
    validator = catalogue.property_validator(model, name)
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


def value_problem(catalogue: SchemaCatalogue, model: str, name: str, value: Any) -> str | None:
    """Why ``value`` is not valid for parameter ``name`` of a known model (None if it is)."""
    validator = catalogue.property_validator(model, name)
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
