"""The schema files on disk: the generated editor entry schema, and copying the set elsewhere.

``python -m lumozbatch.shell.schema_files`` rewrites ``schemas/manifest.editor.schema.json``
from ``schemas/models/*.json`` (run it after adding or changing a model schema; a test fails
while the committed file is out of step).
"""

from __future__ import annotations

import json
from importlib.abc import Traversable
from pathlib import Path

from lumozbatch.core.editor_schema import EDITOR_SCHEMA_FILE, editor_schema
from lumozbatch.resources import model_schemas, schema_dir

__all__ = ["copy_schemas", "editor_schema_text", "schema_files", "write_editor_schema"]


def editor_schema_text() -> str:
    return json.dumps(editor_schema(model_schemas()), indent=2, ensure_ascii=False) + "\n"


def schema_files(root: Traversable | None = None) -> list[str]:
    """Every schema file, as a path relative to the schema folder ("models/<id>.json")."""
    root = schema_dir() if root is None else root
    names = [e.name for e in root.iterdir() if e.name.endswith(".json")]
    names += [f"models/{e.name}" for e in (root / "models").iterdir() if e.name.endswith(".json")]
    return sorted(names)


def copy_schemas(target: Path) -> list[Path]:
    """Copy the installed schemas into ``target`` (created; nothing in it is overwritten)."""
    written: list[Path] = []
    for name in schema_files():
        dest = target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        source = schema_dir().joinpath(*name.split("/"))
        with open(dest, "x", encoding="utf-8") as out:  # "x": never overwrite
            out.write(source.read_text(encoding="utf-8"))
        written.append(dest)
    return written


def write_editor_schema() -> Path:
    path = Path(str(schema_dir())) / EDITOR_SCHEMA_FILE
    path.write_text(editor_schema_text(), encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write_editor_schema())
