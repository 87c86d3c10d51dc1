"""``lumozbatch models``: the models lumozbatch knows, read from the shipped schemas."""

from __future__ import annotations

import json
from typing import Any

import click

__all__ = ["model_rows", "models_cmd"]


def _type(schema: dict[str, Any]) -> str:
    if "oneOf" in schema or "anyOf" in schema:
        return " | ".join(_type(s) for s in schema.get("oneOf", schema.get("anyOf", [])))
    kind = schema.get("type", "any")
    kind = "|".join(kind) if isinstance(kind, list) else str(kind)
    return kind + (f" ({schema['format']})" if "format" in schema else "")


def _allowed(schema: dict[str, Any]) -> str:
    parts: list[str] = []
    for sub in schema.get("oneOf", schema.get("anyOf", [schema])):
        if "enum" in sub:
            parts.append(", ".join(json.dumps(v) for v in sub["enum"]))
        elif "minimum" in sub or "maximum" in sub:
            parts.append(f"{sub.get('minimum', '')}..{sub.get('maximum', '')}")
        elif sub.get("minLength"):
            parts.append("non-empty")
    return "; ".join(parts)


def model_rows(model: str, schema: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per parameter: name, type, allowed, default, required, description."""
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        rows.append(
            {
                "name": name,
                "type": _type(prop),
                "allowed": _allowed(prop),
                "default": prop.get("default"),
                "has_default": "default" in prop,
                "required": name in required,
                "description": prop.get("description", ""),
            }
        )
    return rows


@click.command("models")
@click.option("--json", "json_out", is_flag=True, help="Print one JSON document.")
def models_cmd(json_out: bool) -> None:
    """List the models lumozbatch knows, with their parameters' types, ranges or choices,
    defaults, and which are required. Parameters of these models are checked before anything
    is sent; any other model id is accepted with a warning and sent unchecked.

    Example: lumozbatch models
    """
    from lumozbatch.resources import schema_catalogue

    schemas = schema_catalogue().models
    if json_out:
        doc = {
            model: {
                "description": schema.get("description", ""),
                "output": schema.get("x-lumoz", {}),
                "parameters": [{k: v for k, v in r.items() if k != "has_default"} for r in model_rows(model, schema)],
            }
            for model, schema in schemas.items()
        }
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    for n, (model, schema) in enumerate(schemas.items()):
        if n:
            click.echo()
        rows = model_rows(model, schema)
        fmt = schema.get("x-lumoz", {}).get("default_output_format")
        click.echo(f"{model}" + (f"  (output: {fmt} by default)" if fmt else ""))
        header = ("parameter", "type", "allowed", "default", "required")
        table = [header] + [
            (
                r["name"],
                r["type"],
                r["allowed"],
                json.dumps(r["default"]) if r["has_default"] else "",
                "yes" if r["required"] else "",
            )
            for r in rows
        ]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        for row in table:
            click.echo("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
