"""Image metadata -> the one-job manifest that regenerates it (``lumozbatch reproduce``). Pure."""

from __future__ import annotations

import re
from typing import Any

import yaml

from lumozbatch.errors import UsageError

__all__ = ["escape_template", "reproduction_manifest"]

_NAME_BAD = re.compile(r"[^a-z0-9._-]+")
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def escape_template(value: Any) -> Any:
    """Strings with ``{``/``}`` doubled: the values are final, not templates to fill again."""
    if isinstance(value, str):
        return value.replace("{", "{{").replace("}", "}}")
    return value


def _one_line(value: Any) -> str:
    return " ".join(str(value).split())


def _name(meta: dict[str, Any]) -> str:
    key = str(meta.get("identity") or "")[:12]
    base = _NAME_BAD.sub("-", f"reproduce-{meta.get('job') or 'image'}-{key}".lower()).strip("-._")
    return base[:100] or "reproduce"


def reproduction_manifest(meta: dict[str, Any], *, source: str, schema: str) -> str:
    """Manifest v1 YAML (with the editor modeline) for one job with ``meta``'s model and params.

    ``webhook`` is left out: it does not change the image, and calling someone's hook
    again is not part of reproducing it.
    """
    model, params = meta.get("model"), meta.get("params")
    if not isinstance(model, str) or not isinstance(params, dict):
        raise UsageError(f"{source}: its lumozbatch metadata lacks the model or its parameters")
    job_id = meta.get("job") if isinstance(meta.get("job"), str) and _JOB_ID.match(meta["job"]) else "image"
    doc = {
        "version": 1,
        "name": _name(meta),
        "jobs": [
            {
                "id": job_id,
                "model": model,
                "params": {k: escape_template(v) for k, v in params.items() if k != "webhook"},
            }
        ],
    }
    header = [
        f"# yaml-language-server: $schema={_one_line(schema)}",
        f"# Regenerates {_one_line(source)}",
    ]
    for label, key in (("identity", "identity"), ("request", "request_id"), ("manifest", "manifest"),
                       ("commit", "git_commit")):
        if meta.get(key) not in (None, ""):
            header.append(f"#   {label}: {_one_line(meta[key])}")
    body = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    return "\n".join(header) + "\n" + body
