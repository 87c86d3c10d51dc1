"""Fixtures of the end-to-end tests (helpers live in ``e2e_support``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e_support import SandboxFactory


@pytest.fixture
def start_sandbox() -> Iterator[SandboxFactory]:
    factory = SandboxFactory()
    try:
        yield factory
    finally:
        factory.close()
