"""The public API: ``__all__`` is sorted, complete, and importing it pulls in no network stack."""

from __future__ import annotations

import subprocess
import sys

import lumozbatch


def test_all_is_sorted_and_every_name_exists() -> None:
    names = lumozbatch.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(lumozbatch, name), name


def test_every_public_attribute_is_exported() -> None:
    public = {
        name
        for name, value in vars(lumozbatch).items()
        if not name.startswith("_") and not type(value).__name__ == "module" and name not in {"version", "PackageNotFoundError"}
    }
    assert public == set(lumozbatch.__all__) - {"__version__"}


def test_importing_the_library_does_not_import_trio_or_httpx() -> None:
    code = "import sys, lumozbatch; print(sorted(m for m in ('trio', 'httpx') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
