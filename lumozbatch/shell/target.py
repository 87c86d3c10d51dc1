"""Where a run's requests go: a real API root with a key, or the in-process sandbox.

The key comes from the caller or ``LUMOZ_API_KEY``, the root from the caller, else
``LUMOZ_BASE_URL``, else the real service (SPEC section 2); a manifest never holds either.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from lumozbatch.errors import ConfigError
from lumozbatch.shell.api import DEFAULT_BASE_URL, normalize_base_url

__all__ = ["Target", "resolve_target"]


@dataclass(frozen=True, slots=True)
class Target:
    """Where the API is: a real root with a key, or the in-process sandbox."""

    base_url: str | None
    api_key: str | None
    sandbox: bool

    @property
    def api(self) -> str:
        """What the ledger records as the API a batch runs against."""
        return "sandbox" if self.sandbox else str(self.base_url)


def resolve_target(
    base_url: str | None = None,
    sandbox: bool = False,
    *,
    api_key: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Target:
    """The target of a run; ``ConfigError`` (exit 3) when a real API has no key."""
    if sandbox:
        return Target(None, None, True)
    env = os.environ if environ is None else environ
    key = (api_key if api_key is not None else env.get("LUMOZ_API_KEY", "")).strip()
    if not key:
        raise ConfigError(
            "no API key: set LUMOZ_API_KEY (or try the free local sandbox with --sandbox)"
        )
    root = base_url or env.get("LUMOZ_BASE_URL") or DEFAULT_BASE_URL
    return Target(normalize_base_url(root), key, False)
