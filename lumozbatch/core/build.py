"""A parsed YAML document -> a validated ``Manifest`` (or every problem with it at once).

Pure: the caller (``lumozbatch.manifest_io``) reads the manifest and its ``file:`` sources and
passes their text in. Checks, in order, all collected before raising:

1. no ``api_key`` anywhere (the key comes only from ``LUMOZ_API_KEY``);
2. the manifest JSON Schema (``schemas/manifest.schema.json``);
3. per job: model known (else a warning), parameters known to the model, defaults merged,
   variables (matrix, zip, include) well formed and each either a model parameter or used by
   a template, templates naming only variables, zip lengths equal, exclude/include keys,
   values of variable-set parameters valid for the model, required parameters present;
4. unique job ids, ``limits`` and ``pricing`` sanity.

What needs the expanded grid (templated values, filenames, duplicate identities) is checked by
``lumozbatch.core.gridcheck.check``. The schemas come in as a ``SchemaCatalogue``.

Semantics decided here (SPEC section 3 is silent on them):
- ``zip`` is one more axis of the product, after the matrix axes (so it varies fastest);
- each ``include`` entry must give exactly the job's variables (a job with only ``include``
  takes its variables from the first entry); a variable may not also be set in ``params``;
- a required model parameter that has a schema default and no value gets that default (the
  API requires it; e.g. flux-sketch-smudge ``aspect_ratio: "1:1"``); optional ones are left to
  the provider;
- for a model without a schema, a variable is a parameter unless a string parameter's
  template uses it;
- CSV cells are text, except in a column that sets a numeric parameter of a known model,
  where ``30`` and ``7.5`` are read as numbers (``.jsonl`` sources keep their JSON types);
- ``seed: random`` and ``seed: ''`` become ``RANDOM_SEED``; so does a missing ``seed`` of a
  known model that has one (the runner pins a concrete seed, so every output is
  reproducible); integral floats become ints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jsonschema

from lumozbatch.core.axisbuild import is_file_source
from lumozbatch.core.catalogue import SchemaCatalogue
from lumozbatch.core.diagnostics import Diagnostics, ordered
from lumozbatch.core.jobbuild import FORBIDDEN_KEYS, ManifestContext, build_jobdef
from lumozbatch.core.manifest import JobDef, Manifest, SourceText
from lumozbatch.core.wording import explain, expects_string, suggest, type_name
from lumozbatch.core.yamlsafe import Document, PathKey
from lumozbatch.errors import Diagnostic, ManifestError

__all__ = ["build_partial", "source_refs"]


def source_refs(doc: Document) -> list[tuple[PathKey, str]]:
    """Every ``{file: ...}`` source the manifest names: (where in the document, relative path)."""
    out: list[tuple[PathKey, str]] = []
    jobs = doc.data.get("jobs") if isinstance(doc.data, dict) else None
    if not isinstance(jobs, list):
        return out
    for i, entry in enumerate(jobs):
        if not isinstance(entry, dict):
            continue
        for kind in ("matrix", "zip"):
            block = entry.get(kind)
            if not isinstance(block, dict):
                continue
            if kind == "zip" and is_file_source(block):
                out.append((("jobs", i, "zip", "file"), block["file"]))
                continue
            for name, axis in block.items():
                if is_file_source(axis):
                    out.append((("jobs", i, kind, name, "file"), axis["file"]))
    return out


def build_partial(
    doc: Document, path: str, sources: Mapping[str, SourceText], catalogue: SchemaCatalogue
) -> tuple[Manifest | None, list[Diagnostic]]:
    """Build what can be built: a Manifest of the jobs that passed (None when the document's
    structure is broken), plus every diagnostic (errors and warnings), so that the grid checks
    can still run on the good jobs and report their problems in the same pass."""
    try:
        return _build(doc, path, sources, catalogue)
    except ManifestError as exc:
        return None, exc.diagnostics


def _build(
    doc: Document, path: str, sources: Mapping[str, SourceText], catalogue: SchemaCatalogue
) -> tuple[Manifest, list[Diagnostic]]:
    diag = Diagnostics(doc)
    if not isinstance(doc.data, dict):
        diag.error((), f"a manifest is a mapping (version, name, jobs...), not {type_name(doc.data)}")
        raise ManifestError(diag.errors)
    _forbid_api_keys(diag, doc.data, ())
    bad_entries = _schema_check(diag, doc, catalogue.manifest_validator())
    data = doc.data
    # a broken defaults/output/jobs block makes every job's checks noise: stop at the schema
    structural = any(
        not d.path or d.path == "jobs" or d.path.startswith(("defaults", "output")) for d in diag.errors
    )
    if structural or not isinstance(data.get("jobs"), list):
        raise ManifestError(ordered(diag.errors + diag.warnings))
    defaults: dict[str, Any] = data.get("defaults") or {}
    output_filename = (data.get("output") or {}).get("filename")
    ctx = ManifestContext(diag, catalogue, sources, defaults, output_filename)
    jobdefs = _build_jobdefs(ctx, data["jobs"], bad_entries)
    limits = data.get("limits") or {}
    raw_pricing = data.get("pricing")
    entries = [j for j in data["jobs"] if isinstance(j, dict) and isinstance(j.get("model"), str)]
    pricing = _check_pricing(diag, raw_pricing if isinstance(raw_pricing, dict) else {}, [j["model"] for j in entries])
    _check_defaults_used(diag, catalogue, defaults, entries)
    manifest = Manifest(
        path=path,
        name=data["name"] if isinstance(data.get("name"), str) else "",
        jobs=jobdefs,
        concurrency=limits.get("concurrency") if isinstance(limits, dict) else None,
        max_generations=limits.get("max_generations") if isinstance(limits, dict) else None,
        pricing=pricing,
        warnings=ordered(diag.warnings),
        output_filename=output_filename,
        description=data.get("description"),
    )
    return manifest, ordered(diag.errors + diag.warnings)


def _build_jobdefs(ctx: ManifestContext, entries: list[Any], bad_entries: set[int]) -> list[JobDef]:
    """The JobDefs of the entries the schema passed, each id once."""
    jobdefs: list[JobDef] = []
    seen_ids: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if i in bad_entries:
            continue
        duplicate = entry["id"] in seen_ids
        if duplicate:
            ctx.diag.error(("jobs", i, "id"), f"duplicate job id {entry['id']!r} (also jobs[{seen_ids[entry['id']]}])")
        else:
            seen_ids[entry["id"]] = i
        # a duplicate is still built, for its own errors, but never planned
        jobdef = build_jobdef(ctx, i, entry)
        if jobdef is not None and not duplicate:
            jobdefs.append(jobdef)
    return jobdefs


def _forbid_api_keys(diag: Diagnostics, value: Any, path: PathKey) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if FORBIDDEN_KEYS.match(k):
                diag.error(
                    path + (k,),
                    "a manifest must not hold an API key (it would end up in git): "
                    "remove it and set LUMOZ_API_KEY in the environment",
                    key=True,
                )
            else:
                _forbid_api_keys(diag, v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _forbid_api_keys(diag, v, path + (i,))


def _schema_check(diag: Diagnostics, doc: Document, validator: jsonschema.protocols.Validator) -> set[int]:
    """Schema errors -> diagnostics; returns the indexes of the entries that had any."""
    bad_entries: set[int] = set()
    for error in validator.iter_errors(doc.data):
        path = tuple(error.absolute_path)
        if len(path) >= 2 and path[0] == "jobs" and isinstance(path[1], int):
            bad_entries.add(path[1])
        if error.validator == "additionalProperties":
            extra = [k for k in error.instance if k not in error.schema.get("properties", {})]
            for k in extra:
                if FORBIDDEN_KEYS.match(k):
                    continue  # already reported, with a better message
                known = sorted(error.schema.get("properties", {}))
                diag.error(path + (k,), f"unknown key {k!r}{suggest(k, known)}; expected one of {', '.join(known)}", key=True)
            continue
        if error.validator == "propertyNames":
            key = error.instance
            diag.error(path + (key,), f"{key!r} is not a valid name here ({_name_rule(error)})", key=True)
            continue
        if error.validator == "required":
            missing = [k for k in error.validator_value if k not in error.instance]
            for k in missing:
                diag.error(path, f"missing required key {k!r}")
            continue
        if path == ("version",) and error.validator == "const":
            diag.error(path, f"unsupported manifest version {error.instance!r}; this lumozbatch reads version 1")
            continue
        message = explain(error, error.instance)
        if expects_string(error):
            message += doc.quote_hint(path)
        diag.error(path, message)
    return bad_entries


def _name_rule(error: jsonschema.ValidationError) -> str:
    for sub in [error, *error.context]:
        if sub.validator == "pattern":
            return f"it must match {sub.validator_value}"
    return "letters, digits and _, not starting with a digit"


def _check_pricing(diag: Diagnostics, pricing: dict[str, Any], models: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for model, price in pricing.items():
        if isinstance(price, bool) or not isinstance(price, (int, float)):
            continue  # the schema said so already
        if not math.isfinite(price):
            diag.error(("pricing", model), f"price must be a finite number, got {price!r}")
            continue
        if model not in models:
            diag.warn(("pricing", model), f"no job uses model {model!r}{suggest(model, models)}", key=True)
        out[model] = float(price)
    return out


def _check_defaults_used(
    diag: Diagnostics, catalogue: SchemaCatalogue, defaults: dict[str, Any], entries: list[dict[str, Any]]
) -> None:
    schemas = catalogue.models
    if any(e.get("model") not in schemas for e in entries):
        return  # a model without a schema takes every default
    known = set().union(*(schemas[e["model"]].get("properties", {}) for e in entries)) if entries else set()
    for name in defaults:
        if name not in known:
            diag.error(
                ("defaults", name),
                f"{name!r} is not a parameter of any job's model{suggest(name, known)}",
                key=True,
            )
