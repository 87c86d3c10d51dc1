"""Output filenames: the name each generation is written under, and what makes a name unsafe.

A job's template (or ``output.filename``) is filled with the variables and ``{job}``,
``{model}``, ``{index}``, ``{repeat}``, ``{key}``; else a readable default is used:
``<job>/<index>-<values of the variables that vary, slugified>`` (``-r<repeat>`` added when
``repeat > 1``; just ``<job>`` for a job of one generation).
"""

from __future__ import annotations

import functools
import re
from typing import Any

from lumozbatch.core.layout import STATE_DIR
from lumozbatch.core.manifest import JobDef
from lumozbatch.core.templates import Template, render_value

__all__ = ["filename_problem", "output_name", "template_problem"]

_MAX_SEGMENT_BYTES = 200  # leaves room for the extension under the usual 255-byte limit
_SLUG_CHARS = 32
_NOT_WORD = re.compile(r"[^\w]+")
_BAD_CHAR = re.compile(r"[\x00-\x1f\x7f\\]")
_DRIVE = re.compile(r"^[A-Za-z]:")


@functools.lru_cache(maxsize=65536)
def _slug_cached(kind: type, value: Any) -> str:
    text = _NOT_WORD.sub("-", render_value(value, "").lower()).strip("-_")
    return text[:_SLUG_CHARS].strip("-_") or "x"


def _slug(value: Any) -> str:
    return _slug_cached(type(value), value)  # the type keeps 1, 1.0 and true apart


def output_name(jobdef: JobDef, index: int, repeat: int, variables: dict[str, Any], identity: str) -> str:
    """The output path of one generation, relative to the output folder, without extension.

    Raises ``TemplateError`` when a value does not fit the template's format spec."""
    if jobdef.filename is not None:
        values = dict(variables)
        values.update(job=jobdef.id, model=jobdef.model, index=index, repeat=repeat, key=identity[:12])
        return jobdef.filename.render(values)
    if jobdef.count == 1:
        return jobdef.id
    width = max(4, len(str(jobdef.combinations - 1)))
    name = f"{jobdef.id}/{index:0{width}d}"
    slugs = [_slug(variables[v]) for v in jobdef.varying]
    if slugs:
        name += "-" + "-".join(slugs)
    if jobdef.repeat > 1:
        name += f"-r{repeat}"
    return name


def filename_problem(name: str) -> str | None:
    """Why ``name`` cannot be an output path inside the output folder (None when it can)."""
    if not name:
        return "the filename is empty"
    if name.startswith("/") or _DRIVE.match(name):
        return f"{name!r} is absolute; filenames are relative to the output folder"
    if _BAD_CHAR.search(name):
        return f"{name!r} holds a backslash or a control character"
    segments = name.split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            return f"{name!r} has an empty, . or .. segment; it must stay inside the output folder"
        if len(segment.encode("utf-8")) > _MAX_SEGMENT_BYTES:
            return f"a part of {name[:40]!r}... is longer than {_MAX_SEGMENT_BYTES} bytes"
    if segments[0] == STATE_DIR:
        return f"{name!r} would write into the ledger folder {STATE_DIR}/"
    return None


def template_problem(template: Template) -> str | None:
    """What is wrong with a filename template whatever its values (None when nothing is)."""
    literal = template.source
    if literal.startswith(("/", "~")) or _DRIVE.match(literal):
        return "a filename must be relative to the output folder, not absolute"
    if "\\" in template.literal:
        return "use / to separate folders in a filename, not \\"
    if any(seg in ("..", ".") for seg in literal.split("/")):
        return "a filename may not contain . or .. segments (it must stay inside the output folder)"
    return None
