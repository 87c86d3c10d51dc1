"""Shared fixtures: every test runs in its own empty folder with no LumozAI settings."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pg_server"]  # the throwaway PostgreSQL cluster: pg_cluster, pg_url

REPO = Path(__file__).resolve().parent.parent
MANIFESTS = REPO / "manifests"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's key or writes into the checkout."""
    monkeypatch.delenv("LUMOZ_API_KEY", raising=False)
    monkeypatch.delenv("LUMOZ_BASE_URL", raising=False)
    monkeypatch.delenv("LUMOZBATCH_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def repo_root() -> Path:
    return REPO
