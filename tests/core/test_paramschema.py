"""The model-schema oracle: a value against a known model's parameter schema."""

from __future__ import annotations

from lumozbatch.core.catalogue import SchemaCatalogue
from lumozbatch.core.paramschema import always_valid_text, value_problem
from tests.core.manifest_helpers import HEAD, messages

_CATALOGUE = SchemaCatalogue(
    manifest={},
    models={
        "m": {
            "properties": {
                "prompt": {"type": "string", "minLength": 1},
                "short": {"type": "string", "maxLength": 3},
                "steps": {"type": "integer", "minimum": 1, "maximum": 50},
                "fmt": {"type": "string", "enum": ["png", "webp"]},
                "hook": {"type": "string", "format": "uri"},
            }
        }
    },
)


def test_value_problem_says_what_is_wrong() -> None:
    assert value_problem(_CATALOGUE, "m", "prompt", "") == "is empty"
    assert value_problem(_CATALOGUE, "m", "short", "abcd") == "is longer than 3 characters"
    assert value_problem(_CATALOGUE, "m", "steps", 51) == "51 is above the maximum 50"
    assert value_problem(_CATALOGUE, "m", "steps", "5") == "expected an integer, got the string '5'"
    assert value_problem(_CATALOGUE, "m", "fmt", "gif") == "'gif' is not one of 'png', 'webp'"
    assert value_problem(_CATALOGUE, "m", "hook", "ftp://x") == "'ftp://x' is not an http(s) URL"
    assert value_problem(_CATALOGUE, "m", "steps", 5) is None


def test_no_schema_no_problem() -> None:
    assert value_problem(_CATALOGUE, "other", "steps", 10**9) is None
    assert value_problem(_CATALOGUE, "m", "unknown", object()) is None


def test_always_valid_text() -> None:
    assert always_valid_text(_CATALOGUE, "m", "prompt", 1)
    assert not always_valid_text(_CATALOGUE, "m", "prompt", 0)  # an empty fill could be empty
    assert not always_valid_text(_CATALOGUE, "m", "short", 1)
    assert not always_valid_text(_CATALOGUE, "m", "fmt", 5)
    assert always_valid_text(_CATALOGUE, "other", "x", 0)


def test_webhook_must_be_a_url() -> None:
    base = HEAD + "jobs:\n  - {id: a, model: hidream-l1, params: {prompt: x, webhook: '%s'}}\n"
    assert "'not a url' is not an http(s) URL" in messages(base % "not a url")
    assert messages(base % "https://example.com/hook?x=1") == ""
