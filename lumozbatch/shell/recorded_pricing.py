"""The prices of a batch recorded in a ledger, read from its manifest when that is readable:
``status`` (and a resumed run's summary) turn the batch's spent into a cost with them.

Only the manifest's ``pricing`` mapping is read (a cheap parse, no validation of the grid):
a manifest that is gone, unreadable or without prices gives None, and the count is shown
alone. The prices are the manifest's current ones, as ``plan`` would use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lumozbatch.core.yamlsafe import parse_yaml
from lumozbatch.errors import LumozbatchError
from lumozbatch.manifest_io import MAX_MANIFEST_BYTES, read_text

__all__ = ["recorded_pricing"]


def recorded_pricing(batch: Mapping[str, Any] | None) -> dict[str, float] | None:
    """The ``pricing`` of the manifest the ``batch`` record names, or None."""
    manifest = (batch or {}).get("manifest")
    if not isinstance(manifest, str) or not manifest:
        return None
    try:
        doc = parse_yaml(read_text(Path(manifest), MAX_MANIFEST_BYTES), manifest)
    except (OSError, ValueError, LumozbatchError):
        return None
    pricing = doc.data.get("pricing") if isinstance(doc.data, dict) else None
    if not isinstance(pricing, dict):
        return None
    prices = {
        model: float(price)
        for model, price in pricing.items()
        if isinstance(model, str) and isinstance(price, (int, float)) and not isinstance(price, bool) and price >= 0
    }
    return prices or None
