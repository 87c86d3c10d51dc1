"""Names of the output folder's layout that the core's rules need (the shell creates it)."""

from __future__ import annotations

__all__ = ["STATE_DIR"]

#: The folder inside an output folder that holds the ledger and the lock; no output may be
#: written into it.
STATE_DIR = ".lumozbatch"
