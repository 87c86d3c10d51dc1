"""Making a change to a folder durable: after a file is created, renamed or linked into a
folder, the folder itself must be fsynced or a power loss can forget the new name."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_dir"]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
