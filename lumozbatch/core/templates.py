"""``{name}`` templates in string parameters and filenames.

The syntax is Python's ``str.format`` reduced to what a manifest needs: ``{name}`` or
``{name:spec}`` (``{seed:04d}``), with ``{{`` and ``}}`` for literal braces. Attribute and
index lookups (``{a.b}``, ``{a[0]}``), conversions (``{a!r}``), positional fields (``{}``) and
nested fields in a spec (``{a:{w}}``) are refused: a template may only name a variable.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

__all__ = ["Template", "TemplateError", "parse_template", "render_value"]

_formatter = string.Formatter()


class TemplateError(ValueError):
    """A template is malformed, or a value does not fit its format spec.

    From ``parse_template``: ``problems`` holds one sentence per bad field (every one, so a
    manifest's errors show at once) and ``partial`` the template of the good fields (None
    when the braces themselves do not parse), so callers can still check the names it uses.
    """

    def __init__(self, message: str, *, problems: list[str] | None = None, partial: Template | None = None) -> None:
        super().__init__(message)
        self.problems = problems if problems is not None else [message]
        self.partial = partial


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template: alternating literal text and ``(name, spec)`` fields."""

    source: str
    parts: tuple[tuple[str, str | None, str], ...]  # (literal, field name or None, spec)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for _, name, _ in self.parts if name is not None)

    @property
    def literal(self) -> str:
        """The template's text with every field removed."""
        return "".join(lit for lit, _, _ in self.parts)

    @property
    def is_constant(self) -> bool:
        return not self.names

    def render(self, values: dict[str, Any]) -> str:
        """Fill every field from ``values`` (which must hold each name)."""
        out: list[str] = []
        for literal, name, spec in self.parts:
            out.append(literal)
            if name is not None:
                value = values[name]
                # the common case first: a plain string field needs no formatting
                out.append(value if not spec and type(value) is str else render_value(value, spec, name))
        return "".join(out)


def render_value(value: Any, spec: str, name: str = "value") -> str:
    """One field's text: booleans as ``true``/``false`` and None as ``null`` (as YAML writes them)."""
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif value is None:
        value = "null"
    elif isinstance(value, float) and value.is_integer() and not spec:
        value = int(value)  # 3.0 and 3 are one job (see identity); render them alike
    try:
        return format(value, spec)
    except (ValueError, TypeError) as exc:
        raise TemplateError(f"{{{name}:{spec}}} cannot format {value!r}: {exc}") from None


def parse_template(source: str) -> Template:
    """Parse ``source``; raise ``TemplateError`` saying what is wrong and how to write it."""
    try:
        raw = list(_formatter.parse(source))
    except ValueError as exc:
        raise TemplateError(
            f"malformed template ({exc}); write {{{{ and }}}} for literal braces"
        ) from None
    parts: list[tuple[str, str | None, str]] = []
    problems: list[str] = []
    for literal, field_name, spec, conversion in raw:
        problem = None if field_name is None else _field_problem(field_name, spec or "", conversion)
        if problem is not None:
            problems.append(problem)
            parts.append((literal, None, ""))
        else:
            parts.append((literal, field_name, spec or ""))
    template = Template(source, tuple(parts))
    if problems:
        raise TemplateError("; ".join(problems), problems=problems, partial=template)
    return template


def _field_problem(field_name: str, spec: str, conversion: str | None) -> str | None:
    if field_name == "":
        return "empty {} in template: name a variable, or write {{}} for braces"
    if not field_name.isidentifier():
        return (
            f"{{{field_name}}} is not a plain variable name "
            "(no attributes, indexes or expressions; {{ and }} for literal braces)"
        )
    if conversion:
        return f"{{{field_name}!{conversion}}}: conversions are not supported"
    if "{" in spec or "}" in spec:
        return f"{{{field_name}:{spec}}}: nested fields in a format spec are not supported"
    return None
