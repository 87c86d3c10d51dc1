"""Output filenames: the name each generation is written under, and what makes a name unsafe.

A job's template (or ``output.filename``) is filled with the variables and ``{job}``,
``{model}``, ``{index}``, ``{repeat}``, ``{key}``; else a readable default is used:
``<job>/<index>-<values of the variables that vary, slugified>`` (``-r<repeat>`` added when
``repeat > 1``; just ``<job>`` for a job of one generation).

A name must be portable: one that Windows or macOS cannot store (a reserved device name such
as ``CON`` or ``nul.txt``, one of ``<>:"|?*``, a part ending in a dot or a space) is refused at
validation rather than rewritten, so the file is where the manifest says on every system.
A variable's value may not hold ``/``: folders come from the template, not from the data.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from lumozbatch.core.layout import STATE_DIR
from lumozbatch.core.manifest import JobDef
from lumozbatch.core.templates import Template, render_value

__all__ = ["filename_problem", "filename_value_problem", "output_name", "template_problem"]

_MAX_SEGMENT_BYTES = 200  # leaves room for the extension under the usual 255-byte limit
_SLUG_CHARS = 32
_NOT_WORD = re.compile(r"[^\w]+")
_BAD_CHAR = re.compile(r"[\x00-\x1f\x7f\\]")
_DRIVE = re.compile(r"^[A-Za-z]:")
_NOT_PORTABLE = '<>:"|?*'
_NOT_PORTABLE_CHAR = re.compile("[" + re.escape(_NOT_PORTABLE) + "]")
#: Windows refuses these as a name's stem, whatever follows the first dot ("nul.webp" too).
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"{dev}{n}" for dev in ("COM", "LPT") for n in range(1, 10)]
)


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
    """Why ``name`` cannot be an output path inside the output folder, on any system (None
    when it can)."""
    if not name:
        return "the filename is empty"
    if name.startswith("/") or _DRIVE.match(name):
        return f"{name!r} is absolute; filenames are relative to the output folder"
    if _BAD_CHAR.search(name):
        return f"{name!r} holds a backslash or a control character"
    if _NOT_PORTABLE_CHAR.search(name):
        bad = "".join(dict.fromkeys(c for c in name if c in _NOT_PORTABLE))
        return f"{name!r} holds {bad} which Windows or macOS cannot store in a filename"
    segments = name.split("/")
    for segment in segments:
        if not _fine_segment(segment):  # a grid's names share most of their segments
            return _segment_problem(name, segment)
    if segments[0] == STATE_DIR:
        return f"{name!r} would write into the ledger folder {STATE_DIR}/"
    return None


# the folders a grid's names share hit; a name's own last segment misses, so a bigger cache
# only held ~11 MB more at 100,000 jobs
@functools.lru_cache(maxsize=4096)
def _fine_segment(segment: str) -> bool:
    return _segment_problem("", segment) is None


def _segment_problem(name: str, segment: str) -> str | None:
    if segment in ("", ".", ".."):
        return f"{name!r} has an empty, . or .. segment; it must stay inside the output folder"
    if len(segment.encode("utf-8")) > _MAX_SEGMENT_BYTES:
        return f"a part of {name[:40]!r}... is longer than {_MAX_SEGMENT_BYTES} bytes"
    if segment.split(".", 1)[0].rstrip(" ").upper() in _RESERVED:
        return f"{segment!r} is a reserved device name on Windows"
    if segment.endswith((".", " ")):
        return f"{segment!r} ends in a dot or a space, which Windows drops"
    return None


def filename_value_problem(template: Template, variables: dict[str, Any]) -> str | None:
    """Why a variable's value cannot go into the filename ``template`` (None when it can):
    a ``/`` in a value would silently make a folder."""
    for name in template.names:
        value = variables.get(name)
        if isinstance(value, str) and "/" in value:
            return (
                f"the value of {{{name}}} holds / ({value!r}), which would make a folder; "
                "write the folders in the template, or use the default filename"
            )
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
    bad = "".join(dict.fromkeys(c for c in template.literal if c in _NOT_PORTABLE))
    if bad:
        return f"a filename may not hold {bad} (Windows or macOS cannot store it)"
    return None
