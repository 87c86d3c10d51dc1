"""Model parameters as the sandbox sees them: coerced from form strings, validated against the
same model schemas the manifest checker uses, and hashed to count submissions.

Pure: no I/O besides reading the packaged schemas once.
"""

from __future__ import annotations

import hashlib
import json
import math
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from lumozbatch.resources import model_schemas

__all__ = ["coerce_params", "submission_key", "validate_params", "validator_for"]

# Never model parameters: the key travels in the Authorization header only, and the webhook is
# where to call back, not what to generate.
NOT_PARAMS = frozenset({"model_id", "api_key"})


@cache
def validator_for(model_id: str) -> Draft202012Validator | None:
    schema = model_schemas().get(model_id)
    return None if schema is None else Draft202012Validator(schema)


def _types_of(prop: dict[str, Any]) -> list[str]:
    """Every JSON type a property allows, in the schema's order (``oneOf`` branches included)."""
    out: list[str] = []
    t = prop.get("type")
    if isinstance(t, str):
        out.append(t)
    elif isinstance(t, list):
        out.extend(t)
    for branch in prop.get("oneOf", []) + prop.get("anyOf", []):
        out.extend(_types_of(branch))
    return out


def _coerce_one(value: Any, types: list[str]) -> Any:
    """A form value arrives as a string: read it as the first type the schema allows for it."""
    if not isinstance(value, str) or "string" in types and not ({"integer", "number"} & set(types)):
        return value
    text = value.strip()
    if "integer" in types:
        try:
            return int(text, 10)
        except ValueError:
            pass
    if "number" in types:
        try:
            num = float(text)
        except ValueError:
            pass
        else:
            if math.isfinite(num):
                return _canonical_number(num)
    if "boolean" in types and text.lower() in ("true", "false", "1", "0"):
        return text.lower() in ("true", "1")
    return value  # leave it: the validator says what was expected


def _canonical_number(num: float) -> int | float:
    return int(num) if num.is_integer() and abs(num) < 2**53 else num


def coerce_params(model_id: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Model parameters typed per the model's schema ("30" -> 30, "7.5" -> 7.5, '' stays '')."""
    schema = model_schemas().get(model_id, {})
    props = schema.get("properties", {})
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name in NOT_PARAMS:
            continue
        prop = props.get(name)
        out[name] = _coerce_one(value, _types_of(prop)) if prop else value
    return out


_TYPE_WORDS = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
}


def _message(error: Any, field: str) -> str:
    v = error.validator
    if v == "type":
        wanted = error.validator_value
        words = [_TYPE_WORDS.get(t, t) for t in ([wanted] if isinstance(wanted, str) else wanted)]
        return f"The {field} field must be {' or '.join(words)}."
    if v == "minimum":
        return f"The {field} field must be at least {error.validator_value}."
    if v == "maximum":
        return f"The {field} field must not be greater than {error.validator_value}."
    if v == "exclusiveMinimum":
        return f"The {field} field must be greater than {error.validator_value}."
    if v == "exclusiveMaximum":
        return f"The {field} field must be less than {error.validator_value}."
    if v == "enum":
        allowed = ", ".join(json.dumps(x) for x in error.validator_value)
        return f"The selected {field} is invalid (allowed: {allowed})."
    if v == "minLength":
        if error.validator_value <= 1:
            return f"The {field} field is required."
        return f"The {field} field must be at least {error.validator_value} characters."
    if v == "maxLength":
        return f"The {field} field must not be greater than {error.validator_value} characters."
    if v == "oneOf" and field == "seed":
        return "The seed field must be a whole number from 0 to 4294967295, or empty for a random one."
    if v == "format":
        return f"The {field} field must be a valid {error.validator_value}."
    return f"The {field} field is invalid: {error.message}."


def validate_params(model_id: str, params: dict[str, Any]) -> dict[str, list[str]]:
    """Per-field messages (``{"field": ["msg", ...]}``, as the API page shows); empty if valid."""
    validator = validator_for(model_id)
    if validator is None:
        return {}
    details: dict[str, list[str]] = {}
    schema = validator.schema
    props = schema.get("properties", {})
    for name in params:
        if name not in props and schema.get("additionalProperties") is False:
            details.setdefault(name, []).append(
                f"The {name} field is not a parameter of {model_id}."
            )
    for error in sorted(validator.iter_errors(params), key=lambda e: list(e.path)):
        if error.validator == "additionalProperties":
            continue  # reported per field above
        if error.validator == "required":
            missing = [r for r in error.validator_value if r not in params]
            for name in missing:
                details.setdefault(name, []).append(f"The {name} field is required.")
            continue
        field = str(error.path[0]) if error.path else "params"
        details.setdefault(field, []).append(_message(error, field))
    return details


def submission_key(model_id: str, params: dict[str, Any]) -> str:
    """A canonical hash of model_id + params (webhook excluded), the same whether the params
    came as form strings, JSON, or a runner's typed dict: values are coerced per the schema and
    whole numbers written as integers, so ``guidance=3``, ``"3"`` and ``3.0`` count as one."""
    typed = coerce_params(model_id, params)
    typed.pop("webhook", None)
    canon = {
        k: _canonical_number(v) if isinstance(v, float) and math.isfinite(v) else v
        for k, v in typed.items()
    }
    text = json.dumps({"model_id": model_id, "params": canon}, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
