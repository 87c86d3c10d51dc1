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
    """A template is malformed, or a value does not fit its format spec."""


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
    for literal, field_name, spec, conversion in raw:
        if field_name is None:
            parts.append((literal, None, ""))
            continue
        if field_name == "":
            raise TemplateError("empty {} in template: name a variable, or write {{}} for braces")
        if not field_name.isidentifier():
            raise TemplateError(
                f"{{{field_name}}} is not a plain variable name "
                "(no attributes, indexes or expressions; {{ and }} for literal braces)"
            )
        if conversion:
            raise TemplateError(f"{{{field_name}!{conversion}}}: conversions are not supported")
        if spec and ("{" in spec or "}" in spec):
            raise TemplateError(f"{{{field_name}:{spec}}}: nested fields in a format spec are not supported")
        parts.append((literal, field_name, spec or ""))
    return Template(source, tuple(parts))
