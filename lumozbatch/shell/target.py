"""Where a run's requests go: a real API root with a key, or the in-process sandbox.

The key comes from the caller or ``LUMOZ_API_KEY``, the root from the caller, else
``LUMOZ_BASE_URL``, else the real service (SPEC section 2); a manifest never holds either.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from lumozbatch.errors import ConfigError, UsageError
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
    """The target of a run.

    A malformed ``base_url`` argument (the ``--base-url`` option) is a ``UsageError`` (exit 2),
    said before a missing key is; a malformed ``LUMOZ_BASE_URL`` or a missing key is a
    ``ConfigError`` (exit 3): the environment, not the command line, is wrong.
    """
    if sandbox:
        return Target(None, None, True)
    env = os.environ if environ is None else environ
    if base_url is not None:
        root = _checked(base_url, "--base-url", UsageError)
    else:
        root = _checked(env.get("LUMOZ_BASE_URL") or DEFAULT_BASE_URL, "LUMOZ_BASE_URL", ConfigError)
    key = (api_key if api_key is not None else env.get("LUMOZ_API_KEY", "")).strip()
    if not key:
        raise ConfigError(
            "no API key: set LUMOZ_API_KEY (or try the free local sandbox with --sandbox)"
        )
    return Target(root, key, False)


def _checked(url: str, source: str, error: type[UsageError] | type[ConfigError]) -> str:
    try:
        return normalize_base_url(url)
    except ConfigError:
        raise error(
            f"invalid base URL {url!r} ({source}): expected http(s)://host[:port], e.g. {DEFAULT_BASE_URL}"
        ) from None
