"""Where the JSON Schemas live: inside the installed package, or at the top of a source checkout.

The shell's side of the schemas: read once per process, and handed to the pure core as one
``SchemaCatalogue`` (``schema_catalogue()``)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import Any

from lumozbatch.core.catalogue import MANIFEST_SCHEMA_FILE, SchemaCatalogue


@cache
def schema_dir() -> Traversable:
    """The folder holding ``manifest.schema.json`` and ``models/*.json``."""
    # A source checkout (editable install) reads the live top-level folder, not a copy.
    checkout = Path(__file__).resolve().parent.parent / "schemas"
    if checkout.is_dir() and (checkout.parent / "pyproject.toml").is_file():
        return checkout
    packaged = resources.files("lumozbatch") / "schemas"
    if packaged.is_dir():
        return packaged
    raise FileNotFoundError("lumozbatch's schemas are missing from this installation")


@cache
def manifest_schema() -> dict[str, Any]:
    return json.loads((schema_dir() / MANIFEST_SCHEMA_FILE).read_text(encoding="utf-8"))


@cache
def model_schemas() -> dict[str, dict[str, Any]]:
    """Every known model's parameter schema, by model id."""
    models = schema_dir() / "models"
    out: dict[str, dict[str, Any]] = {}
    for entry in sorted(models.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            out[entry.name[: -len(".json")]] = json.loads(entry.read_text(encoding="utf-8"))
    return out


@cache
def schema_catalogue() -> SchemaCatalogue:
    """The shipped schemas, as the catalogue the core checks manifests against."""
    return SchemaCatalogue(manifest=manifest_schema(), models=model_schemas())
