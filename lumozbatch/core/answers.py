"""Reading the scalar fields of the provider's answers (``/check``, ``run``, a webhook's
body), which the seed pages show sometimes as numbers and sometimes as strings. Pure."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["as_progress", "as_request_id"]

_MAX_ID = 2**63 - 1  # request ids are 64-bit; anything beyond is not one
_DIGITS = re.compile(r"[0-9]{1,19}")


def as_request_id(value: Any) -> int | None:
    """A request id given as a whole number or its digits, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= _MAX_ID else None
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        number = int(value.strip())
        return number if number <= _MAX_ID else None
    return None


def as_progress(value: Any) -> float | None:
    """A progress given as a number, or as text such as ``"42"`` or ``"42%"``, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().rstrip("%"))
        except ValueError:
            return None
    return None
