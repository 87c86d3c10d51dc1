"""A generation's identity: the hex SHA-256 of its model, final parameters and (when repeated) repeat index.

The hashed text is canonical JSON of ``{"model": m, "params": p}`` plus ``"repeat": i`` only
when the entry's ``repeat`` is above 1 (so ``repeat: 1`` and no ``repeat`` are the same generation):

- keys sorted, no whitespace, ``ensure_ascii`` (the bytes do not depend on the platform);
- numbers: an integral float is written as an integer (``guidance: 3`` and ``guidance: 3.0``
  are one generation; ``normalize`` does the same to the parameters actually sent, so what is hashed
  is what is sent). Other floats use Python's shortest round-trip ``repr``, the same on every
  IEEE-754 machine and Python 3 version. NaN and infinities are refused (not JSON);
- booleans stay booleans (``true`` is not ``1``).

Because only the final parameters are hashed, reordering keys, axes or values in a manifest,
or moving a value between ``defaults``, ``params`` and a variable, changes no identity.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from lumozbatch.core.jobspec import RANDOM_SEED

__all__ = ["canonical_json", "compute_identity", "final_value", "normalize"]


_MAX_EXACT = 2**53  # beyond this an integral float is not an exact integer anywhere


def normalize(value: Any) -> Any:
    """``value`` with integral floats as ints, recursively; raises ValueError for NaN/inf."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number")
        if value.is_integer() and abs(value) <= _MAX_EXACT:
            return int(value)
        return value
    if isinstance(value, dict):
        return {str(k): normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    raise ValueError(f"cannot use a {type(value).__name__} as a parameter value")


#: made once: ``json.dumps`` with options builds an encoder per call (a tenth of a grid's expansion)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def canonical_json(value: Any) -> str:
    """Canonical text of an already ``normalize``d value."""
    return _CANONICAL.encode(value)


def compute_identity(model: str, params: dict[str, Any], repeat_index: int, repeats: int) -> str:
    """Hex SHA-256 naming one generation; ``params`` must already be ``normalize``d."""
    payload: dict[str, Any] = {"model": model, "params": params}
    if repeats > 1:
        payload["repeat"] = repeat_index
    return hashlib.sha256(canonical_json(payload).encode("ascii")).hexdigest()


def final_value(name: str, value: Any) -> Any:
    """What is hashed and sent: seed '' / 'random' -> RANDOM_SEED, integral floats -> int."""
    if name == "seed" and value in ("", RANDOM_SEED):
        return RANDOM_SEED
    return normalize(value)
