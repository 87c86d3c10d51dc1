"""The rules a batch's output folder keeps, checked before anything is written or sent. Pure.

- One batch per folder: planning another manifest there would retire every job of the
  batch it holds.
- One manifest per batch: another manifest file with the same ``name`` is another batch
  (planning it would retire the first one's jobs and give its names to other outputs),
  unless the user says it is the same file, moved or renamed (``apply --adopt``).
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

__all__ = ["check_batch_name", "check_same_api", "check_same_manifest"]


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


def check_same_manifest(
    batch: Mapping[str, Any] | None,
    manifest_key: str,
    out_dir: PurePath,
    *,
    adopt: bool = False,
    planning: bool = False,
) -> bool:
    """Refuse a folder whose batch (of the same name: ``check_batch_name`` first) was made by another manifest file than
    ``manifest_key`` (``shell.location.BatchHome.manifest_key``), unless ``adopt``.

    Returns True when the batch record must be brought to this manifest (``apply`` appends
    a ``Moved`` record): adopted, or a ledger from before ``manifest_key`` was recorded.
    ``planning``: said by ``plan``, which records nothing.
    """
    if batch is None:
        return False  # a new batch records its key in its ``batch`` record
    recorded = batch.get("manifest_key")
    if recorded is None:
        # A ledger from before manifest_key existed: nothing to compare it with, so this
        # manifest is taken as its own and its key recorded from now on.
        return True
    if recorded == manifest_key:
        return False
    if adopt:
        return True
    why = ": apply would refuse it" if planning else ""
    raise UsageError(
        f"{out_dir} holds the batch {batch.get('name')!r} of the manifest {recorded}, "
        f"not of {manifest_key}{why}",
        details=[
            f"if {recorded} was moved or renamed to {manifest_key}, say so with apply --adopt "
            "(it continues the batch; nothing done is sent again)",
            "if it is a separate batch, give it its own folder with --out DIR, or its own name",
        ],
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
