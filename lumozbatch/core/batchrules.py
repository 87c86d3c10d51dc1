"""The rules a batch's output folder keeps, checked before anything is written or sent. Pure.

- One batch per folder: planning another manifest there would retire every job of the
  batch it holds.
- One API per batch: its request ids mean nothing to another API (which would fail paid
  requests as unknown), and its done outputs are not that API's (a sandbox's images would
  count as generated).

``batch`` is the ledger's ``batch`` record (a mapping; None or empty for a new folder).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from lumozbatch.errors import UsageError

__all__ = ["check_batch_name", "check_same_api"]


def check_batch_name(
    batch: Mapping[str, Any] | None, name: str, out_dir: PurePath, *, planning: bool = False
) -> None:
    """Refuse a folder that holds another batch than ``name`` (``planning``: said by ``plan``)."""
    if batch is None or batch.get("name") == name:
        return
    why = ": apply would refuse it" if planning else ""
    raise UsageError(
        f"{out_dir} holds the batch {batch.get('name')!r}, not {name!r}{why}",
        details=[f"choose another folder with --out, or resume that batch: lumozbatch resume {out_dir}"],
    )


def check_same_api(batch: Mapping[str, Any] | None, api: str, out_dir: PurePath) -> None:
    """Refuse to continue a batch against another API (``api``: "sandbox" or a base URL)
    than the one the ledger recorded."""
    recorded = (batch or {}).get("api")
    if not isinstance(recorded, str) or recorded == api:
        return  # same API, or a ledger from before the API was recorded

    def named(which: str) -> str:
        return "the sandbox" if which == "sandbox" else which

    how = "with --sandbox" if recorded == "sandbox" else f"with --base-url {recorded}"
    raise UsageError(
        f"the batch in {out_dir} was run against {named(recorded)}, not {named(api)}",
        details=[
            "its request ids and outputs belong to that API; nothing was sent",
            f"continue it there ({how}), or give this run another folder with --out",
        ],
    )
